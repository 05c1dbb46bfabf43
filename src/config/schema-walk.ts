// Looks things up in the zod schema by lorafile path: the valid keys of an object (for "did you
// mean"), a field's default and description (for hints).
import { z } from 'zod';
import { LorafileSchema } from './schema.js';
import type { PathSegment } from './locate.js';

type AnySchema = z.ZodType;

interface FieldInfo {
  schema: AnySchema;
  defaultValue: unknown;
  /** the schema's description, shortened for a hint: without what the default is or that it is required */
  description: string | undefined;
}

/** "The base model to train on. Required." -> "the base model to train on" */
export function hintFromDescription(description: string | undefined): string | undefined {
  if (!description) return undefined;
  const kept = description
    .split(/(?<=\.)\s+(?=[A-Z])/)
    .filter((sentence) => !/^(Required|No default|Default:)/.test(sentence))
    .join(' ')
    .replace(/\.$/, '');
  return kept ? kept[0].toLowerCase() + kept.slice(1) : undefined;
}

function unwrap(schema: AnySchema): FieldInfo {
  let current = schema;
  let defaultValue: unknown;
  let description = schema.description;
  for (;;) {
    if (current instanceof z.ZodDefault) {
      defaultValue = current.def.defaultValue;
      current = current.unwrap() as AnySchema;
    } else if (current instanceof z.ZodOptional) {
      current = current.unwrap() as AnySchema;
    } else {
      break;
    }
    description ??= current.description;
  }
  return { schema: current, defaultValue, description: hintFromDescription(description) };
}

/** The schema of the value at `path` (record keys and array indices step into values/elements). */
export function fieldAt(path: readonly PathSegment[]): FieldInfo | undefined {
  let info = unwrap(LorafileSchema);
  for (const segment of path) {
    const s = info.schema;
    if (s instanceof z.ZodObject) {
      const child = (s.shape as Record<string, AnySchema>)[String(segment)];
      if (!child) return undefined;
      info = unwrap(child);
    } else if (s instanceof z.ZodRecord) {
      info = unwrap(s.valueType as AnySchema);
    } else if (s instanceof z.ZodArray) {
      info = unwrap(s.element as AnySchema);
    } else {
      return undefined;
    }
  }
  return info;
}

/** The keys an object at `path` accepts. */
export function keysAt(path: readonly PathSegment[]): string[] {
  const s = fieldAt(path)?.schema;
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}
