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

export type ParsedArgs<O extends OptionSpec> = ReturnType<typeof parseCommandArgs<O>>;

/**
 * A command's argv, or the exit code when there is nothing to run: a usage error prints its message
 * and the command's help (2), --help prints the help (0). `check` adds the command's own usage rules
 * by throwing UsageError. `options` must declare `help`.
 */
export function commandArgs<O extends OptionSpec>(argv: string[], options: O, command: string, help: string, check?: (args: ParsedArgs<O>) => void): ParsedArgs<O> | number {
  let args: ParsedArgs<O>;
  try {
    args = parseCommandArgs(argv, options, command);
    if (!(args.values as { help?: boolean }).help) check?.(args);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${help}`);
      return 2;
    }
    throw err;
  }
  if ((args.values as { help?: boolean }).help) {
    process.stdout.write(help);
    return 0;
  }
  return args;
}
