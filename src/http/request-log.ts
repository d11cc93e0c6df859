// One log line per request, when its answer has gone: method, the route the
// router matched (a bounded set, unlike the URL), the URL cut short, status,
// client address, actor and request id (pino's reqId). Never the token or a
// body.

import type { FastifyInstance } from 'fastify'

/** Longest URL part kept in a log line. */
const MAX_LOGGED_URL = 256

export function requestLogging(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    const url = request.url.length > MAX_LOGGED_URL ? `${request.url.slice(0, MAX_LOGGED_URL)}…(${request.url.length} chars)` : request.url
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url ?? null,
        url,
        status: reply.statusCode,
        clientAddress: request.ip,
        actor: request.actor?.name ?? null,
        ms: Math.round(reply.elapsedTime),
      },
      'request completed',
    )
  })
}
