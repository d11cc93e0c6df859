// The AWS Lambda entry points: the same app as src/server.ts, behind an API
// Gateway HTTP API through @fastify/aws-lambda, and a scheduled refresh of
// every node's observed state.
//
// The app is built once per container, on the first invocation, and reused by
// every invocation after it; nothing listens on a socket. What differs from a
// long-running server is only configuration:
//
// - secrets (SSH key, auth tokens) come from SSM Parameter Store or Secrets
//   Manager at cold start, named by *_SSM_PARAMETER / *_SECRET_ARN (lambda-secrets.ts);
// - there is no local node (LOCAL_NODE_PATH defaults to off): a function has no
//   kubelet and its filesystem is thrown away;
// - auth tokens are required: HOST means nothing here, and an API Gateway
//   endpoint is never loopback, so the anonymous admin must never apply.

import awsLambdaFastify from '@fastify/aws-lambda'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig, type Config } from './config.ts'
import { resolveSecrets, type ParameterReader } from './lambda-secrets.ts'

/** The parts of an API Gateway HTTP API (payload format 2.0) event the adapter reads. */
export interface HttpApiEvent {
  version: '2.0'
  rawPath: string
  rawQueryString: string
  headers: Record<string, string | undefined>
  cookies?: string[]
  body?: string
  isBase64Encoded: boolean
  requestContext: { http: { method: string; path: string; sourceIp?: string }; requestId?: string; stage?: string }
}

export interface HttpApiResult {
  statusCode: number
  headers: Record<string, string>
  body: string
  isBase64Encoded?: boolean
  cookies?: string[]
}

/** What the handlers use of the Lambda context (tests pass a plain object). */
export interface LambdaContext {
  awsRequestId?: string
  callbackWaitsForEmptyEventLoop?: boolean
}

export interface RefreshSummary {
  nodes: number
  refreshed: number
  failed: Array<{ node: string; code: string; message: string }>
}

/** The environment a function runs with: defaults that suit Lambda, then secrets filled in. */
export async function lambdaEnvironment(env: NodeJS.ProcessEnv, readParameter?: ParameterReader): Promise<NodeJS.ProcessEnv> {
  const withDefaults: NodeJS.ProcessEnv = { ...env, LOCAL_NODE_PATH: env.LOCAL_NODE_PATH ?? 'off' }
  return resolveSecrets(withDefaults, readParameter)
}

export function lambdaConfig(env: NodeJS.ProcessEnv): Config {
  const config = loadConfig(env)
  if (config.tokens === null) {
    throw new ConfigError(
      'Invalid AUTH_TOKENS: on Lambda the API is reached through API Gateway, never on loopback, so tokens are required ' +
        '(AUTH_TOKENS_SECRET_ARN or AUTH_TOKENS_SSM_PARAMETER)',
    )
  }
  return config
}

export interface LambdaApp {
  app: FastifyInstance
  http: (event: HttpApiEvent, context: LambdaContext) => Promise<HttpApiResult>
  refresh: () => Promise<RefreshSummary>
}

/** Builds the app for Lambda from `env`; the module's handlers call this once per container. */
export async function createLambdaApp(env: NodeJS.ProcessEnv, opts: { readParameter?: ParameterReader } = {}): Promise<LambdaApp> {
  const config = lambdaConfig(await lambdaEnvironment(env, opts.readParameter))
  // Route schemas compiled on first use: a cold start compiles only the routes its first request takes.
  // No /docs: API Gateway does not route it (serverless.yml).
  // ssh2 loaded by the first request that reaches a node, not by every cold start.
  const app = await buildApp(config, { lazySchemas: true, openApiDocs: false, preloadSsh: false })
  const proxy = awsLambdaFastify<HttpApiEvent>(app, {
    // A pending socket (an idle SSH connection kept for the next invocation)
    // must not hold the response back until the function times out.
    callbackWaitsForEmptyEventLoop: false,
    // The app serves no binary bodies; GraphiQL's assets are text.
    binaryMimeTypes: [],
  })
  await app.ready()
  return {
    app,
    http: (event, context) => proxy(event, context as never),
    refresh: () => refreshAllNodes(app),
  }
}

/**
 * One observation round (the long-running server's observer, run once per
 * schedule): every node read live and stored with the events it shows, so that
 * queries answered from the store stay recent and changes become events and
 * webhook posts even when nobody asks. One node's failure is recorded on that
 * node, not thrown.
 */
export async function refreshAllNodes(app: FastifyInstance): Promise<RefreshSummary> {
  const round = await app.services.observer.round()
  // The webhooks' deliveries of this round's events, before the invocation ends and the container may freeze.
  await Promise.race([app.services.webhooks.idle(), new Promise((resolve) => setTimeout(resolve, WEBHOOK_DRAIN_MS).unref())])
  const summary: RefreshSummary = { nodes: round.nodes, refreshed: round.observed, failed: round.failed }
  app.log.info({ refresh: { nodes: summary.nodes, refreshed: summary.refreshed, failed: summary.failed.length } }, 'scheduled refresh done')
  return summary
}

/** How long a scheduled round waits for webhook deliveries (retries included) before it returns. */
const WEBHOOK_DRAIN_MS = 60_000

let containerApp: Promise<LambdaApp> | undefined

/** The app of this container, built on first use; a failed build is retried by the next invocation. */
function appOfThisContainer(): Promise<LambdaApp> {
  if (!containerApp) {
    containerApp = createLambdaApp(process.env)
    containerApp.catch(() => (containerApp = undefined))
  }
  return containerApp
}

/** API Gateway HTTP API → the app. */
export async function handler(event: HttpApiEvent, context: LambdaContext): Promise<HttpApiResult> {
  return (await appOfThisContainer()).http(event, context)
}

/** EventBridge schedule → refresh every node. Failing nodes are in the summary; the invocation succeeds. */
export async function refreshHandler(): Promise<RefreshSummary> {
  return (await appOfThisContainer()).refresh()
}
