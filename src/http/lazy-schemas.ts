// Route schemas compiled on a route's first request instead of at app.ready().
//
// Fastify compiles every route's validators (Ajv) and response serializers
// (fast-json-stringify) while the app starts. On Lambda that start is the cold
// start, and a first request uses one or two routes of the thirty: the rest
// would be compiled for nothing. Here each compile is deferred to the first
// call of the function Fastify asked for, then kept, so every later request
// runs the same compiled code as before. Fastify's own compilers do the work,
// with the options Fastify gives them (coercion, defaults, removeAdditional,
// shared schemas): the answers are unchanged. src/lambda.ts turns this on; a
// long-running server compiles at start, where a broken schema stops it.
//
// Nor is each schema first checked against JSON Schema's meta-schema (Ajv's
// validateSchema): that check compiles the meta-schema itself, most of the
// cost of a first compile. It finds mistakes in our schemas, not in requests,
// and the same schemas are checked wherever the app compiles at start: every
// long-running server and the tests.

import { AjvCompiler } from '@fastify/ajv-compiler'
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import type { FastifyServerOptions } from 'fastify'

type SchemaController = NonNullable<FastifyServerOptions['schemaController']>

/** What Fastify passes a compiler for one schema of one route. */
interface RouteSchema {
  schema: unknown
  method: string
  url: string
  httpPart?: string
}
/** Fastify's factories: from the shared schemas and the options, a compiler of route schemas. */
type Factory<F> = (externalSchemas: unknown, options: unknown) => (route: RouteSchema) => F
/** An Ajv validator: Fastify reads a failed one's errors from the function itself. */
type Validator = ((data: unknown) => unknown) & { errors?: unknown }
type Serializer = (data: unknown) => string
/** What Fastify passes the validator factory: Ajv's options among them. */
interface ValidatorOptions {
  customOptions?: Record<string, unknown>
}

function withoutSchemaCheck(options: ValidatorOptions): ValidatorOptions {
  return { ...options, customOptions: { ...options.customOptions, validateSchema: false } }
}

/** The schemaController option of Fastify() that defers every route's compiles to its first use. */
export function lazySchemaController(): SchemaController {
  const buildValidator = AjvCompiler() as unknown as Factory<Validator>
  const buildSerializer = SerializerSelector() as unknown as Factory<Serializer>
  const lazyValidators: Factory<Validator> = (externalSchemas, options) => {
    let compile: ((route: RouteSchema) => Validator) | undefined
    return (route) => {
      // Fastify lower-cases a header schema's names only for its default compiler: with a
      // factory of ours it would not, and a rule on a header would silently never match.
      if (route.httpPart === 'headers') throw new Error(`${route.method} ${route.url}: header schemas are not supported with lazy schema compilation`)
      let validate: Validator | undefined
      const lazy: Validator = (data) => {
        validate ??= (compile ??= buildValidator(externalSchemas, withoutSchemaCheck(options as ValidatorOptions)))(route)
        const valid = validate(data)
        lazy.errors = validate.errors
        return valid
      }
      return lazy
    }
  }
  const lazySerializers: Factory<Serializer> = (externalSchemas, options) => {
    let compile: ((route: RouteSchema) => Serializer) | undefined
    return (route) => {
      let serialize: Serializer | undefined
      return (data) => (serialize ??= (compile ??= buildSerializer(externalSchemas, options))(route))(data)
    }
  }
  // Fastify's factory types are unions over Ajv's and JTD's modes; these stand for the Ajv mode Fastify uses.
  return { compilersFactory: { buildValidator: lazyValidators as never, buildSerializer: lazySerializers as never } }
}
