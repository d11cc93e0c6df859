// The served schema: every file under schema/, in name order (one file per
// domain), with the internal values src/graphql/resolvers.ts gives its enums.

import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildSchema, isEnumType, type GraphQLSchema } from 'graphql'

const SCHEMA_DIR = fileURLToPath(new URL('../../schema/', import.meta.url))

function loadSchemaText(dir: string): string {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.graphql'))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n')
}

/**
 * The SDL as an executable schema, its enums' values given the internal values
 * of enumValues (NodeKind: LOCAL is a node record's 'local'), which graphql-js
 * serializes back to the names. mercurius sets the field resolvers on the
 * schema itself, but takes no enum values: they are set here, before the
 * schema has serialized anything.
 */
export function servedSchema(enumValues: Record<string, Record<string, unknown>>, dir: string = SCHEMA_DIR): GraphQLSchema {
  const schema = buildSchema(loadSchemaText(dir))
  for (const [typeName, table] of Object.entries(enumValues)) {
    const type = schema.getType(typeName)
    if (!isEnumType(type)) throw new Error(`enum values are given for ${typeName}, which is not an enum of the schema`)
    for (const [name, internal] of Object.entries(table)) {
      const value = type.getValue(name)
      if (!value) throw new Error(`the resolvers give enum ${typeName} a value ${name} that the schema does not have`)
      value.value = internal
    }
  }
  return schema
}
