// Finds an ONNX model folder the way datasets are found: a local path (file or folder), else a
// Hugging Face repo id in the HF cache (models--owner--name/snapshots/<sha>/), else a download into
// that cache (never when HF_HUB_OFFLINE=1). A miss says every place it looked.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { hubEnv } from '../datasets/hub/env.js';
import { OnnxModelError } from './signature.js';

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** `files`: alternatives per required file, e.g. [['model.onnx'], ['selected_tags.csv']]. */
export async function findModelDir(spec: string, files: string[][], base = process.cwd()): Promise<string> {
  const looked: string[] = [];
  const hasAll = (dir: string) => files.every((alts) => alts.some((f) => existsSync(join(dir, f))));
  const local = isAbsolute(spec) ? spec : resolve(base, spec.replace(/^~(?=\/|$)/, process.env.HOME ?? '~'));
  if (existsSync(local)) {
    const dir = statSync(local).isDirectory() ? local : dirname(local);
    if (hasAll(dir)) return dir;
    throw new OnnxModelError(`${spec}: the folder lacks ${files.filter((alts) => !alts.some((f) => existsSync(join(dir, f)))).map((a) => a.join(' or ')).join(', ')}`);
  }
  looked.push(`${local} (no such file or folder)`);
  if (!REPO_ID.test(spec)) throw new OnnxModelError(`model ${spec} not found; looked in: ${looked.join('; ')}. Pass a folder path or a Hugging Face repo id (owner/name).`);

  const env = hubEnv();
  const repoDir = join(env.cacheDir, `models--${spec.replace('/', '--')}`);
  const refFile = join(repoDir, 'refs', 'main');
  if (existsSync(refFile)) {
    const snapshot = join(repoDir, 'snapshots', readFileSync(refFile, 'utf8').trim());
    if (hasAll(snapshot)) return snapshot;
    looked.push(`${snapshot} (incomplete)`);
  } else {
    looked.push(`${repoDir} (not in the HF cache)`);
  }
  if (env.offline) {
    throw new OnnxModelError(`model ${spec} is not in the Hugging Face cache and HF_HUB_OFFLINE=1; looked in: ${looked.join('; ')}. Download it once online (or copy the folder) and pass its path.`);
  }
  const { downloadFileToCacheDir } = await import('@huggingface/hub');
  let snapshot = '';
  for (const alts of files) {
    let lastError: unknown;
    for (const path of alts) {
      try {
        const file = await downloadFileToCacheDir({ repo: { type: 'model', name: spec }, path, hubUrl: env.endpoint, cacheDir: env.cacheDir, accessToken: env.token });
        // the result is snapshots/<sha>/<path>
        snapshot = file.slice(0, file.length - path.length - 1);
        lastError = undefined;
        break;
      } catch (err) {
        lastError = err;
      }
    }
    if (lastError) throw new OnnxModelError(`model ${spec}: could not download ${alts.join(' or ')} from ${env.endpoint} (${(lastError as Error).message}); looked in: ${looked.join('; ')}`);
  }
  return snapshot;
}
