// A repo on the hub: its kind (dataset or model) and id, and the URLs the hub serves it under.
//   dataset: /api/datasets/<id>/...   /datasets/<id>/resolve/<rev>/<path>
//   model:   /api/models/<id>/...     /<id>/resolve/<rev>/<path>
import type { HubEnv } from './env.js';

export type RepoKind = 'dataset' | 'model';

export interface HubRepo {
  kind: RepoKind;
  /** owner/name */
  id: string;
}

/** "dataset owner/name" or "model owner/name", for messages */
export function repoLabel(repo: HubRepo): string {
  return `${repo.kind} ${repo.id}`;
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

export function apiUrl(env: HubEnv, repo: HubRepo, route: 'revision' | 'tree', revision: string): string {
  return `${env.endpoint}/api/${repo.kind}s/${repo.id}/${route}/${encodeURIComponent(revision)}`;
}

export function resolveUrl(env: HubEnv, repo: HubRepo, revision: string, path: string): string {
  const prefix = repo.kind === 'dataset' ? `${env.endpoint}/datasets/${repo.id}` : `${env.endpoint}/${repo.id}`;
  return `${prefix}/resolve/${encodeURIComponent(revision)}/${encodePath(path)}`;
}

/** The repo's page on the hub (gated repos are accepted there). */
export function repoPage(env: HubEnv, repo: HubRepo): string {
  return repo.kind === 'dataset' ? `${env.endpoint}/datasets/${repo.id}` : `${env.endpoint}/${repo.id}`;
}

/** `huggingface-cli download` line that fills the HF cache with this repo at a revision. */
export function cliDownloadHint(repo: HubRepo, revision: string): string {
  return `huggingface-cli download ${repo.id}${repo.kind === 'dataset' ? ' --repo-type dataset' : ''} --revision ${revision}`;
}
