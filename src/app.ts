// Builds the Fastify application: store, agents, services, GraphQL and the
// operational routes. It never listens: src/server.ts does that for a
// long-running process, and tests drive it through app.inject.

import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions, type RouteOptions } from 'fastify'
import websocket from '@fastify/websocket'
import mercurius from 'mercurius'
import { authPlugin, requireActor } from './http/auth.ts'
import { lazySchemaController } from './http/lazy-schemas.ts'
import { manifestBudget } from './http/manifest-budget.ts'
import { requestLogging } from './http/request-log.ts'
import { chargeMutationFields, queryTextLimit, responseSizeLimit } from './graphql/request-limits.ts'
import { Metrics } from './http/metrics.ts'
import { playgroundRoutes } from './http/playground.ts'
import { queryLimits } from './graphql/limits.ts'
import { loggerOptions } from './logging.ts'
import { restRoutes } from './rest/routes.ts'
import { TokenAuthenticator } from './services/tokens.ts'
import { createLocalAgent } from './agents/local.ts'
import { AgentRegistry, sshAgentSettings, type NodeFactsRecorder } from './agents/registry.ts'
import type { Config, HttpTimeouts } from './config.ts'
import type { HostResolver } from './net/address-allow.ts'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { parseSecretKey } from './services/secret-box.ts'
import { ServiceError } from './errors.ts'
import { decodeUtf8 } from './manifest/text.ts'
import { errorFormatter } from './graphql/error-formatter.ts'
import { enumValues, resolvers } from './graphql/resolvers.ts'
import { servedSchema } from './graphql/schema.ts'
import { RequestScope } from './graphql/scope.ts'
import { guardSubscriptions, MAX_FRAME_BYTES, subscriptionOptions } from './graphql/subscriptions.ts'
import { createServices, type Services } from './services/index.ts'
import { ANONYMOUS_ADMIN } from './services/actor.ts'
import { openStore } from './store/open.ts'
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
  /** Answers host names instead of the system resolver (tests: no DNS query leaves the machine). */
  resolveHost?: HostResolver
  /** Told of every route as it is registered (tests enumerate them). */
  onRoute?: (route: RouteOptions) => void
  /** Tests: webhook retries sooner than the contract's 1 s, and subscribers' tail polling the store more often. */
  webhookFirstRetryMs?: number
  eventPollMs?: number
  /**
   * Compile each route's validators and serializers on its first request, not at start
   * (src/http/lazy-schemas.ts). Lambda sets it: its start is a cold start that one request waits for.
   */
  lazySchemas?: boolean
  /**
   * Serve the OpenAPI document and UI at /docs (default true). Lambda turns it off: API Gateway does not
   * route /docs (serverless.yml), and the two plugins are then not even loaded (import() below, so the
   * Lambda bundle keeps them in a chunk of their own that a cold start does not read).
   */
  openApiDocs?: boolean
  /**
   * Load ssh2 in the background once the app is built, when SSH nodes can be
   * reached (a key or an agent is configured), so that the first request to
   * a node does not wait for it (default true). Lambda turns it off: its cold
   * start is one request, which loads ssh2 only if it reaches a node.
   */
  preloadSsh?: boolean
}

/** How many nodes one request reads at once. */
const FAN_OUT = 32

