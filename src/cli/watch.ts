// lorabuild watch [targets] [-f FILE] [--through STAGE] [--no-cancel] [--json] [--debounce MS]
// Builds the targets, then rebuilds whenever the lorafile or one of their inputs changes.
// Exit codes: 2 usage, 130 after Ctrl-C (the normal way to stop it).
import { dirname, resolve } from 'node:path';
import { stageRegistry } from '../stages/index.js';
import { makeScreen } from '../watch/screen.js';
import { WatchSession } from '../watch/session.js';
import { withTestHold } from '../watch/test-hold.js';
import { isThroughKind, THROUGH_KINDS } from '../watch/through.js';
import { UsageError, commandArgs, lorafileOption } from './args.js';
import { STOP_SIGNALS, stopWhenOutputCloses } from './signals.js';

const DEFAULT_DEBOUNCE_MS = 10;

const HELP = `usage: lorabuild watch [targets...] [-f FILE] [--through STAGE] [--no-cancel] [--json] [--debounce MS]

Builds the targets (default: all), then rebuilds whenever the lorafile, a dataset file (caption
or image, new or deleted) or a local model file changes. Caption diagnostics are re-shown after
every save; results being rebuilt are marked stale until they are current again.

  -f, --file FILE     the lorafile (default ./lorafile.yaml)
  --through STAGE     rebuild only up to this stage: ${THROUGH_KINDS.join(' | ')}
                      (--through validate checks captions on every save without training)
  --no-cancel         let a running train or render finish when its inputs change, then rerun
                      (default: stop it at the next step with a resumable state, and rerun)
  --json              one JSON object per line per event
  --debounce MS       quiet time after a burst of changes before a rebuild (default ${DEFAULT_DEBOUNCE_MS});
                      a lone change after a quiet spell is rebuilt at once

Ctrl-C stops the running stages (nothing is left half-written) and exits with code 130.
`;

export async function main(argv: string[]): Promise<number> {
  const args = commandArgs(
    argv,
    {
      ...lorafileOption,
      through: { type: 'string' },
      'no-cancel': { type: 'boolean' },
      json: { type: 'boolean' },
      debounce: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    'watch',
    HELP,
    (parsed) => {
      const { through, debounce } = parsed.values;
      if (through !== undefined && !isThroughKind(through)) {
        throw new UsageError(`lorabuild watch: --through '${through}' is not a stage; use one of ${THROUGH_KINDS.join(', ')}`);
      }
      if (debounce !== undefined && !/^\d{1,5}$/.test(debounce)) {
        throw new UsageError(`lorabuild watch: --debounce '${debounce}' must be a whole number of milliseconds (0-99999)`);
      }
    },
  );
  if (typeof args === 'number') return args;
  const through = args.values.through;
  const kind = args.values.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain';
  const session = new WatchSession({
    file: args.values.file,
    targets: args.positionals,
    through: through !== undefined && isThroughKind(through) ? through : undefined,
    cancel: !args.values['no-cancel'],
    debounceMs: args.values.debounce !== undefined ? Number(args.values.debounce) : DEFAULT_DEBOUNCE_MS,
    // diagnostics name files relative to the lorafile's folder
    screen: makeScreen(kind, dirname(resolve(args.values.file ?? 'lorafile.yaml'))),
    registry: withTestHold(stageRegistry),
  });

  let stopping: Promise<void> | undefined;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => {
      if (stopping) {
        // every cache and lock write is temp + rename, so quitting now leaves nothing half-written
        process.exit(130);
      }
      stopping = session.stop().then(resolve, resolve);
    };
    for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
    // the reader of its output gone: the watch stops as on Ctrl-C, once (its last events fail to print)
    stopWhenOutputCloses(() => {
      if (!stopping) onSignal();
    });
  });
  await session.start();
  await stopped;
  return 130;
}
