// Every top-level GraphQL error leaves with extensions.code and never with a
// stack: ServiceErrors keep their contract code and message; errors of the
// query itself (syntax, unknown fields, bad variables) are
// GRAPHQL_PARSE_FAILED / GRAPHQL_VALIDATION_FAILED; anything else is a bug,
// logged in full and answered as INTERNAL_SERVER_ERROR without details.

import type { FastifyBaseLogger } from 'fastify'
import { GraphQLError, type ExecutionResult, type GraphQLFormattedError } from 'graphql'
import { HTTP_STATUS, isServiceError, type ErrorCode } from '../errors.ts'

interface FormatterContext {
  reply?: { log: FastifyBaseLogger } | undefined
  app: { log: FastifyBaseLogger }
}

type FormattedResult = { statusCode: number; response: { data: Record<string, unknown> | null; errors: GraphQLFormattedError[] } }

export function errorFormatter(execution: ExecutionResult & { statusCode?: number }, context: FormatterContext): FormattedResult {
  const log = context.reply?.log ?? context.app.log
  const errors = (execution.errors ?? []).flatMap((error) => formatOne(error, log))
  const statusCode = execution.data ? 200 : (execution.statusCode ?? statusWithoutData(errors))
  return { statusCode, response: { data: execution.data ?? null, errors } }
}

function formatOne(error: GraphQLError, log: FastifyBaseLogger): GraphQLFormattedError[] {
  const original = error.originalError as (Error & { errors?: unknown; code?: unknown; statusCode?: unknown; extensions?: Record<string, unknown> }) | undefined
  const where = { ...(error.locations ? { locations: error.locations } : {}), ...(error.path ? { path: error.path } : {}) }

  // mercurius wraps the query's validation errors in one error holding them all.
  if (original && Array.isArray(original.errors)) {
    return (original.errors as GraphQLError[]).flatMap((e) => formatOne(e, log))
  }
  if (isServiceError(original)) {
    return [{ message: original.message, ...where, extensions: { code: original.code, ...(original.field ? { field: original.field } : {}) } }]
  }
  const givenCode = original?.extensions?.code ?? error.extensions?.code
  if (typeof givenCode === 'string') {
    return [{ message: error.message, ...where, extensions: { ...original?.extensions, ...error.extensions, code: givenCode } }]
  }
  // A fault of execution itself (null for a non-null field, a value its scalar cannot serialise) is a bug:
  // graphql-js wraps the Error it made, and that ends below as INTERNAL_SERVER_ERROR; graphql-jit (compiled
  // queries, src/app.ts) raises the same faults with a path and no original error. The same answer either way.
  if (!original && error.path) return internalError(error, error, where, log)
  // Errors of the query itself (syntax, validation, variable coercion) happen before execution: no path.
  if (!original || (original instanceof GraphQLError && !error.path)) {
    // graphql's own message for parseOptions.maxTokens (GRAPHQL_MAX_TOKENS).
    if (/^Syntax Error: Document contains more (?:that|than) \d+ tokens/.test(error.message)) {
      return [{ message: `${error.message} (GRAPHQL_MAX_TOKENS)`, ...where, extensions: { code: 'QUERY_TOO_COMPLEX' } }]
    }
    const code = error.message.startsWith('Syntax Error') ? 'GRAPHQL_PARSE_FAILED' : 'GRAPHQL_VALIDATION_FAILED'
    return [{ message: error.message, ...where, extensions: { code } }]
  }
  // Errors raised by fastify or mercurius themselves for a bad request.
  const statusCode = (original as { statusCode?: unknown }).statusCode
  if (typeof statusCode === 'number' && statusCode < 500) {
    return [{ message: original.message, ...where, extensions: { code: statusCode === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST' } }]
  }
  return internalError(error, original, where, log)
}

/** A bug: logged in full, answered without details. */
function internalError(error: GraphQLError, cause: unknown, where: Pick<GraphQLFormattedError, 'locations' | 'path'>, log: FastifyBaseLogger): GraphQLFormattedError[] {
  log.error({ err: cause, path: error.path }, 'unexpected error in a GraphQL resolver')
  return [{ message: 'Internal server error', ...where, extensions: { code: 'INTERNAL_SERVER_ERROR' } }]
}

/** Codes of requests refused before anything ran. */
const REQUEST_ERROR_STATUS: Record<string, number> = {
  GRAPHQL_PARSE_FAILED: 400,
  GRAPHQL_VALIDATION_FAILED: 400,
  QUERY_TOO_DEEP: 400,
  QUERY_TOO_COMPLEX: 400,
  QUERY_TOO_LARGE: 400,
  BAD_REQUEST: 400,
  PAYLOAD_TOO_LARGE: 413,
}

/** A request that produced no data at all: the status of its first error that has one. */
function statusWithoutData(errors: GraphQLFormattedError[]): number {
  for (const { extensions } of errors) {
    const code = String(extensions?.code)
    const status = REQUEST_ERROR_STATUS[code] ?? (code in HTTP_STATUS ? HTTP_STATUS[code as ErrorCode] : undefined)
    if (status !== undefined) return status
  }
  return 200
}