export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config.logLevel, options.logger),
    // A 10 MB manifest (the kubelet's limit) must reach validation, which names the field at fault.
    bodyLimit: config.bodyLimitBytes,
    // On close, drop idle keep-alive connections but let requests in flight finish.
    forceCloseConnections: 'idle',
    // One log line per request, written by requestLogging with the matched route and the actor.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    genReqId: requestId,
    // A hop count as the function Fastify documents for it (its types take no number).
    trustProxy: typeof config.trustProxy === 'number' ? trustHops(config.trustProxy) : config.trustProxy,
    ...httpTimeouts(config.http),
    ...(options.lazySchemas ? { schemaController: lazySchemaController() } : {}),
    // Errors of the router itself (a bad percent-encoding, a 414) in the contract's shape, without echoing the URL.
    frameworkErrors: (error, _request, reply) => {
      const status = (error as { statusCode?: number }).statusCode === 414 ? 414 : 400
      const message = status === 414 ? 'the URL is too long' : 'the URL is not valid (bad percent-encoding)'
      void (reply as FastifyReply).code(status).type('application/json; charset=utf-8').send({ error: { code: 'BAD_REQUEST', message } })
    },
  })
  if (options.onRoute) app.addHook('onRoute', options.onRoute)
  requestLogging(app)

  strictUtf8JsonBodies(app)
  await app.register(manifestBudget(config.manifestBudget))

  const metrics = new Metrics({
    sshConnections: (): number => agents.sshPoolStats()?.connectionsOpen ?? 0,
    apiServerBreakerState: () => services.cluster.breakerState(),
    // Read at scrape time, once the WebSocket server exists.
    subscriptionConnections: () => (app.hasDecorator('websocketServer') ? app.websocketServer.clients.size : 0),
  })
  const store = metrics.instrumentStore(options.store ?? (await openStore(config.store, { dynamodbEndpoint: config.dynamodbEndpoint })))
  // What the agents learn of a node goes to the node service, which is made after them.
  const nodeFacts: NodeFactsRecorder = { recordFacts: (name, facts) => services.nodes.recordFacts(name, facts) }
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
        ...config.nodeProbes,
        podLogDir: config.podLogsDir,
        lockTtlMs: config.lockTtlMs,
        lockWaitMs: config.lockWaitMs,
      })
    },
    ssh: sshAgentSettings(config, nodeFacts, options.resolveHost),
  })
  if ((options.preloadSsh ?? true) && (config.sshPrivateKey !== undefined || config.sshAgentSocket !== undefined)) agents.preloadSsh()
  const services: Services = await createServices({
    store,
    agents,
    log: app.log as unknown as import('pino').Logger,
    clock: options.clock,
    nodeReadObserver: metrics,
    onCertificates: (pod, certificates) => metrics.certificatesRead(pod, certificates),
    onEvents: (events) => metrics.eventsRecorded(events),
    settings: {
      defaultMaxAgeSeconds: config.staticPodsMaxAgeSeconds,
      fanOut: FAN_OUT,
      maxNodesPerRequest: config.maxNodesPerRequest,
      localNode: config.localNode && { name: config.localNode.name, staticPodPath: config.localNode.staticPodPath },
      cluster: {
        kubeconfig: config.kubeconfig,
        inCluster: config.kubeInCluster,
        requestTimeoutMs: config.kubeRequestTimeoutMs,
        retryAfterMs: config.kubeRetryAfterMs,
      },
      nodeAddressAllow: config.nodeAddressAllow,
      resolveHost: options.resolveHost,
      certWarnDays: config.certWarnDays,
      observe: config.observe,
      eventRetentionDays: config.eventRetentionDays,
      webhooks: { maxAttempts: config.webhooks.maxAttempts, secretKey: webhookSecretKey(config), firstRetryMs: options.webhookFirstRetryMs },
      eventPollMs: options.eventPollMs,
      subscriptionsPerConnection: config.subscriptions.maxPerConnection,
    },
  })
  // Made at start so that its directories exist before the first request
  // (an operator may drop manifests into a fresh LOCAL_NODE_PATH right away).
  if (config.localNode) await agents.agentFor(await services.nodes.require(config.localNode.name, ANONYMOUS_ADMIN))
  app.decorate('services', services)
  app.addHook('onClose', async () => services.close())

  const authenticator = config.tokens ? new TokenAuthenticator(config.tokens) : null
  if (!authenticator) {
    app.log.warn('no AUTH_TOKENS_FILE or AUTH_TOKENS: every caller is the anonymous admin (served on a loopback address only)')
  }
  // Registered here rather than by mercurius: for a frame limit of our own (mercurius's is 1 MiB), and
  // before the auth plugin, whose hooks then know a real upgrade (request.ws) and whose refusals of one
  // end its socket (@fastify/websocket's onResponse).
  await app.register(websocket, { options: { maxPayload: MAX_FRAME_BYTES } })
  await app.register(authPlugin, {
    authenticator,
    metricsPublic: config.metricsPublic,
    perTokenPerMinute: config.rateLimitPerMinute,
    failuresPerAddressPerMinute: config.authFailuresPerMinute,
  })
  await app.register(metrics.plugin)
  const openApiDocs = options.openApiDocs ?? true
  // Before every route, whose schemas it collects as they are added.
  if (openApiDocs) await app.register((await import('@fastify/swagger')).default, openApiOptions)
  // The OpenAPI document is the REST surface; GraphQL documents itself (GraphiQL's docs explorer).
  app.addHook('onRoute', (route) => {
    if (route.url === '/graphql') route.schema = { ...route.schema, hide: true }
  })

  const validationRules = [queryLimits(config.graphql)]
  await app.register(mercurius, {
    schema: servedSchema(enumValues),
    resolvers,
    subscription: subscriptionOptions(app, services),
    // Our own playground (src/http/playground.ts) serves every asset itself; mercurius's loads a CDN.
    graphiql: false,
    path: '/graphql',
    errorFormatter,
    validationRules,
    // Parsed queries are remembered by their text; both caches (valid and invalid queries) are bounded by
    // entries here and by the query's size and tokens (queryTextLimit, maxTokens).
    cache: config.graphql.queryCacheEntries === 0 ? false : config.graphql.queryCacheEntries,
    graphql: { parseOptions: { maxTokens: config.graphql.maxTokens } },
    // Queries asked at least twice run as compiled JavaScript (graphql-jit) from then on: a read of
    // 1,000 nodes × 8 pods resolves 88,000 fields, and graphql-js pays an info object, a path and an
    // argument object for each. Adaptive mode compiles off the request path, and it keeps graphql-js's
    // own check of the variables on every request (fixed `jit: n` skips it on the compiling request and
    // lets graphql-jit word those errors). eluThreshold 1: a compile costs milliseconds once, so it is
    // not put off while the server is busy, when it saves the most (only a loop that has not idled at all
    // since the last compile puts it off, by 50 ms). The compiled query is held with its parse in the
    // bounded cache above. test/graphql/jit.test.ts shows the answers, errors included, unchanged.
    // bench/graphql/bare-server.ts gives its baseline the same setting: keep the two the same.
    jit: { minCount: 2, eluThreshold: 1 },
    context: (request: FastifyRequest) => {
      const context: { scope?: RequestScope; errors?: Error[] | null } = {}
      context.scope = new RequestScope(services, requireActor(request), (error) => {
        context.errors = [...(context.errors ?? []), error]
      })
      return context
    },
  })
  guardSubscriptions(app, config.subscriptions, validationRules)
  observeGraphqlOperations(app, metrics)
  queryTextLimit(app, config.graphql.maxQueryBytes)
  chargeMutationFields(app)
  responseSizeLimit(app, config.graphql.maxResponseBytes)

  await app.register(restRoutes, { services })
  await app.register(playgroundRoutes)
  if (openApiDocs) await app.register((await import('@fastify/swagger-ui')).default, { routePrefix: '/docs', uiConfig: { validatorUrl: null, deepLinking: true } })

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
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
 * The key webhook secrets are sealed with: WEBHOOK_SECRET_KEY(_FILE), else,
 * with a SQLite store, a key file beside the database, made on first start
 * (0600, never overwritten: losing it makes every stored secret unreadable).
 * With DynamoDB and no key configured, webhooks cannot be created (the
 * webhook service says which variable to set).
 */
