// What a watch loads while it waits for the first save: the vocabulary of each validated
// dataset's tokenizer (~80 ms to parse, otherwise paid by the first caption save that has text).
import type { Config } from '../config/schema.js';
import type { Plan } from '../engine/types.js';

/** loads the tokenizers the plan's validate stages will encode with; a problem is left for the stage to report */
export async function warmTokenizers(config: Config, plan: Plan, cacheDir: string): Promise<void> {
  const { tokenizerForDataset } = await import('../text/resolve.js');
  for (const id of plan.order) {
    const node = plan.stages.get(id)!;
    if (node.kind !== 'validate') continue;
    try {
      const { tokenizer } = await tokenizerForDataset(config, node.target, { cacheDir });
      if (tokenizer.encodeIds) tokenizer.encodeIds('a');
      else tokenizer.encode('a');
    } catch {
      // the validate stage resolves it again and says what is wrong
    }
  }
}
