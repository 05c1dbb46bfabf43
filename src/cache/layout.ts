// Where things live inside a cache root. Everything under it is either immutable and
// content-addressed (cas/, actions/, items/, logs/) or replaced atomically (memo, runs/).
//
//   cas/ab/abcdef...          blobs, named by the sha256 of their bytes
//   actions/ab/<fingerprint>.json   fingerprint -> outputs (every past fingerprint is kept)
//   items/<kind>/ab.log       per-item memo records of key hashes ab…, appended (cache/item-journal.ts)
//   logs/<fingerprint>.log    the log of the last run of that fingerprint
//   runs/<stage>.json         which fingerprint a stage ran last (for `status --log`)
//   statmemo.bin              (path, size, mtime, inode) -> sha256: a compacted base ...
//   statmemo.bin.journal      ... and the batches appended since (src/cache/stat-memo-format.ts)
//   statmemo.json             the memo's old format: ignored, removed by gc and verify
//   folders/<key>.memo        a dataset folder's names per subfolder (datasets/local/folder-memo.ts)
//   folders/<key>.draft       its layout's entries for one list of paths (the same)
//   folders/<key>.snap        a big dataset folder's file map by digest, for its files' stats (datasets/local/listing-snapshot.ts)
//   folders/stat-hint         the big folders the last walk stat-ed, with their names (datasets/local/stat-hint.ts)
//   lockjson/<sha>.json       parsed lorafile.lock, keyed by the lock text's hash
//   quarantine/               blobs that failed `cache verify`
//   tmp/                      staging area; same file system, so rename is atomic
//   models/<key>/             links to the files of a diffusers model a build chose (remade at will)
//   cluster/jobs/<op>-…/      a Slurm job's request, script, event file and output (cluster/)
//   cluster/hello-<key>.json  versions and device of a cluster's nodes, from their last job
//   writer.lock               pid of the process allowed to write
//   generation                rewritten whenever gc or verify removes something
import { join } from 'node:path';

/** the stat memo's journal, beside its base */
export function journalPathOf(statMemoBase: string): string {
  return `${statMemoBase}.journal`;
}

export class CacheLayout {
  constructor(readonly root: string) {}

  get tmp(): string {
    return join(this.root, 'tmp');
  }
  blob(sha256: string): string {
    return join(this.root, 'cas', sha256.slice(0, 2), sha256);
  }
  get casDir(): string {
    return join(this.root, 'cas');
  }
  action(fingerprint: string): string {
    return join(this.root, 'actions', fingerprint.slice(0, 2), `${fingerprint}.json`);
  }
  get actionsDir(): string {
    return join(this.root, 'actions');
  }
  get itemsDir(): string {
    return join(this.root, 'items');
  }
  log(fingerprint: string): string {
    return join(this.root, 'logs', `${fingerprint}.log`);
  }
  get logsDir(): string {
    return join(this.root, 'logs');
  }
  lastRun(stageId: string): string {
    return join(this.root, 'runs', `${encodeURIComponent(stageId)}.json`);
  }
  /** the stat memo's base; its journal is beside it (statMemoJournal) */
  get statMemo(): string {
    return join(this.root, 'statmemo.bin');
  }
  get statMemoJournal(): string {
    return journalPathOf(this.statMemo);
  }
  get legacyStatMemo(): string {
    return join(this.root, 'statmemo.json');
  }
  /** `key`: a hash of the dataset folder's absolute path */
  folderMemo(key: string): string {
    return join(this.root, 'folders', `${key}.memo`);
  }
  /** beside folderMemo(key): the layout's entries */
  folderDraft(key: string): string {
    return join(this.root, 'folders', `${key}.draft`);
  }
  /** beside folderMemo(key): the folder's listing snapshot */
  folderSnapshot(key: string): string {
    return join(this.root, 'folders', `${key}.snap`);
  }
  parsedLock(textHash: string): string {
    return join(this.root, 'lockjson', `${textHash}.json`);
  }
  get quarantine(): string {
    return join(this.root, 'quarantine');
  }
  get generation(): string {
    return join(this.root, 'generation');
  }
  modelView(key: string): string {
    return join(this.root, 'models', key);
  }
  get writerLock(): string {
    return join(this.root, 'writer.lock');
  }
}
