// Item memo records on disk (cache/item-journal.ts), for tests that lose or inspect them.
import { existsSync } from 'node:fs';
import { ItemJournal, journalPath, journalsOf, readJournal, rewriteJournal } from '../../src/cache/item-journal.js';

/** the record of a key as a fresh process would read it, parsed; undefined when there is none */
export function itemRecord(root: string, kind: string, keyHash: string): unknown {
  const json = new ItemJournal(root).read(kind, keyHash);
  return json === undefined ? undefined : JSON.parse(json);
}

/** removes the keys' records from their journals, as if they had never been written */
export function dropItemRecords(root: string, kind: string, keyHashes: readonly string[]): void {
  for (const keyHash of keyHashes) {
    const path = journalPath(root, kind, keyHash);
    if (!existsSync(path)) continue;
    const { records } = readJournal(path, keyHash.slice(0, 2));
    records.delete(keyHash);
    rewriteJournal(path, records);
  }
}

/** how many whole records the kind's journals hold */
export function itemRecordCount(root: string, kind: string): number {
  return journalsOf(root, kind).reduce((n, j) => n + readJournal(j.path, j.prefix).records.size, 0);
}
