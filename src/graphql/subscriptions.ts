// GraphQL subscriptions over WebSocket on /graphql (mercurius, the graphql-ws
// protocol that GraphiQL and Apollo clients speak), with the same rules as a
// query and bounds of their own:
//
// - Who: the token in the connection_init payload ({"Authorization": "Bearer
//   ..."}, also under "headers"), else the upgrade request's Authorization
//   header (checked by the auth plugin before the upgrade). Neither: the
//   connection is refused at init. Failures count against the client address
//   like HTTP ones (app.authenticateBearer).
// - What: every subscription document is validated against the schema and the
//   query limits (mercurius does not validate subscriptions itself).
// - How much: at most SUBSCRIPTION_MAX_CONNECTIONS sockets (503 BUSY at the
//   upgrade), SUBSCRIPTION_MAX_PER_CONNECTION subscriptions on one, and
//   SUBSCRIPTION_MESSAGES_PER_MINUTE messages from a client per connection
//   (past it the socket is closed, 1008). Frames are at most 64 KiB.

import type { FastifyInstance, FastifyRequest } from 'fastify'
import { GraphQLError, specifiedRules, validate, type ValidationRule } from 'graphql'
import type { MercuriusContext } from 'mercurius'
import type { WebSocket } from 'ws'
import type { SubscriptionLimits } from '../config.ts'
import { isServiceError, ServiceError } from '../errors.ts'
import type { Actor } from '../services/actor.ts'
import type { Services } from '../services/index.ts'
import { sendApiError } from '../http/auth.ts'
import { guardedIterator } from '../stream.ts'
import { RequestScope } from './scope.ts'

/** What one WebSocket connection holds across its subscriptions. */
interface ConnectionState {
  open: number
}

declare module 'mercurius' {
  interface MercuriusContext {
    /** Set on subscription connections only. */
    subscriptions?: ConnectionState
  }
}

/** ws's own limit on one frame (mercurius would allow 1 MiB): a subscription document is small. */
export const MAX_FRAME_BYTES = 64 * 1024

/** The part of SubscriptionConnection (mercurius) an onConnect sees as `this`: the upgrade request. */
interface ConnectionThis {
  context?: { request?: FastifyRequest }
  socket?: WebSocket
}

/** mercurius's subscription option. */
export function subscriptionOptions(app: FastifyInstance, services: Services) {
  return {
    keepAlive: 30_000,
    // mercurius calls onConnect as a method of the connection, whose context holds the upgrade request (its
    // header's actor, its address); onConnect has no other way to them. test/graphql/subscriptions.test.ts
    // covers both ways in, so a mercurius release that changes this fails there.
    onConnect: function (this: ConnectionThis | undefined, data: { payload?: unknown }): false | { scope: RequestScope; subscriptions: ConnectionState } {
      const request = this?.context?.request
      const given = tokenInInit(data.payload)
      let actor: Actor | null
      if (given !== undefined) {
        const result = app.authenticateBearer(given, request?.ip ?? 'unknown')
        actor = result === 'rate-limited' ? null : result
      } else {
        actor = request?.actor ?? null
      }
      if (actor === null) {
        // graphql-transport-ws refuses with close code 4403 (mercurius would send a connection_error message,
        // which is the older subscriptions-transport-ws protocol's and which graphql-ws clients reject as invalid).
        if (this?.socket?.protocol === 'graphql-transport-ws') this.socket.close(4403, 'Forbidden')
        return false
      }
      const reported = (error: Error) => request?.log.debug({ err: error.message }, 'subscription: a field failed')
      return { scope: new RequestScope(services, actor, reported), subscriptions: { open: 0 } }
    },
  }
}

/** The Authorization value of a connection_init payload: {"Authorization": ...}, any case, or under headers. */
function tokenInInit(payload: unknown): unknown {
  if (typeof payload !== 'object' || payload === null) return undefined
  const fields = payload as Record<string, unknown>
  const headers = typeof fields.headers === 'object' && fields.headers !== null ? (fields.headers as Record<string, unknown>) : fields
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === 'authorization') return value
  return undefined
}

/** The bounds and the validation, once mercurius (and so @fastify/websocket) is registered. */
export function guardSubscriptions(app: FastifyInstance, limits: SubscriptionLimits, rules: readonly ValidationRule[]): void {
  app.addHook('onRequest', async (request, reply) => {
    if (!request.ws || request.routeOptions.url !== '/graphql') return
    if (app.websocketServer.clients.size >= limits.maxConnections) {
      reply.header('retry-after', '10')
      return sendApiError(request, reply, 503, 'BUSY', `at most ${limits.maxConnections} subscription connections are open at once (SUBSCRIPTION_MAX_CONNECTIONS); retry later`)
    }
  })
  app.websocketServer.on('connection', (socket: WebSocket) => limitMessages(socket, limits.messagesPerMinute))
  app.graphql.addHook('preSubscriptionExecution', async (schema, document) => {
    const errors = validate(schema, document, [...specifiedRules, ...rules])
    if (errors.length > 0) {
      const first = errors[0] as GraphQLError
      throw new GraphQLError(first.message, { nodes: first.nodes, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } })
    }
  })
}

/** Closes the socket (1008) once its client sent more than perMinute messages within one minute. */
function limitMessages(socket: WebSocket, perMinute: number): void {
  let windowStart = Date.now()
  let count = 0
  socket.on('message', () => {
    const now = Date.now()
    if (now - windowStart >= 60_000) {
      windowStart = now
      count = 0
    }
    if (++count > perMinute) socket.close(1008, `more than ${perMinute} messages per minute (SUBSCRIPTION_MESSAGES_PER_MINUTE)`)
  })
}

/**
 * One subscription's stream, counted against its connection's bound, with
 * ServiceErrors turned into GraphQL errors that keep their code (mercurius
 * sends a thrown error as it is, without the errorFormatter).
 */
export function bounded<T>(context: MercuriusContext, limit: number, stream: () => AsyncIterator<T>): AsyncIterableIterator<T> {
  const connection = context.subscriptions
  if (connection && connection.open >= limit) {
    throw asGraphQLError(new ServiceError('BUSY', `at most ${limit} subscriptions per connection (SUBSCRIPTION_MAX_PER_CONNECTION)`))
  }
  let source: AsyncIterator<T>
  try {
    source = stream()
  } catch (err) {
    throw asGraphQLError(err)
  }
  if (connection) connection.open++
  return guardedIterator(source, asGraphQLError, () => {
    if (connection) connection.open--
  })
}

function asGraphQLError(err: unknown): GraphQLError {
  if (err instanceof GraphQLError) return err
  if (isServiceError(err)) return new GraphQLError(err.message, { extensions: { code: err.code, ...(err.field ? { field: err.field } : {}) } })
  return new GraphQLError('internal error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })
}
