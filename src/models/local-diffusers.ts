// `checkpoint:` naming a diffusers folder (model_index.json, unet/, vae/, text_encoder/,
// tokenizer/): the files a build uses, hashed through the stat memo, shown to the worker as a
// view with exactly those files.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { StageContext } from '../engine/types.js';
import { COMPONENTS } from './diffusers-files.js';
import { choose, diffusersArch, diffusersIdentity, identityHash, weightFiles } from './diffusers-model.js';
import type { ModelFacts, ResolvedModel } from './facts.js';
import { modelView } from './view.js';

/** model_index.json and the files one level inside the component and tokenizer folders. */
async function folderFiles(folder: string): Promise<Set<string>> {
  const paths = new Set<string>();
  if (existsSync(join(folder, 'model_index.json'))) paths.add('model_index.json');
  for (const dir of [...COMPONENTS, 'tokenizer']) {
    const entries = await readdir(join(folder, dir), { withFileTypes: true }).catch(() => []);
    for (const entry of entries) if (entry.isFile() || entry.isSymbolicLink()) paths.add(`${dir}/${entry.name}`);
  }
  return paths;
}

interface LocalChoice {
  facts: ModelFacts & { arch: NonNullable<ModelFacts['arch']> };
  /** relative path -> absolute file, the files the build uses */
  files: Record<string, string>;
}

async function localChoice(ctx: StageContext, model: string, folder: string, options: { preferHalf: boolean; allowPickle: boolean }): Promise<LocalChoice> {
  const present = await folderFiles(folder);
  const where = `the diffusers folder ${folder}`;
  const choice = choose(model, present, { ...options, where });
  const abs = (rel: string) => join(folder, ...rel.split('/'));
  const weights = await weightFiles(model, choice, present, async (rel) => abs(rel));
  const used = [...choice.small, ...weights];
  const hashes = await Promise.all(used.map(async (rel) => [rel, await ctx.hashFile(abs(rel))] as [string, string]));
  const unet = choice.weights.find((w) => w.component === 'unet')!;
  const firstUnet = weights.find((rel) => rel.startsWith('unet/') && rel !== unet.file) ?? unet.file;
  const arch = await diffusersArch(model, where, present.has('unet/config.json') ? abs('unet/config.json') : undefined, abs(firstUnet));
  return {
    facts: { identity: diffusersIdentity(hashes), arch, tokenizerDir: folder },
    files: Object.fromEntries(used.map((rel) => [rel, abs(rel)])),
  };
}

export async function localDiffusersFacts(ctx: StageContext, model: string, folder: string, options: { preferHalf: boolean; allowPickle: boolean }): Promise<ModelFacts> {
  return (await localChoice(ctx, model, folder, options)).facts;
}

export async function localDiffusersModel(ctx: StageContext, model: string, folder: string, options: { preferHalf: boolean; allowPickle: boolean }): Promise<ResolvedModel> {
  const { facts, files } = await localChoice(ctx, model, folder, options);
  return { path: await modelView(ctx.cacheDir, files), sha256: identityHash(facts.identity), arch: facts.arch };
}
