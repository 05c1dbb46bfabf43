// Run as `node --allow-natives-syntax hidden-classes.mjs DIST FOLDER` (tests/frozen-shapes.test.ts):
// lists FOLDER (a lab layout) with the built listing code, maps the listing as fetch and prepare
// do, and freezes it as writeJson does. Prints, for each kind of object, how many V8 hidden classes
// its objects have (%HaveSameMap), the same for copies made with object spread, as a control, and
// the JSON texts, to compare with the spread copies'.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, folder] = process.argv.slice(2);
const load = (path) => import(pathToFileURL(join(dist, path)).href);
const { listLocalDataset } = await load('datasets/local/list.js');
const { portableListing, localListing } = await load('datasets/listing-paths.js');
const { deepFreeze } = await load('cache/parsed-json.js');

/** how many hidden classes the objects have (counted up to 50) */
function classes(objects) {
  const seen = [];
  for (const o of objects) {
    if (seen.length >= 50) break;
    if (!seen.some((s) => %HaveSameMap(s, o))) seen.push(o);
  }
  return seen.length;
}

const found = await listLocalDataset({
  abs: folder,
  folder: 'data',
  layout: 'auto',
  captionColumn: 'text',
  hashFile: async (abs) => createHash('sha256').update(readFileSync(abs)).digest('hex'),
});
const config = { root: join(folder, '..') };
const portable = deepFreeze(portableListing(config, found.listing));
const local = deepFreeze(localListing(config, portable));
const spreadFile = (f) => ({ ...f, abs: `x${f.abs}` });
const spread = deepFreeze(found.listing.entries.map((e) => ({ ...e, image: spreadFile(e.image), captionFile: spreadFile(e.captionFile) })));

console.log(JSON.stringify({
  entries: portable.entries.length,
  portable: { entries: classes(portable.entries), images: classes(portable.entries.map((e) => e.image)), captions: classes(portable.entries.map((e) => e.captionFile)) },
  local: { entries: classes(local.entries), images: classes(local.entries.map((e) => e.image)) },
  control: { entries: classes(spread), images: classes(spread.map((e) => e.image)) },
  text: { portable: JSON.stringify(portable.entries.slice(0, 3)), local: JSON.stringify(local.entries.slice(0, 3)) },
  sources: JSON.stringify(found.listing.entries.slice(0, 3)),
}));
