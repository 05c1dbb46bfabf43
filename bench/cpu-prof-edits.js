// Preloaded into the watch process by bench/watch.js --cpu-prof-edits DIR (node --import): the
// first SIGUSR2 starts a V8 CPU profile, the second writes it to $LORABUILD_BENCH_PROF_DIR/edits.cpuprofile,
// so that the saves are profiled without the cold first build.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.LORABUILD_BENCH_PROF_DIR;
const session = new Session();
session.connect();
let started = false;
process.on('SIGUSR2', () => {
  if (!started) {
    started = true;
    session.post('Profiler.enable', () => session.post('Profiler.start'));
    return;
  }
  session.post('Profiler.stop', (err, result) => {
    if (!err && dir) writeFileSync(join(dir, 'edits.cpuprofile'), JSON.stringify(result.profile));
    process.stderr.write(err ? `cpu-prof-edits: ${err.message}\n` : `cpu-prof-edits: ${join(dir, 'edits.cpuprofile')}\n`);
  });
});
