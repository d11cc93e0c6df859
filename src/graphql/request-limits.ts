// Limits of a GraphQL request beyond its shape (graphql/limits.ts): the rate
// limit counts every mutation field, not the HTTP request (50 aliased
// mutations are 50 mutations), and no response grows past a size cap.

import type { FastifyInstance } from 'fastify'
import { GraphQLError, Kind, Location, type DocumentNode, type SelectionSetNode } from 'graphql'
import { ServiceError } from '../errors.ts'
import { requireActor } from '../http/auth.ts'

/**
 * A query text over maxBytes is refused before it is parsed or cached
 * (QUERY_TOO_LARGE). Manifests belong in variables: only the body limit
 * bounds those, and they are never part of the cache key.
 */
export function queryTextLimit(app: FastifyInstance, maxBytes: number): void {
  app.graphql.addHook('preParsing', async (_schema, source) => {
    // source.length (UTF-16 units) is at most the byte length: only a close call needs counting.
    if (source.length <= maxBytes / 3 || Buffer.byteLength(source, 'utf8') <= maxBytes) return
    throw new GraphQLError(
      `the query text is ${Buffer.byteLength(source, 'utf8')} bytes; at most ${maxBytes} are allowed (GRAPHQL_MAX_QUERY_BYTES): pass manifests and other large values as variables`,
      { extensions: { code: 'QUERY_TOO_LARGE' } },
    )
  })
  // mercurius takes a query that is not GraphQL but JSON as a ready-made AST, past graphql's token
  // limit; only documents graphql's parser made (they carry a Location) are accepted.
  app.graphql.addHook('preValidation', async (_schema, document) => {
    if (!(document.loc instanceof Location)) {
      throw new GraphQLError('the query is not GraphQL text', { extensions: { code: 'GRAPHQL_PARSE_FAILED' } })
    }
  })
}

/**
 * The authentication hook charged the HTTP request one unit; a mutation with
 * n top-level fields is charged the other n - 1 here, before anything runs.
 */
export function chargeMutationFields(app: FastifyInstance): void {
  app.graphql.addHook('preExecution', async (_schema, document, context) => {
    const fields = mutationFieldCount(document)
    if (fields <= 1) return
    const charge = app.chargeActor(requireActor(context.reply.request), fields - 1)
    if (!charge.allowed) {
      context.reply.header('retry-after', String(charge.retryAfterSeconds))
      throw new ServiceError(
        'RATE_LIMITED',
        `rate limit exceeded: this request holds ${fields} mutations, and at most ${charge.limit} requests or mutations per minute are allowed; retry in ${charge.retryAfterSeconds} s`,
      )
    }
  })
}

/** Top-level fields of the document's largest mutation (fragments spread at the top expanded). */
function mutationFieldCount(document: DocumentNode): number {
  const fragments = new Map<string, SelectionSetNode>()
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d.selectionSet)
  const count = (set: SelectionSetNode, seen: Set<string>): number =>
    set.selections.reduce((n, s) => {
      if (s.kind === Kind.FIELD) return n + (s.name.value.startsWith('__') ? 0 : 1)
      if (s.kind === Kind.INLINE_FRAGMENT) return n + count(s.selectionSet, seen)
      const fragment = fragments.get(s.name.value)
      if (!fragment || seen.has(s.name.value)) return n
      return n + count(fragment, new Set([...seen, s.name.value]))
    }, 0)
  let most = 0
  for (const d of document.definitions) {
    if (d.kind === Kind.OPERATION_DEFINITION && d.operation === 'mutation') most = Math.max(most, count(d.selectionSet, new Set()))
  }
  return most
}

/**
 * A GraphQL response larger than maxBytes is replaced by one RESPONSE_TOO_LARGE
 * error. The answer leaves as the UTF-8 bytes made here, once: JSON.stringify
 * builds a large answer as a rope of pieces, and a string payload would be
 * flattened and encoded twice, once by Fastify for its content-length and again
 * by the socket write (a read of 8,000 pods is 2.7 MB: tens of milliseconds).
 */
export function responseSizeLimit(app: FastifyInstance, maxBytes: number): void {
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.routeOptions.url !== '/graphql' || typeof payload !== 'string') return payload
    const bytes = Buffer.from(payload, 'utf8')
    if (bytes.length <= maxBytes) return bytes
    request.log.warn({ bytes: bytes.length, maxBytes }, 'GraphQL response over GRAPHQL_MAX_RESPONSE_BYTES replaced by an error')
    reply.code(200)
    return JSON.stringify({
      data: null,
      errors: [
        {
          message: `the response would be larger than ${maxBytes} bytes (GRAPHQL_MAX_RESPONSE_BYTES); select fewer fields or nodes`,
          extensions: { code: 'RESPONSE_TOO_LARGE' },
        },
      ],
    })
  })
}
