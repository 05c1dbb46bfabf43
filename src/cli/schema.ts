// lorabuild schema [-o FILE]: the lorafile JSON Schema (draft-07, what the YAML language server
// reads), for editor completion and checking:   # yaml-language-server: $schema=./lorafile.schema.json
import { resolve } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../cache/atomic.js';
import { LorafileSchema } from '../config/schema.js';
import { commandArgs, UsageError } from './args.js';

/** The file name `lorabuild init` writes and the `$schema` comment of the templates points to. */
export const SCHEMA_FILE = 'lorafile.schema.json';
export const SCHEMA_COMMENT = `# yaml-language-server: $schema=./${SCHEMA_FILE}`;

const HELP = `usage: lorabuild schema [-o ${SCHEMA_FILE}]

Prints (or with -o writes) the JSON Schema (draft-07) of lorafile.yaml version 1: every field with
its description and default. Point your editor at it with the YAML extension's comment line:
  ${SCHEMA_COMMENT}

  -o, --output FILE   write the schema to FILE instead of printing it
`;

export function lorafileJsonSchema(): Record<string, unknown> {
  // 'input': fields with defaults are optional, as they are when writing a lorafile;
  // draft-07: the draft the YAML language server (VS Code's YAML extension) supports
  const schema = z.toJSONSchema(LorafileSchema, { io: 'input', target: 'draft-7' }) as Record<string, unknown>;
  return { ...schema, title: 'lorabuild lorafile v1' };
}

export function lorafileJsonSchemaText(): string {
  return `${JSON.stringify(lorafileJsonSchema(), null, 2)}\n`;
}

/** Writes the schema file beside a lorafile (atomically); returns its path. */
export function writeSchemaFile(folder: string): string {
  const file = resolve(folder, SCHEMA_FILE);
  writeFileAtomic(file, lorafileJsonSchemaText());
  return file;
}

export async function main(argv: string[]): Promise<number> {
  const args = commandArgs(argv, { output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } }, 'schema', HELP, ({ positionals }) => {
    if (positionals.length > 0) throw new UsageError(`lorabuild schema: unexpected argument '${positionals[0]}'`);
  });
  if (typeof args === 'number') return args;
  if (args.values.output) {
    writeFileAtomic(resolve(args.values.output), lorafileJsonSchemaText());
    process.stderr.write(`wrote ${args.values.output}\n`);
  } else process.stdout.write(lorafileJsonSchemaText());
  return 0;
}
