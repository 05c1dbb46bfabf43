// ../shared/reference (test data only: the CLIP tokenizer files and the SD1.5 key manifests). CI
// clones the repo with shared/ beside it, so it is found relative to the checkout, not at a fixed path.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from './cli.js';

const candidates = [process.env.LORABUILD_SHARED_REFERENCE, resolve(REPO_ROOT, '..', 'shared', 'reference')].filter((p): p is string => !!p);
export const REFERENCE_DIR = candidates.find((p) => existsSync(p)) ?? candidates[candidates.length - 1];
export const CLIP_TOKENIZER_DIR = join(REFERENCE_DIR, 'clip-tokenizer');
export const SD15_MANIFEST_DIR = join(REFERENCE_DIR, 'sd15-key-manifest');
