// -o json | yaml | name | wide: one set of flags for every command that prints objects.

import { usage } from '../errors.ts'
import { yamlLib } from '../yaml.ts'

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml' | 'name'

const OUTPUT_FORMATS = ['wide', 'json', 'yaml', 'name'] as const

export function outputFormat(o: string | undefined, allowed: readonly string[] = OUTPUT_FORMATS): OutputFormat {
  if (o === undefined) return 'table'
  if (!allowed.includes(o)) throw usage(`-o ${o}: expected one of ${allowed.join(', ')}`)
  return o as OutputFormat
}

/** JSON as kubectl prints it: two spaces, a final newline. Keys in the order the service sent them. */
function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`
}

export function yaml(value: unknown): string {
  return yamlLib().stringify(value, { lineWidth: 0, aliasDuplicateObjects: false })
}

/** A list as kubectl prints one: {"kind": "List", "items": [...]}. */
export function list(kind: string, items: unknown[]): { kind: string; items: unknown[] } {
  return { kind, items }
}

export function structured(format: 'json' | 'yaml', value: unknown): string {
  return format === 'json' ? json(value) : yaml(value)
}
