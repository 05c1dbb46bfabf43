// listing.json is a stage output, hashed into the lock: the files it names are written path-free
// (relative to the lorafile, or ~/...), so that two machines with the same checkout write the same
// listing and the same lock. prepare turns them back into absolute paths before reading any file.
// Hub listings hold no paths at all (repo paths and sha256s; prepare finds the files in its own
// HF cache): nothing to map.
import { homedir } from 'node:os';
import { portablePath, resolveUserPath } from '../config/paths.js';
import type { Config } from '../config/schema.js';
import { withKeys } from '../cache/parsed-json.js';
import type { Listing, ListingEntry } from './manifest.js';

type PathMap = (path: string) => string;

/**
 * entry -> the entry mapped, per direction, lorafile folder and home folder: `lorabuild watch` maps the very same
 * entry objects save after save (datasets/local/list.ts keeps them), and an unchanged entry then
 * maps to the very same object again, which the stages after keep their own per-item work by.
 * Entries are never changed once listed.
 */
const mapped = new Map<string, WeakMap<ListingEntry, ListingEntry>>();

function mapListing(listing: Listing, map: PathMap, memoKey: string): Listing {
  let memo = mapped.get(memoKey);
  if (!memo) mapped.set(memoKey, (memo = new WeakMap()));
  // withKeys, not object spread: these objects are frozen, 10,000 at a time (see withKeys)
  const file = <F extends { abs?: string }>(f: F): F => (f.abs === undefined ? f : withKeys(f, { abs: map(f.abs) }));
  const entry = (e: ListingEntry): ListingEntry => {
    let out = memo.get(e);
    if (out === undefined) {
      out = withKeys(e, {
        ...(e.image ? { image: file(e.image) } : {}),
        ...(e.captionFile ? { captionFile: file(e.captionFile) } : {}),
      });
      memo.set(e, out);
    }
    return out;
  };
  return { ...listing, entries: listing.entries.map(entry) };
}

/** The listing as fetch writes it: every `abs` relative to the lorafile or under `~`. */
export function portableListing(config: Pick<Config, 'root'>, listing: Listing): Listing {
  return mapListing(listing, (abs) => portablePath(config, abs), `portable\0${config.root}\0${homedir()}`);
}

/** The listing as prepare reads files from it: every `abs` absolute on this machine. */
export function localListing(config: Pick<Config, 'root'>, listing: Listing): Listing {
  return mapListing(listing, (p) => resolveUserPath(config, p), `local\0${config.root}\0${homedir()}`);
}
