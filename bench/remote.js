#!/usr/bin/env node
// node bench/remote.js — the remote cache against Debian's nginx (WebDAV) on 127.0.0.1:
//   - a remote hit of a stage whose output is one 500 MB blob (a big LoRA state): action entry GET,
//     blob GET streamed to disk with sha256 verification, install into the local CAS, copy to out/;
//   - a local hit of the same stage: the blob already in the CAS, copy to out/;
//   - the upload of that stage (HEAD + PUT of the blob, PUT of the entry).
// Options: --mb N (default 500), --repeat N (default 3), --json
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ActionCache } from '../dist/cache/action-cache.js';
import { Cas } from '../dist/cache/cas.js';
import { copyFileAtomic } from '../dist/cache/atomic.js';
import { RemoteCache } from '../dist/cache/remote/remote-cache.js';

const { values } = parseArgs({ options: { mb: { type: 'string' }, repeat: { type: 'string' }, json: { type: 'boolean' } } });
const MB = Number(values.mb ?? 500);
const REPEAT = Number(values.repeat ?? 3);
const script = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'services', 'remote-cache.sh');

const port = await new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const work = mkdtempSync(join(tmpdir(), 'lorabuild-bench-remote-'));
const url = execFileSync('bash', [script, 'start', join(work, 'nginx'), String(port)], { encoding: 'utf8' }).trim();
const warn = (line) => console.error(line);
const node = { id: 'train:big', kind: 'train', target: 'big', deps: [], resource: 'gpu' };
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  // student A's cache: one 500 MB blob (random: incompressible)
  const a = join(work, 'a');
  mkdirSync(a);
  const casA = new Cas(a);
  const tmp = casA.tempFile();
  const fd = openSync(tmp, 'w');
  for (let i = 0; i < MB; i++) writeSync(fd, randomBytes(1024 * 1024));
  closeSync(fd);
  const blob = await casA.putFile(tmp);
  const entry = { version: 1, stage: node.id, kind: 'train', fingerprint: 'b'.repeat(64), params: {}, upstream: {}, outputs: { files: { 'state.safetensors': blob }, meta: null }, refs: [], items: [], createdAt: new Date().toISOString(), durationMs: 0 };

  let t0 = process.hrtime.bigint();
  await new RemoteCache({ url, readOnly: false, source: '--remote-cache' }, { warn }).upload(entry, casA);
  const uploadMs = ms(t0);

  const remote = [];
  const local = [];
  for (let i = 0; i < REPEAT; i++) {
    const b = join(work, `b${i}`);
    mkdirSync(b);
    const cas = new Cas(b);
    t0 = process.hrtime.bigint();
    const out = await new RemoteCache({ url, readOnly: true, source: '--remote-cache' }, { warn }).fetch(node, entry.fingerprint, cas, new ActionCache(b));
    if (!out) throw new Error('remote miss');
    copyFileAtomic(cas.path(blob.sha256), join(b, 'out', 'state.safetensors'));
    remote.push(ms(t0));
    // the local hit of the same stage: the blob is in the CAS now, restore the copy in out/
    rmSync(join(b, 'out'), { recursive: true });
    t0 = process.hrtime.bigint();
    if (!cas.has(blob.sha256, blob.size)) throw new Error('not in the local cache');
    copyFileAtomic(cas.path(blob.sha256), join(b, 'out', 'state.safetensors'));
    local.push(ms(t0));
    rmSync(b, { recursive: true, force: true });
  }
  const result = {
    mb: MB,
    uploadMs: Math.round(uploadMs),
    remoteHitMs: Math.round(median(remote)),
    remoteHitMBps: Math.round(MB / (median(remote) / 1000)),
    localHitMs: Math.round(median(local)),
    runs: { remote: remote.map(Math.round), local: local.map(Math.round) },
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(`remote cache, ${MB} MB stage output over nginx on 127.0.0.1 (median of ${REPEAT})`);
    console.log(`  upload (HEAD + PUT blob + PUT entry)        ${result.uploadMs} ms`);
    console.log(`  remote hit (GET, sha256 verify, install, copy to out/)  ${result.remoteHitMs} ms  (${result.remoteHitMBps} MB/s)  runs ${result.runs.remote.join(', ')}`);
    console.log(`  local hit (copy to out/)                     ${result.localHitMs} ms  runs ${result.runs.local.join(', ')}`);
  }
} finally {
  execFileSync('bash', [script, 'stop', join(work, 'nginx')]);
  rmSync(work, { recursive: true, force: true });
}
