// listing.json is a stage output, hashed into the lock: the files it names are written path-free
// (relative to the lorafile, or ~/...), so that two machines with the same checkout write the same
// listing and the same lock. prepare turns them back into absolute paths before reading any file.
// Hub listings hold no paths at all (repo paths and sha256s; prepare finds the files in its own
// HF cache): nothing to map.
import { portablePath, resolveUserPath } from '../config/paths.js';
import type { Config } from '../config/schema.js';
import type { Listing, ListingEntry } from './manifest.js';

type PathMap = (path: string) => string;

function mapListing(listing: Listing, map: PathMap): Listing {
  const file = <F extends { abs?: string }>(f: F): F => (f.abs === undefined ? f : { ...f, abs: map(f.abs) });
  const entry = (e: ListingEntry): ListingEntry => ({
    ...e,
    ...(e.image ? { image: file(e.image) } : {}),
    ...(e.captionFile ? { captionFile: file(e.captionFile) } : {}),
  });
  return { ...listing, entries: listing.entries.map(entry) };
}

/** The listing as fetch writes it: every `abs` relative to the lorafile or under `~`. */
export function portableListing(config: Pick<Config, 'root'>, listing: Listing): Listing {
  return mapListing(listing, (abs) => portablePath(config, abs));
}

/** The listing as prepare reads files from it: every `abs` absolute on this machine. */
export function localListing(config: Pick<Config, 'root'>, listing: Listing): Listing {
  return mapListing(listing, (p) => resolveUserPath(config, p));
}
