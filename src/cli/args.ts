// A small strict option parser shared by the commands: every option is declared, an unknown one is
// an error that names it (and suggests the closest known one).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { didYouMean } from '../config/suggest.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export class UsageError extends Error {}

export function parseCommandArgs<O extends OptionSpec>(argv: string[], options: O, command: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`lorabuild ${command}: ${usageMessage(err as NodeJS.ErrnoException, options)}`);
  }
}

/** node:util's parser errors in our words: an unknown option gets the closest known one. */
function usageMessage(err: NodeJS.ErrnoException, options: OptionSpec): string {
  const unknown = /^Unknown option '([^']+)'/.exec(err.message)?.[1];
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
    const known = Object.entries(options).flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]);
    const word = unknown.split('=')[0];
    // '-x' is one letter away from every other short option: no guess there
    const suggestion = word.length > 2 ? didYouMean(word, known) : undefined;
    return `unknown option '${unknown}'${suggestion ? `; did you mean '${suggestion}'?` : ''}`;
  }
  const missing = /^Option '(?:-\w, )?(--[\w-]+) <value>' argument missing/.exec(err.message)?.[1];
  if (missing) return `${missing} needs a value, e.g. ${missing} VALUE`;
  const flag = /^Option '(--[\w-]+)' does not take an argument/.exec(err.message)?.[1];
  if (flag) return `${flag} is a switch and takes no value: write ${flag} alone`;
  return err.message;
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
