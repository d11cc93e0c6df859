// The served schema: every file under schema/, in name order (one file per
// domain), with the internal values src/graphql/resolvers.ts gives its enums.

import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildASTSchema, isEnumType, parse, type DocumentNode, type GraphQLSchema } from 'graphql'

const SCHEMA_DIR = fileURLToPath(new URL('../../schema/', import.meta.url))

/**
 * The SDL document parsed when the Lambda bundle was built (scripts/build-lambda.mjs
 * defines it as the JSON of schemaDocument(), after building a schema from it, so
 * it is valid SDL); undefined anywhere else. Parsing 33 KB of SDL is most of what
 * building the schema costs, and a cold start pays it for every container.
 */
declare const STATICPOD_SCHEMA_DOCUMENT: string | undefined
const prebuiltDocument = typeof STATICPOD_SCHEMA_DOCUMENT === 'string' ? STATICPOD_SCHEMA_DOCUMENT : undefined

/**
 * Every file under schema/, in name order, as one parsed SDL document. Locations
 * point a broken SDL's errors at the line; the bundle's document, checked when
 * built, goes without them (a third of its size).
 *
 * @public scripts/build-lambda.mjs loads it with tsx's tsImport(), which knip does not follow.
 */
export function schemaDocument(options: { locations: boolean } = { locations: true }, dir: string = SCHEMA_DIR): DocumentNode {
  const text = readdirSync(dir)
    .filter((f) => f.endsWith('.graphql'))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n')
  return parse(text, { noLocation: !options.locations })
}

/**
 * The SDL as an executable schema, its enums' values given the internal values
 * of enumValues (NodeKind: LOCAL is a node record's 'local'), which graphql-js
 * serializes back to the names. mercurius sets the field resolvers on the
 * schema itself, but takes no enum values: they are set here, before the
 * schema has serialized anything.
 */
export function servedSchema(enumValues: Record<string, Record<string, unknown>>): GraphQLSchema {
  const schema =
    prebuiltDocument === undefined
      ? buildASTSchema(schemaDocument())
      : buildASTSchema(JSON.parse(prebuiltDocument) as DocumentNode, { assumeValidSDL: true })
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
