// Builds the Fastify application: store, agents, services, GraphQL and the
// operational routes. It never listens: src/server.ts does that for a
// long-running process, and tests drive it through app.inject.

import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import mercurius from 'mercurius'
import { createLocalAgent } from './agents/local.ts'
import { AgentRegistry } from './agents/registry.ts'
import type { Config } from './config.ts'
import { ServiceError, notImplemented } from './errors.ts'
import { decodeUtf8 } from './manifest/text.ts'
import { errorFormatter } from './graphql/error-formatter.ts'
import { loaders, resolvers } from './graphql/resolvers.ts'
import { loadSchemaText } from './graphql/schema.ts'
import { RequestScope } from './graphql/scope.ts'
import { createServices, type Services } from './services/index.ts'
import { ANONYMOUS_ADMIN } from './services/actor.ts'
import { SqliteStore } from './store/sqlite.ts'
import type { Store } from './store/store.ts'

declare module 'fastify' {
  interface FastifyInstance {
    services: Services
  }
}

export interface AppOptions {
  /** Overrides the store of config.store (tests). */
  store?: Store
  clock?: () => Date
  logger?: FastifyServerOptions['logger']
}

/** How many nodes one request reads at once. */
const FAN_OUT = 32

export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? { level: config.logLevel, redact: ['req.headers.authorization'] },
    bodyLimit: config.bodyLimitBytes,
    // A 10 MB manifest must reach validation, which answers with the field at fault.
    forceCloseConnections: true,
  })

  strictUtf8JsonBodies(app)

  const store = options.store ?? openStore(config)
  const agents = new AgentRegistry({
    localNodeName: config.localNode?.name ?? null,
    createLocalAgent: (node) => {
      const local = config.localNode
      if (!local) throw new Error('unreachable: no local node configured')
      return createLocalAgent({
        nodeName: node.name,
        staticPodPath: local.staticPodPath,
        stateDir: local.stateDir,
        kubeletHealthzUrl: local.kubeletHealthzUrl,
        lockTtlMs: config.lockTtlMs,
        lockWaitMs: config.lockWaitMs,
      })
    },
  })
  const services = await createServices({
    store,
    agents,
    log: app.log as unknown as import('pino').Logger,
    clock: options.clock,
    settings: {
      defaultMaxAgeSeconds: config.staticPodsMaxAgeSeconds,
      fanOut: FAN_OUT,
      localNode: config.localNode && { name: config.localNode.name, staticPodPath: config.localNode.staticPodPath },
      kubeconfig: config.kubeconfig,
    },
  })
  // Made at start so that its directories exist before the first request
  // (an operator may drop manifests into a fresh LOCAL_NODE_PATH right away).
  if (config.localNode) await agents.agentFor(await services.nodes.require(config.localNode.name, ANONYMOUS_ADMIN))
  app.decorate('services', services)
  app.addHook('onClose', async () => services.close())

  await app.register(mercurius, {
    schema: loadSchemaText(),
    resolvers,
    loaders,
    graphiql: true,
    path: '/graphql',
    errorFormatter,
    context: () => {
      const context: { scope?: RequestScope; errors?: Error[] | null } = {}
      // Until authentication lands (issue #5), every caller is the anonymous admin on loopback.
      context.scope = new RequestScope(services, ANONYMOUS_ADMIN, (error) => {
        context.errors = [...(context.errors ?? []), error]
      })
      return context
    },
  })

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    try {
      await services.store.ping()
      return { status: 'ok' }
    } catch (err) {
      app.log.warn({ err }, 'readiness check: the store does not answer')
      return reply.code(503).send({ status: 'unavailable', reason: 'the store does not answer' })
    }
  })

  return app
}

/**
 * JSON bodies must be UTF-8 (RFC 8259). The default parser would replace bad
 * bytes with U+FFFD and so silently change a manifest; refuse them instead.
 */
function strictUtf8JsonBodies(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const text = decodeUtf8(body as Buffer)
    if (text === null) {
      const err = new ServiceError('VALIDATION_FAILED', 'the request body is not valid UTF-8: nothing was read from it', ['body'])
      done(err, undefined)
      return
    }
    parseJson(request, text, done)
  })
}

function openStore(config: Config): Store {
  if (config.store.kind === 'sqlite') return SqliteStore.open(config.store.path)
  throw notImplemented('STORE_URL=dynamodb:<table>', 'the DynamoDB store, issue #6')
}
