// A test-only knob that makes one stage slow, deterministically: with
//   LORABUILD_TEST_HOLD_STAGE=validate:ds  LORABUILD_TEST_HOLD_FILE=/tmp/x/hold
// that stage's run() waits while the hold file exists (or until the run is aborted). Tests use it
// to make changes arrive while a build is certainly running. Unset, the registry is unchanged.
import { existsSync } from 'node:fs';
import type { StageRegistry } from '../engine/executor.js';

const POLL_MS = 20;

export function withTestHold(registry: StageRegistry, env: NodeJS.ProcessEnv = process.env): StageRegistry {
  const stageId = env.LORABUILD_TEST_HOLD_STAGE;
  const holdFile = env.LORABUILD_TEST_HOLD_FILE;
  if (!stageId || !holdFile) return registry;
  return async (kind) => {
    const impl = await registry(kind);
    return {
      ...impl,
      async run(ctx, inputs) {
        if (ctx.node.id === stageId) {
          while (existsSync(holdFile) && !ctx.signal.aborted) await new Promise((r) => setTimeout(r, POLL_MS));
        }
        return impl.run(ctx, inputs);
      },
    };
  };
}
