// Authentication: deny by default. Every route needs an authenticated actor
// except those on PUBLIC_ROUTES, and the decision is made on the route the
// router matched (Fastify's routeOptions.url, after percent-decoding), never on
// the raw URL, so no spelling of a path (%61pi, //api, /API, ;x) can reach a
// handler without a token. A request that matched no route needs an actor too:
// a 404 would tell an anonymous caller which paths exist.
//
// Order of the checks, all in one onRequest hook:
//   1. public route: served as is;
//   2. no tokens configured (loopback only, checked at start): the anonymous admin;
//   3. the client address has failed too often: 429, BEFORE the token is looked
//      at, so that past the limit a right guess looks like a wrong one;
//   4. no valid token: 401, and the failure counts against the address;
//   5. the token's own budget (RATE_LIMIT_PER_MINUTE): 429.
//
// A WebSocket upgrade of /graphql (GraphQL subscriptions) without an
// Authorization header is let through to the socket: the graphql-ws protocol
// carries the token in its connection_init message, and src/graphql/subscriptions.ts
// refuses the connection there unless that token is valid (with the same
// per-address failure limit, through app.authenticateBearer).

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
// request.ws: set by @fastify/websocket (registered before this plugin) on a WebSocket upgrade.
import type {} from '@fastify/websocket'
import { ServiceError } from '../errors.ts'
import { ANONYMOUS_ADMIN, type Actor } from '../services/actor.ts'
import type { TokenAuthenticator } from '../services/tokens.ts'
import { WindowCounter, type Charge } from './rate-limits.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; null only on public routes. */
    actor: Actor | null
  }
}

/**
 * The one list of routes served without a token (as the router matched them):
 * health, readiness, and the documentation pages (the playground and the
 * OpenAPI UI, which hold no data: their queries need a token like any other).
 */
const PUBLIC_ROUTES: ReadonlySet<string> = new Set([
  '/healthz',
  '/readyz',
  '/graphiql',
  '/graphiql/assets/:asset',
  '/docs',
  '/docs/',
  '/docs/*',
  '/docs/json',
  '/docs/yaml',
  '/docs/static/*',
  '/docs/static/index.html',
  '/docs/static/swagger-initializer.js',
])

/** Only reads are public; a POST to /healthz (no such route) is not. */
const PUBLIC_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD'])

export interface AuthOptions {
  authenticator: TokenAuthenticator | null
  /** /metrics without a token (METRICS_PUBLIC). */
  metricsPublic: boolean
  /** Requests per minute and token (RATE_LIMIT_PER_MINUTE). */
  perTokenPerMinute: number
  /** Failed or missing tokens per minute and client address (AUTH_FAILURES_PER_MINUTE). */
  failuresPerAddressPerMinute: number
}

function isPublicRoute(method: string, route: string | undefined, metricsPublic: boolean): boolean {
  if (route === undefined || !PUBLIC_METHODS.has(method)) return false
  return PUBLIC_ROUTES.has(route) || (metricsPublic && route === '/metrics')
}

/** The authenticated actor of a request; UNAUTHENTICATED when there is none (never a fallback). */
export function requireActor(request: FastifyRequest): Actor {
  if (request.actor === null) throw new ServiceError('UNAUTHENTICATED', 'a valid bearer token is required (Authorization: Bearer <token>)')
  return request.actor
}

/** An error body in the shape of the surface the request went to (REST or GraphQL). */
export function sendApiError(request: FastifyRequest, reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  const route = request.routeOptions.url ?? ''
  const body = route === '/graphql' ? { data: null, errors: [{ message, extensions: { code } }] } : { error: { code, message } }
  return reply.code(status).type('application/json; charset=utf-8').send(body)
}

/** Charges a GraphQL request's extra mutation fields to its actor (the request itself was charged one). */
type ChargeActor = (actor: Actor, units: number) => Charge

/** Authenticates an Authorization header's value from a client address: the actor, null (refused), or 'rate-limited'. */
type BearerAuthenticator = (header: unknown, ip: string) => Actor | null | 'rate-limited'

declare module 'fastify' {
  interface FastifyInstance {
    chargeActor: ChargeActor
    authenticateBearer: BearerAuthenticator
  }
}

/** A WebSocket upgrade of the GraphQL endpoint that brings no header: its token comes in the connection_init message. */
function isTokenlessSubscriptionUpgrade(request: FastifyRequest): boolean {
  return (
    request.ws && request.method === 'GET' && request.routeOptions.url === '/graphql' && request.headers.authorization === undefined
  )
}

export const authPlugin = fp(
  async (app: FastifyInstance, opts: AuthOptions) => {
    const perToken = new WindowCounter(opts.perTokenPerMinute)
    const failuresPerAddress = new WindowCounter(opts.failuresPerAddressPerMinute)
    const tooMany = (request: FastifyRequest, reply: FastifyReply, charge: Charge, what: string): FastifyReply => {
      reply.header('retry-after', String(charge.retryAfterSeconds))
      return sendApiError(request, reply, 429, 'RATE_LIMITED', `rate limit exceeded: at most ${charge.limit} ${what} per minute; retry in ${charge.retryAfterSeconds} s`)
    }

    app.decorateRequest('actor', null)
    app.decorate('chargeActor', ((actor, units) => perToken.charge(actor.name, units)) satisfies ChargeActor)
    app.decorate('authenticateBearer', ((header, ip) => {
      if (opts.authenticator === null) return ANONYMOUS_ADMIN
      const address = `ip:${ip}`
      if (!failuresPerAddress.check(address).allowed) return 'rate-limited'
      const actor = typeof header === 'string' ? authenticateHeader(header, opts.authenticator) : null
      if (actor === null) failuresPerAddress.charge(address)
      else if (!perToken.charge(actor.name).allowed) return 'rate-limited'
      return actor
    }) satisfies BearerAuthenticator)
    app.addHook('onRequest', async (request, reply) => {
      if (isPublicRoute(request.method, request.routeOptions.url, opts.metricsPublic)) return
      let actor: Actor | null = ANONYMOUS_ADMIN
      if (opts.authenticator !== null && isTokenlessSubscriptionUpgrade(request)) return
      if (opts.authenticator !== null) {
        const address = `ip:${request.ip}`
        const blocked = failuresPerAddress.check(address)
        if (!blocked.allowed) return tooMany(request, reply, blocked, 'requests without a valid token from one address')
        actor = authenticate(request, opts.authenticator)
        if (actor === null) {
          failuresPerAddress.charge(address)
          reply.header('www-authenticate', 'Bearer realm="staticpod-api"')
          return sendApiError(request, reply, 401, 'UNAUTHENTICATED', 'a valid bearer token is required (Authorization: Bearer <token>)')
        }
      }
      const charge = perToken.charge(actor.name)
      if (!charge.allowed) return tooMany(request, reply, charge, 'requests')
      request.actor = actor
    })
  },
  { name: 'staticpod-auth' },
)

function authenticate(request: FastifyRequest, authenticator: TokenAuthenticator): Actor | null {
  const header = request.headers.authorization
  return typeof header === 'string' ? authenticateHeader(header, authenticator) : null
}

function authenticateHeader(header: string, authenticator: TokenAuthenticator): Actor | null {
  // A bearer token is short; a longer header is not hashed (nor anything else).
  if (header.length > 4096) return null
  const match = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header)
  return match?.[1] ? authenticator.authenticate(match[1]) : null
}
