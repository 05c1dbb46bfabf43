// lorabuild schema: the lorafile JSON Schema, for editor completion and checking, e.g. with
// yaml-language-server:   # yaml-language-server: $schema=./lorafile.schema.json
import { z } from 'zod';
import { LorafileSchema } from '../config/schema.js';

const HELP = `usage: lorabuild schema > lorafile.schema.json

Prints the JSON Schema of lorafile.yaml (version 1). Point your editor at it, e.g. with the
YAML extension's first-line comment:  # yaml-language-server: $schema=./lorafile.schema.json
`;

export function lorafileJsonSchema(): Record<string, unknown> {
  // 'input': fields with defaults are optional, as they are when writing a lorafile
  const schema = z.toJSONSchema(LorafileSchema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
  return { ...schema, title: 'lorabuild lorafile v1' };
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  if (argv.length > 0) {
    process.stderr.write(`lorabuild schema: unexpected argument '${argv[0]}'\n\n${HELP}`);
    return 2;
  }
  process.stdout.write(JSON.stringify(lorafileJsonSchema(), null, 2) + '\n');
  return 0;
}
