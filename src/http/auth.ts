// Authentication of the API routes (/graphql, /api/...). Every request there
// carries `Authorization: Bearer <token>`; the token's actor (name, role, node
// globs) is set on the request for the services to authorise against. With no
// tokens configured (loopback only, checked at start), every caller is the
// anonymous admin. Health, metrics and the static pages need no token.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ANONYMOUS_ADMIN, type Actor } from '../services/actor.ts'
import type { TokenAuthenticator } from '../services/tokens.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller of an API route; null elsewhere or when unauthenticated. */
    actor: Actor | null
  }
}

/** Routes that need a token; everything else is public. */
export function isApiRoute(url: string): boolean {
  const path = url.split('?')[0] ?? ''
  return path === '/graphql' || path.startsWith('/graphql/') || path.startsWith('/api/')
}

/** The actor a request presents, null when its token is missing or unknown. Computed once per request. */
export function actorOf(request: FastifyRequest, authenticator: TokenAuthenticator | null): Actor | null {
  if (authenticator === null) return ANONYMOUS_ADMIN
  const cached = presented.get(request)
  if (cached !== undefined) return cached
  const header = request.headers.authorization
  const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
  const actor = match?.[1] ? authenticator.authenticate(match[1]) : null
  presented.set(request, actor)
  return actor
}

const presented = new WeakMap<FastifyRequest, Actor | null>()

/** An error body in the shape of the surface the request went to. */
export function sendApiError(request: FastifyRequest, reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  const path = request.url.split('?')[0] ?? ''
  const body = path.startsWith('/api/') ? { error: { code, message } } : { data: null, errors: [{ message, extensions: { code } }] }
  return reply.code(status).type('application/json; charset=utf-8').send(body)
}

export const authPlugin = fp(
  async (app: FastifyInstance, opts: { authenticator: TokenAuthenticator | null }) => {
    app.decorateRequest('actor', null)
    app.addHook('onRequest', async (request, reply) => {
      if (!isApiRoute(request.url)) return
      const actor = actorOf(request, opts.authenticator)
      if (actor === null) {
        reply.header('www-authenticate', 'Bearer realm="staticpod-api"')
        return sendApiError(request, reply, 401, 'UNAUTHENTICATED', 'a valid bearer token is required (Authorization: Bearer <token>)')
      }
      request.actor = actor
    })
  },
  { name: 'staticpod-auth' },
)