function webhookSecretKey(config: Config): Buffer | null {
  if (config.webhooks.secretKey) return config.webhooks.secretKey
  if (config.store.kind !== 'sqlite' || config.store.path === ':memory:') return config.store.kind === 'sqlite' ? randomBytes(32) : null
  const file = join(dirname(config.store.path), 'webhook-secret.key')
  try {
    return parseSecretKey(readFileSync(file, 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`the webhook secret key ${file} cannot be used: ${(err as Error).message}`, { cause: err })
  }
  mkdirSync(dirname(file), { recursive: true })
  try {
    writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' })
  } catch (err) {
    // Another process made it first: use theirs.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  return parseSecretKey(readFileSync(file, 'utf8'))
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
    // Fastify's JSON parser answers through done, synchronously: nothing to wait for.
    void parseJson(request, text, done)
  })
}

const openApiOptions = {
  openapi: {
    info: {
      title: 'staticpod-api REST',
      description:
        'The REST surface of staticpod-api: static pods on every node, read and written on the nodes themselves (the API server is not needed). The full API is GraphQL at /graphql (playground: /graphiql).',
      version: '1',
    },
    components: { securitySchemes: { bearerAuth: { type: 'http' as const, scheme: 'bearer' } } },
  },
}

/**
 * Counts and times GraphQL operations for /metrics, by type and outcome. Not
 * by operation name: that is the caller's free text, and as a label every new
 * name would be a new time series held for good.
 */
function observeGraphqlOperations(app: FastifyInstance, metrics: Metrics): void {
  const started = new WeakMap<object, { at: number; type: string }>()
  app.graphql.addHook('preExecution', async (_schema, document, context) => {
    const operation = document.definitions.find((d) => d.kind === 'OperationDefinition')
    started.set(context, { at: performance.now(), type: operation && 'operation' in operation ? operation.operation : 'unknown' })
  })
  app.graphql.addHook('onResolution', async (execution, context) => {
    const op = started.get(context)
    if (op) metrics.graphqlOperation(op.type, execution.errors?.length ? 'error' : 'ok', (performance.now() - op.at) / 1000)
  })
}

function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops
}

/** The client's X-Request-Id when it is a short token (it is logged and echoed), else a new one. */
function requestId(request: { headers: Record<string, string | string[] | undefined> }): string {
  const given = request.headers['x-request-id']
  return typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : randomUUID()
}

/** Fastify's and Node's HTTP server timeouts (a slow body or slow headers are cut). */
function httpTimeouts(timeouts: HttpTimeouts): Pick<FastifyServerOptions, 'requestTimeout' | 'keepAliveTimeout' | 'connectionTimeout'> & { http: object } {
  return {
    requestTimeout: timeouts.requestTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    connectionTimeout: timeouts.connectionTimeoutMs,
    http: {
      headersTimeout: timeouts.headersTimeoutMs,
      requestTimeout: timeouts.requestTimeoutMs,
      // Node checks those two timeouts on this interval (default 30 s); a tenth keeps the cut close to the setting.
      connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(timeouts.headersTimeoutMs / 10))),
    },
  }
}
