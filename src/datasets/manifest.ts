// The two dataset formats every stage agrees on.
//
//  fetch:DATASET   -> listing.json  (what the source holds: files, or parquet shards, with hashes)
//  prepare:DATASET -> manifest.json (one item per training example, images and captions in the CAS)
//
// validate, train and render read manifest.json; nothing downstream reads the user's folder or
// the HF cache directly.

/**
 * A file of a dataset. Local folders: `path` is for display (relative to the lorafile, '/'
 * separators) and `abs` is where it is. Hub datasets: `path` is the path inside the repo and there
 * is no `abs`: the file is found in the HF cache at use (datasets/hub/items.ts), wherever that is.
 */
export interface ListedFile {
  path: string;
  /** local folders only: absolute path on disk; in listing.json relative to the lorafile or `~/...` (listing-paths.ts) */
  abs?: string;
  sha256: string;
  size: number;
}

export interface ListingEntry {
  /** item id: the lab's N, kohya's file stem, imagefolder's file_name */
  id: string;
  image?: ListedFile;
  /** a caption file (lab text/N.txt, kohya img.txt / img.caption) */
  captionFile?: ListedFile;
  /** a caption from a metadata file (imagefolder metadata.jsonl / .csv) */
  captionText?: { text: string; path: string; line: number; column?: string };
}

/** A parquet file of a hub dataset: found in the HF cache (snapshots/<revision>/<path>) at use. */
export interface ParquetShard {
  /** path inside the repo, e.g. data/train-00000-of-00001.parquet */
  path: string;
  sha256: string;
  size: number;
}

export interface Listing {
  source: 'folder' | 'hub';
  layout: 'lab' | 'kohya' | 'imagefolder' | 'parquet';
  /** display root: the folder as written in the lorafile, or owner/name@sha */
  root: string;
  /** hub only: the commit sha the revision resolved to */
  revision?: string;
  entries: ListingEntry[];
  shards?: ParquetShard[];
  /** files that belong to no item (unsupported extensions, stray files) */
  stray?: string[];
}

export interface ManifestImage {
  /** sha256 of the original image bytes; the bytes are in the CAS under this hash */
  sha256: string;
  width: number;
  height: number;
  /** sharp's format name: png, jpeg, webp, ... */
  format: string;
  /** 'datasets/x/image/3.jpeg' or 'data/train-0.parquet row 17' */
  origin: string;
}

export interface ManifestCaption {
  /** decoded text exactly as stored (validation reports BOM/CRLF/whitespace; training uses `clean`) */
  text: string;
  /**
   * sha256 of the raw caption bytes; the bytes are in the CAS under this hash, except for hub rows,
   * whose caption bytes are exactly the UTF-8 of `text` (validation then reads the text)
   */
  sha256: string;
  origin: string;
  /** 1-based line of the caption in its origin (metadata.jsonl rows; 1 for caption files) */
  line: number;
  /** the caption training uses: BOM stripped, CRLF -> LF, trimmed */
  clean: string;
  /** parquet list-of-string captions: which element was chosen and how */
  choice?: { index: number; of: number; rule: 'first' | 'random' };
}

export interface ManifestItem {
  id: string;
  /** null: a caption without an image */
  image: ManifestImage | null;
  /** null: an image without a caption */
  caption: ManifestCaption | null;
  /** present when the dataset sets `resolution`: resized + center-cropped PNG in the CAS */
  prepared?: { sha256: string; width: number; height: number };
  /** an image that did not decode (bad_images: error keeps it here; skip drops it with a warning) */
  error?: { code: 'undecodable'; message: string; /** the image that failed: display path or 'shard row N' */ origin?: string };
  /** parquet row index, for diagnostics */
  row?: number;
}

export interface Manifest {
  dataset: string;
  source: Listing['source'];
  layout: Listing['layout'];
  items: ManifestItem[];
  /** stray files and skipped rows, carried through for the validation report */
  stray: string[];
  skipped: { origin: string; reason: string }[];
}
