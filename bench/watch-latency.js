// `lorabuild watch` write-to-diagnostics latency on an existing project (shared by bench/watch.js
// and bench/scale.js). `lorabuild watch --through validate --json`; once its first build and the
// warm-up after it are done (as they are by a user's first save), `edits` caption edits, one at a
// time, alternating a broken caption (empty) and a fixed one. Latency = from just before the write
// to the arrival of the dataset's new `diagnostics` line on the watch's stdout (chokidar event
// + debounce + fetch/prepare/validate of one changed item + the pipe).
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'bin', 'lorabuild.js');

export const percentile = (xs, p) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

/** the caption file edit `i` of a run over `images` items writes (edits 2k and 2k+1 share one) */
export const editedItem = (i, images) => (Math.floor(i / 2) * 37) % images;

/**
 * project: a folder with a lorafile whose one dataset `bench` is a lab layout under data/ of
 * `images` items; LORABUILD_CACHE is project/cache. Returns the latencies' summary; the captions it
 * edited are left in their last (fixed) state, listed in `edited`.
 */
/** resident memory of a process in MB (Linux), or null elsewhere */
export const rssMb = (pid) => {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Math.round(Number(kb[1]) / 1024) : null;
  } catch {
    return null;
  }
};

/** CPU time (user + system) a process has used, in ms (Linux; 100 clock ticks a second), or null */
export const cpuMs = (pid) => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
};

/**
 * nodeArgs: extra node flags for the watch process (WATCH_NODE_ARGS='--max-old-space-size=200');
 * profDir: the watch process writes a V8 CPU profile there when it stops; editsProfDir: one of the
 * edits only (bench/cpu-prof-edits.js).
 */
export async function watchLatency({ project, images, edits, debounce = NaN, timeoutMs = Infinity, log = (line) => console.error(line), nodeArgs = [], profDir, editsProfDir }) {
  const hook = join(dirname(fileURLToPath(import.meta.url)), 'cpu-prof-edits.js');
  const args = [...nodeArgs, ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), ...(editsProfDir ? ['--import', hook] : []), cli, 'watch', '--through', 'validate', '--json', ...(Number.isFinite(debounce) ? ['--debounce', String(debounce)] : [])];
  const env = { ...process.env, LORABUILD_CACHE: join(project, 'cache'), ...(editsProfDir ? { LORABUILD_BENCH_PROF_DIR: editsProfDir } : {}) };
  const child = spawn(process.execPath, args, { cwd: project, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let closed = false;
  let timedOut = false;
  // past the time limit the watch is stopped: its close rejects whatever the bench waits for
  const limit = Number.isFinite(timeoutMs)
    ? setTimeout(() => {
        timedOut = true;
        child.kill('SIGINT');
      }, timeoutMs)
    : undefined;
  try {
    const waiters = [];
    // the last events, printed when an edit is answered wrongly
    const recent = [];
    const startedAt = performance.now();
    let buffer = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      const now = performance.now();
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop();
      for (const line of lines) {
        // watch events, and the fetch stage's start (its reason names the files it found changed)
        if (!line.startsWith('{"watch"') && !line.startsWith('{"stage":"fetch:')) continue;
        const event = JSON.parse(line);
        recent.push(`${(now - startedAt).toFixed(1)} ${line.slice(0, 200)}`);
        if (recent.length > 40) recent.shift();
        for (const w of [...waiters]) {
          if (w.match(event)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve({ event, at: now });
          }
        }
      }
    });
    let exited = null;
    child.on('close', (code) => {
      closed = true;
      exited = new Error(timedOut ? `lorabuild watch: no answer within ${timeoutMs} ms` : `lorabuild watch exited (code ${code}) while the bench was waiting for it`);
      for (const w of waiters.splice(0)) w.reject(exited);
    });
    const next = (match) =>
      new Promise((resolvePromise, reject) => (exited ? reject(exited) : waiters.push({ match, resolve: resolvePromise, reject })));

    log('bench watch: first build');
    const t0 = performance.now();
    // the watch then fills its memos (watch/warm.ts); a user's first save comes later than that.
    // Both waiters first: the two events can arrive in one chunk of output
    const firstBuild = next((e) => e.watch === 'idle' && e.build === 1);
    const warmed = next((e) => e.watch === 'warm');
    await firstBuild;
    const firstBuildMs = performance.now() - t0;
    const warm = (await warmed).event;
    const rssFirst = rssMb(child.pid);
    const cpuFirst = cpuMs(child.pid);
    if (editsProfDir) child.kill('SIGUSR2');

    const latencies = [];
    const builds = [];
    const edited = new Set();
    for (let i = 0; i < edits; i++) {
      // edit 2k breaks an item's caption, edit 2k+1 fixes it again
      const item = editedItem(i, images);
      edited.add(item);
      const broken = i % 2 === 0;
      // the answer is the diagnostics of the build that took this save in (its `changes` name the
      // file, or, when a notice of another file started it, its fetch found this one changed): a
      // build that started before the save was seen may end after it, with older diagnostics
      const rel = `data/text/${item}.txt`;
      let covered = false;
      let answered = false;
      const readIt = (e) => (e.watch === 'build' && e.changes.includes(rel)) || (e.outcome === 'started' && typeof e.reason === 'string' && e.reason.split('; ').includes(`${rel} changed`));
      const covering = next((e) => (covered ||= readIt(e)));
      const diagnostics = next((e) => covered && (answered ||= e.watch === 'diagnostics' && !e.stale));
      const idle = next((e) => e.watch === 'idle' && answered);
      const start = performance.now();
      const writeWall = Date.now() % 100000;
      writeFileSync(join(project, 'data', 'text', `${item}.txt`), broken ? '  \n' : `one-line-art, shape ${item}, edited ${i}\n`);
      const got = await diagnostics;
      await covering;
      latencies.push(got.at - start);
      const expectErrors = broken ? 1 : 0;
      if (got.event.errors !== expectErrors) {
        log(`the write was at wall ${writeWall} ~ ${(start - startedAt).toFixed(1)}; the last events:\n${recent.slice(-14).join('\n')}`);
        throw new Error(`edit ${i}: expected ${expectErrors} errors, watch reported ${got.event.errors}`);
      }
      builds.push((await idle).event.durationMs);
    }
    if (editsProfDir) {
      child.kill('SIGUSR2');
      await new Promise((r) => setTimeout(r, 1000));
    }
    return {
      images,
      edits,
      first_build_ms: Math.round(firstBuildMs),
      warm_ms: warm.durationMs,
      first_save_ms: +latencies[0].toFixed(1),
      p50_ms: +percentile(latencies, 50).toFixed(1),
      p95_ms: +percentile(latencies, 95).toFixed(1),
      max_ms: +Math.max(...latencies).toFixed(1),
      build_p50_ms: percentile(builds, 50),
      cpu_per_edit_ms: cpuFirst === null ? null : Math.round((cpuMs(child.pid) - cpuFirst) / Math.max(1, edits)),
      rss_after_first_build_mb: rssFirst,
      rss_after_edits_mb: rssMb(child.pid),
      edited: [...edited],
      latencies: latencies.map((ms) => +ms.toFixed(1)),
    };
  } finally {
    clearTimeout(limit);
    if (!closed) {
      child.kill('SIGINT');
      await new Promise((r) => child.on('close', r));
    }
  }
}
