// A small strict option parser shared by the commands: every option is declared, an unknown one is
// an error that names it (and suggests the closest known one).
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export class UsageError extends Error {}

export function parseCommandArgs<O extends OptionSpec>(argv: string[], options: O, command: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`lorabuild ${command}: ${(err as Error).message}`);
  }
}

/** Common: --file/-f names the lorafile (default ./lorafile.yaml). */
export const lorafileOption = { file: { type: 'string', short: 'f' } } as const;
