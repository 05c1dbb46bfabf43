// What a watch does while it waits for the first save, so that the first save costs what any save
// does. On a built cache the first build runs nothing, and the first save would pay for the
// memos every later save reuses: the dataset's listing, its items' keys and packs, the kept
// validation report (at 10,000 items ~0.8 s, against ~60 ms for the saves after it), and the
// tokenizer's vocabulary (~80 ms to parse).
import type { Config } from '../config/schema.js';
import type { Plan } from '../engine/types.js';

/**
 * The stages a warm-up reruns (engine/executor.ts mode 'warm'): prepare and validate, and the
 * fetch of a local folder. Never a hub fetch (it may ask the network), train or render.
 */
export function warmStageIds(config: Config, plan: Plan): Set<string> {
  const ids = new Set<string>();
  for (const id of plan.order) {
    const node = plan.stages.get(id)!;
    if (node.kind === 'prepare' || node.kind === 'validate' || (node.kind === 'fetch' && config.datasets[node.target]?.folder !== undefined)) ids.add(id);
  }
  return ids;
}
