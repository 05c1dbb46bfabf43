// One downloader per blob across processes (two lorabuild runs, or a run and a watch, sharing the
// HF cache): an exclusive <blob>.lock file holding the owner's pid. A lock whose owner is gone is
// taken over, so a killed run never blocks the next one.
import { open, readFile, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { pidAlive } from '../../cache/pid-alive.js';

/** an empty lock this old was left by an owner killed between creating it and writing its pid */
const EMPTY_LOCK_STALE_MS = 10_000;

export async function lockBlob(lockPath: string, signal: AbortSignal): Promise<() => Promise<void>> {
  for (;;) {
    signal.throwIfAborted();
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(lockPath, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const text = (await readFile(lockPath, 'utf8').catch(() => '')).trim();
    // empty: its owner has created it and is writing its pid now (unless it died doing so)
    const beingWritten = text === '' && Date.now() - ((await stat(lockPath).catch(() => undefined))?.mtimeMs ?? 0) < EMPTY_LOCK_STALE_MS;
    const owner = Number(text);
    if (!beingWritten && (!Number.isInteger(owner) || owner <= 0 || !pidAlive(owner))) {
      await rm(lockPath, { force: true });
      continue;
    }
    await sleep(200, undefined, { signal });
  }
}
