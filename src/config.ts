// Configuration: parsed once at boot from the environment by one zod schema.
// A bad value stops the start with one line naming the variable.

import { readFileSync } from 'node:fs'
import { isIP, isIPv4 } from 'node:net'
import { resolve } from 'node:path'
import * as z from 'zod'
import { parseTokensDocument, type TokenEntry } from './services/tokens.ts'
import { parseSecretKey } from './services/secret-box.ts'
import { parseAddressAllowList, type AddressAllowList } from './net/address-allow.ts'
import { KUBEADM_KUBELET_CONFIG_PATH, KUBELET_HEALTHZ_PORT, KUBELET_POD_LOGS_DIR } from './kubelet-facts.ts'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const port = z.coerce.number().int().min(0).max(65535)
const positiveInt = z.coerce.number().int().min(1)
const nonNegativeInt = z.coerce.number().int().min(0)
const boolean = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes')
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v))

// A Unix socket's path (an ssh-agent's): absolute, and within sockaddr_un's 108 bytes with the NUL on Linux.
// Not checked for existence: an agent may start after the service, and is asked at each connection.
const unixSocketPath = optionalText.refine(
  (p) => p === undefined || (p.startsWith('/') && !p.includes('\0') && Buffer.byteLength(p) <= 107),
  'expected the absolute path of a Unix socket (at most 107 bytes)',
)

export type StoreLocation = { kind: 'sqlite'; path: string } | { kind: 'dynamodb'; table: string }

const storeUrl = z.string().default('sqlite:./data/staticpod-api.db').transform((url, ctx): StoreLocation => {
  const [scheme, ...rest] = url.split(':')
  const target = rest.join(':')
  if (scheme === 'sqlite' && target !== '') return { kind: 'sqlite', path: target === ':memory:' ? target : resolve(target) }
  if (scheme === 'dynamodb' && /^[A-Za-z0-9_.-]{3,255}$/.test(target)) return { kind: 'dynamodb', table: target }
  ctx.addIssue({ code: 'custom', message: 'expected sqlite:<path> or dynamodb:<table>' })
  return z.NEVER
})

const envSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port.default(3000),
  STORE_URL: storeUrl,
  // A local DynamoDB (dynalite, DynamoDB Local) for STORE_URL=dynamodb:<table>; AWS's endpoint when unset.
  DYNAMODB_ENDPOINT: z.url().optional(),
  LOCAL_NODE_PATH: z.string().min(1).default('./data/manifests'),
  LOCAL_NODE_NAME: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'expected a lowercase DNS-1123 name')
    .max(253)
    .default('local'),
  // Backups and the node lock of the local node; must be outside LOCAL_NODE_PATH
  // because the kubelet runs every file it finds there.
  LOCAL_NODE_STATE_DIR: z.string().min(1).default('./data/state'),
  LOCAL_KUBELET_HEALTHZ_URL: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).default(`http://127.0.0.1:${KUBELET_HEALTHZ_PORT}/healthz`),
  SSH_PRIVATE_KEY_FILE: optionalText,
  SSH_PRIVATE_KEY: optionalText,
  // An ssh-agent to take SSH keys from; SSH_AGENT_SOCK wins, so the service can be given another agent than
  // the SSH_AUTH_SOCK its login session has.
  SSH_AUTH_SOCK: unixSocketPath,
  SSH_AGENT_SOCK: unixSocketPath,
  // SSH nodes: TCP connect + handshake + authentication, then each operation on an open connection.
  SSH_CONNECT_TIMEOUT_MS: positiveInt.default(10_000),
  SSH_OPERATION_TIMEOUT_MS: positiveInt.default(30_000),
  // A pooled connection unused this long is closed (and reopened on demand).
  SSH_IDLE_TIMEOUT_MS: positiveInt.default(300_000),
  SSH_KEEPALIVE_INTERVAL_MS: positiveInt.default(15_000),
  SSH_MAX_CONNECTIONS: positiveInt.default(512),
  // SSH handshakes in progress at once: a cold fan-out to hundreds of nodes takes turns, and each handshake's
  // SSH_CONNECT_TIMEOUT_MS counts from its turn, so none times out waiting behind the others.
  SSH_CONNECT_CONCURRENCY: positiveInt.max(1024).default(64),
  SSH_MAX_OPERATIONS_PER_NODE: positiveInt.default(8),
  // On each SSH node (outside its staticPodPath): <dir>/<node name> holds the node lock and backups.
  SSH_STATE_DIR: z.string().startsWith('/', 'expected an absolute path').default('/var/lib/staticpod-api'),
  // Where the kubelet's healthz listens on each node, and where its config (staticPodPath) is.
  SSH_KUBELET_HEALTHZ_PORT: port.min(1).default(KUBELET_HEALTHZ_PORT),
  SSH_KUBELET_CONFIG_PATH: z.string().startsWith('/', 'expected an absolute path').default(KUBEADM_KUBELET_CONFIG_PATH),
  // Every node (local or SSH) is asked for its runtime (crictl) and kubelet health with these limits;
  // past them the query still answers, with runtimeUnavailableReason / kubeletUnavailableReason.
  CRICTL_TIMEOUT_MS: positiveInt.default(10_000),
  // On every node (local or SSH): the kubelet's podLogsDir, whose files give a container's log where crictl cannot.
  KUBELET_POD_LOGS_DIR: z.string().startsWith('/', 'expected an absolute path').default(KUBELET_POD_LOGS_DIR),
  KUBELET_HEALTHZ_TIMEOUT_MS: positiveInt.default(2_000),
  // A certificate a static pod refers to this close to its notAfter is CERTIFICATE_EXPIRES_SOON.
  CERT_EXPIRY_WARNING_DAYS: z.coerce.number().int().min(0).max(3650).default(30),
  // The server observes every node on its own this often (manifests, runtime, findings, certificates)
  // and turns what changed into events; 0: never (events then come only from queries and writes).
  OBSERVE_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(86_400).default(30),
  // How many nodes one observation round reads at once.
  OBSERVE_CONCURRENCY: positiveInt.max(256).default(16),
  EVENT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(14),
  // Attempts of one webhook delivery (the first included) before it is given up.
  WEBHOOK_MAX_ATTEMPTS: positiveInt.max(20).default(8),
  // The key webhook secrets are encrypted with (64 hex digits or base64 of 32 bytes), as a file or the text.
  // Unset with a SQLite store: a key file is made beside the database on first use.
  WEBHOOK_SECRET_KEY_FILE: optionalText,
  WEBHOOK_SECRET_KEY: optionalText,
  // GraphQL subscriptions (WebSocket on /graphql): open connections in all, subscriptions per
  // connection, and messages a client may send per connection and minute.
  SUBSCRIPTION_MAX_CONNECTIONS: positiveInt.max(100_000).default(500),
  SUBSCRIPTION_MAX_PER_CONNECTION: positiveInt.max(1000).default(20),
  SUBSCRIPTION_MESSAGES_PER_MINUTE: positiveInt.max(100_000).default(120),
  KUBECONFIG: optionalText,
  // Set by Kubernetes in every pod: without KUBECONFIG, the pod's service account reaches the API server.
  KUBERNETES_SERVICE_HOST: optionalText,
  // No API server call waits longer (the break-glass case: a dead API server must not slow static pod queries).
  KUBE_REQUEST_TIMEOUT_MS: positiveInt.default(3000),
  // After the API server failed to answer, its calls fail at once for this long; then one call probes it again.
  KUBE_RETRY_AFTER_MS: nonNegativeInt.default(10_000),
  AUTH_TOKENS_FILE: optionalText,
  AUTH_TOKENS: optionalText,
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  // How old the stored state of a node may be before a query reads the node
  // again, when the query does not say (maxAgeSeconds).
  STATIC_PODS_MAX_AGE_SECONDS: nonNegativeInt.default(10),
  // How long a write waits for another writer's node lock before LOCKED.
  LOCK_WAIT_MS: nonNegativeInt.default(10_000),
  // A lock older than this is taken over even if its holder cannot be checked.
  LOCK_TTL_MS: positiveInt.default(30_000),
  // Large enough for a 10 MB manifest (the kubelet's limit) in a JSON body.
  BODY_LIMIT_BYTES: positiveInt.default(24 * 1024 * 1024),
  // Requests per minute and token, after authentication; every mutation field of a GraphQL request counts.
  RATE_LIMIT_PER_MINUTE: positiveInt.default(600),
  // Requests per minute and client address that present no valid token (missing or wrong), checked
  // BEFORE authentication: past it even a right guess is answered 429, so tokens cannot be guessed.
  AUTH_FAILURES_PER_MINUTE: positiveInt.default(20),
  // GraphQL cost limits, every field counted (introspection included); a query over one is refused before it runs.
  GRAPHQL_MAX_DEPTH: positiveInt.default(12),
  GRAPHQL_MAX_FIELDS: positiveInt.default(1000),
  GRAPHQL_MAX_ALIASES: nonNegativeInt.default(100),
  // __schema / __type selections per request, and how deep inside them (GraphiQL's own query: 1 and 15).
  GRAPHQL_MAX_INTROSPECTION: nonNegativeInt.default(2),
  GRAPHQL_MAX_INTROSPECTION_DEPTH: positiveInt.default(16),
  // The query text: at most this many bytes and lexical tokens (manifests belong in variables, which
  // only the body limit bounds). With them, each of the parsed-query caches (at most GRAPHQL_QUERY_CACHE
  // entries, one for valid and one for invalid queries) holds a bounded amount: a 3,000-token query
  // parses to about 1 MB.
  GRAPHQL_MAX_QUERY_BYTES: positiveInt.default(256 * 1024),
  GRAPHQL_MAX_TOKENS: positiveInt.default(3000),
  GRAPHQL_QUERY_CACHE: nonNegativeInt.default(64),
  // A response larger than this is replaced by a RESPONSE_TOO_LARGE error.
  GRAPHQL_MAX_RESPONSE_BYTES: positiveInt.default(64 * 1024 * 1024),
  // /metrics without a token (Prometheus scrapers); false: it needs a viewer token like the API.
  METRICS_PUBLIC: boolean.default(true),
  // HTTP timeouts. The whole request (headers and body) must arrive within REQUEST_TIMEOUT_MS and its
  // headers within HEADERS_TIMEOUT_MS; an idle keep-alive connection is closed after KEEP_ALIVE_TIMEOUT_MS;
  // a socket with no traffic either way for CONNECTION_TIMEOUT_MS is closed (longer than any single
  // readiness wait, so a waiting mutation is not cut).
  REQUEST_TIMEOUT_MS: positiveInt.default(60_000),
  HEADERS_TIMEOUT_MS: positiveInt.default(20_000),
  KEEP_ALIVE_TIMEOUT_MS: positiveInt.default(72_000),
  CONNECTION_TIMEOUT_MS: positiveInt.default(3_900_000),
  // Behind a reverse proxy, the client address (rate limits, logs) comes from X-Forwarded-For set by
  // these proxies: "true" (any), a hop count, or a comma list of proxy addresses/CIDRs. Unset: the socket's peer.
  TRUST_PROXY: optionalText,
  // Where SSH nodes may be registered and reached: CIDRs with optional ports (10.0.0.0/8:22, [fd00::/8]:22).
  // Unset: anywhere.
  NODE_ADDRESS_ALLOW: optionalText,
  // Bytes of manifests that requests may hold in memory at once (a parse costs ~30x its size in heap);
  // a request over it waits up to MANIFEST_BUDGET_WAIT_MS, then gets 503 with Retry-After.
  MANIFEST_BUDGET_BYTES: positiveInt.default(24 * 1024 * 1024),
  MANIFEST_BUDGET_WAIT_MS: nonNegativeInt.default(15_000),
  // The most nodes one request may read or change.
  MAX_NODES_PER_REQUEST: positiveInt.default(5000),
})

export type Config = {
  host: string
  port: number
  store: StoreLocation
  dynamodbEndpoint: string | undefined
  localNode: { name: string; staticPodPath: string; stateDir: string; kubeletHealthzUrl: string } | null
  sshPrivateKeyFile: string | undefined
  /** The key text, read from SSH_PRIVATE_KEY_FILE or given as SSH_PRIVATE_KEY. */
  sshPrivateKey: string | undefined
  /** The ssh-agent's socket (SSH_AGENT_SOCK, else SSH_AUTH_SOCK); with a key file too, the file's key is offered first. */
  sshAgentSocket: string | undefined
  ssh: SshConfig
  kubeconfig: string | undefined
  /** In a pod (KUBERNETES_SERVICE_HOST set): the in-cluster config is used when there is no KUBECONFIG. */
  kubeInCluster: boolean
  kubeRequestTimeoutMs: number
  kubeRetryAfterMs: number
  authTokensFile: string | undefined
  authTokens: string | undefined
  /** The tokens document, parsed; null when none is configured (anonymous admin, loopback only). */
  tokens: TokenEntry[] | null
  logLevel: (typeof LOG_LEVELS)[number]
  staticPodsMaxAgeSeconds: number
  nodeProbes: NodeProbeConfig
  /** KUBELET_POD_LOGS_DIR: where the kubelet keeps container logs on each node. */
  podLogsDir: string
  /** CERT_EXPIRY_WARNING_DAYS. */
  certWarnDays: number
  lockWaitMs: number
  lockTtlMs: number
  bodyLimitBytes: number
  rateLimitPerMinute: number
  authFailuresPerMinute: number
  graphql: GraphqlLimits
  metricsPublic: boolean
  http: HttpTimeouts
  /** Fastify's trustProxy: which peers' X-Forwarded-For names the client. */
  trustProxy: boolean | number | string
  /** Where nodes may be; null: anywhere. */
  nodeAddressAllow: AddressAllowList | null
  manifestBudget: { bytes: number; waitMs: number }
  maxNodesPerRequest: number
  /** OBSERVE_INTERVAL_SECONDS (0: off) and OBSERVE_CONCURRENCY. */
  observe: { intervalSeconds: number; concurrency: number }
  eventRetentionDays: number
  webhooks: {
    maxAttempts: number
    /** The secret key's text (WEBHOOK_SECRET_KEY or the file's), checked at start; undefined: not configured. */
    secretKey: Buffer | undefined
  }
  subscriptions: SubscriptionLimits
}

export interface SubscriptionLimits {
  maxConnections: number
  maxPerConnection: number
  messagesPerMinute: number
}

interface GraphqlLimits {
  maxDepth: number
  maxFields: number
  maxAliases: number
  maxIntrospection: number
  maxIntrospectionDepth: number
  maxResponseBytes: number
  maxQueryBytes: number
  maxTokens: number
  queryCacheEntries: number
}

export interface HttpTimeouts {
  requestTimeoutMs: number
  headersTimeoutMs: number
  keepAliveTimeoutMs: number
  connectionTimeoutMs: number
}

/** How long a node's container runtime (crictl) and kubelet healthz are waited for. */
export interface NodeProbeConfig {
  crictlTimeoutMs: number
  kubeletTimeoutMs: number
}

interface SshConfig {
  connectTimeoutMs: number
  operationTimeoutMs: number
  idleTimeoutMs: number
  keepaliveIntervalMs: number
  maxConnections: number
  connectConcurrency: number
  maxOperationsPerNode: number
  stateDir: string
  kubeletHealthzPort: number
  kubeletConfigPath: string
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/** Parses the environment; throws a ConfigError whose message is one line naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // jitless: zod would otherwise generate and compile a parser for the sixty-odd keys, to run it once.
  const parsed = envSchema.safeParse(env, { jitless: true })
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const variable = String(issue?.path[0] ?? 'environment')
    const value = env[variable]
    const shown = value === undefined ? '' : ` (got ${JSON.stringify(value.length > 60 ? value.slice(0, 60) + '…' : value)})`
    throw new ConfigError(`Invalid ${variable}: ${issue?.message ?? 'invalid value'}${shown}`)
  }
  const e = parsed.data
  if (e.MANIFEST_BUDGET_WAIT_MS >= e.REQUEST_TIMEOUT_MS) {
    // A request waiting for the budget does not read its body, and Node cuts it at REQUEST_TIMEOUT_MS (408).
    throw new ConfigError(`Invalid MANIFEST_BUDGET_WAIT_MS: ${e.MANIFEST_BUDGET_WAIT_MS} must be less than REQUEST_TIMEOUT_MS (${e.REQUEST_TIMEOUT_MS}), or waiting requests are cut with 408 instead of a 503 to retry`)
  }
  const localNode = e.LOCAL_NODE_PATH === 'off' ? null : localNodeConfig(e)
  const tokens = loadTokens(e.AUTH_TOKENS_FILE, e.AUTH_TOKENS)
  if (tokens === null && !isLoopback(e.HOST)) {
    throw new ConfigError(
      `Invalid HOST: ${e.HOST} is not a loopback address, and without AUTH_TOKENS_FILE or AUTH_TOKENS every caller would be an anonymous admin; configure tokens or listen on 127.0.0.1`,
    )
  }
  return {
    host: e.HOST,
    port: e.PORT,
    store: e.STORE_URL,
    dynamodbEndpoint: e.DYNAMODB_ENDPOINT,
    localNode,
    sshPrivateKeyFile: e.SSH_PRIVATE_KEY_FILE,
    sshPrivateKey: loadSshPrivateKey(e.SSH_PRIVATE_KEY_FILE, e.SSH_PRIVATE_KEY),
    sshAgentSocket: e.SSH_AGENT_SOCK ?? e.SSH_AUTH_SOCK,
    ssh: {
      connectTimeoutMs: e.SSH_CONNECT_TIMEOUT_MS,
      operationTimeoutMs: e.SSH_OPERATION_TIMEOUT_MS,
      idleTimeoutMs: e.SSH_IDLE_TIMEOUT_MS,
      keepaliveIntervalMs: e.SSH_KEEPALIVE_INTERVAL_MS,
      maxConnections: e.SSH_MAX_CONNECTIONS,
      connectConcurrency: e.SSH_CONNECT_CONCURRENCY,
      maxOperationsPerNode: e.SSH_MAX_OPERATIONS_PER_NODE,
      stateDir: e.SSH_STATE_DIR,
      kubeletHealthzPort: e.SSH_KUBELET_HEALTHZ_PORT,
      kubeletConfigPath: e.SSH_KUBELET_CONFIG_PATH,
    },
    kubeconfig: e.KUBECONFIG,
    kubeInCluster: e.KUBERNETES_SERVICE_HOST !== undefined,
    kubeRequestTimeoutMs: e.KUBE_REQUEST_TIMEOUT_MS,
    kubeRetryAfterMs: e.KUBE_RETRY_AFTER_MS,
    authTokensFile: e.AUTH_TOKENS_FILE,
    authTokens: e.AUTH_TOKENS,
    tokens,
    logLevel: e.LOG_LEVEL,
    staticPodsMaxAgeSeconds: e.STATIC_PODS_MAX_AGE_SECONDS,
    nodeProbes: { crictlTimeoutMs: e.CRICTL_TIMEOUT_MS, kubeletTimeoutMs: e.KUBELET_HEALTHZ_TIMEOUT_MS },
    podLogsDir: e.KUBELET_POD_LOGS_DIR,
    certWarnDays: e.CERT_EXPIRY_WARNING_DAYS,
    lockWaitMs: e.LOCK_WAIT_MS,
    lockTtlMs: e.LOCK_TTL_MS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    authFailuresPerMinute: e.AUTH_FAILURES_PER_MINUTE,
    graphql: {
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxFields: e.GRAPHQL_MAX_FIELDS,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxIntrospection: e.GRAPHQL_MAX_INTROSPECTION,
      maxIntrospectionDepth: e.GRAPHQL_MAX_INTROSPECTION_DEPTH,
      maxResponseBytes: e.GRAPHQL_MAX_RESPONSE_BYTES,
      maxQueryBytes: e.GRAPHQL_MAX_QUERY_BYTES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      queryCacheEntries: e.GRAPHQL_QUERY_CACHE,
    },
    metricsPublic: e.METRICS_PUBLIC,
    http: {
      requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
      // Node requires headersTimeout <= requestTimeout.
      headersTimeoutMs: Math.min(e.HEADERS_TIMEOUT_MS, e.REQUEST_TIMEOUT_MS),
      keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
      connectionTimeoutMs: e.CONNECTION_TIMEOUT_MS,
    },
    trustProxy: trustProxyOf(e.TRUST_PROXY),
    nodeAddressAllow: loadAddressAllow(e.NODE_ADDRESS_ALLOW),
    manifestBudget: { bytes: e.MANIFEST_BUDGET_BYTES, waitMs: e.MANIFEST_BUDGET_WAIT_MS },
    maxNodesPerRequest: e.MAX_NODES_PER_REQUEST,
    observe: { intervalSeconds: e.OBSERVE_INTERVAL_SECONDS, concurrency: e.OBSERVE_CONCURRENCY },
    eventRetentionDays: e.EVENT_RETENTION_DAYS,
    webhooks: { maxAttempts: e.WEBHOOK_MAX_ATTEMPTS, secretKey: loadWebhookSecretKey(e.WEBHOOK_SECRET_KEY_FILE, e.WEBHOOK_SECRET_KEY) },
    subscriptions: {
      maxConnections: e.SUBSCRIPTION_MAX_CONNECTIONS,
      maxPerConnection: e.SUBSCRIPTION_MAX_PER_CONNECTION,
      messagesPerMinute: e.SUBSCRIPTION_MESSAGES_PER_MINUTE,
    },
  }
}

function loadWebhookSecretKey(file: string | undefined, text: string | undefined): Buffer | undefined {
  const key = fileOrText('WEBHOOK_SECRET_KEY', file, text)
  if (key === undefined) return undefined
  try {
    return parseSecretKey(key)
  } catch (err) {
    throw new ConfigError(`Invalid ${file !== undefined ? 'WEBHOOK_SECRET_KEY_FILE' : 'WEBHOOK_SECRET_KEY'}: ${(err as Error).message}`)
  }
}

/**
 * A secret given as a file path (<NAME>_FILE) or as the text itself (<NAME>),
 * not both; undefined when neither is set.
 */
function fileOrText(name: 'AUTH_TOKENS' | 'SSH_PRIVATE_KEY' | 'WEBHOOK_SECRET_KEY', file: string | undefined, text: string | undefined): string | undefined {
  if (file !== undefined && text !== undefined) throw new ConfigError(`Invalid ${name}: set ${name}_FILE or ${name}, not both`)
  if (file === undefined) return text
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`Invalid ${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
  }
}

/** The tokens document from AUTH_TOKENS_FILE or AUTH_TOKENS; null when neither is set. */
function loadTokens(file: string | undefined, text: string | undefined): TokenEntry[] | null {
  const document = fileOrText('AUTH_TOKENS', file, text)
  if (document === undefined) return null
  try {
    return parseTokensDocument(document)
  } catch (err) {
    throw new ConfigError(`Invalid ${file !== undefined ? 'AUTH_TOKENS_FILE' : 'AUTH_TOKENS'}: ${(err as Error).message}`)
  }
}

function trustProxyOf(text: string | undefined): boolean | number | string {
  if (text === undefined || text === 'false') return false
  if (text === 'true') return true
  if (/^\d{1,2}$/.test(text)) return Number(text)
  for (const item of text.split(',').map((t) => t.trim())) {
    const [address, length] = item.split('/')
    if (isIP(address ?? '') === 0 || (length !== undefined && !/^\d{1,3}$/.test(length))) {
      throw new ConfigError(`Invalid TRUST_PROXY: ${JSON.stringify(item.slice(0, 60))} is not an address or CIDR (expected true, a hop count, or a comma list of proxy addresses)`)
    }
  }
  return text
}

function loadAddressAllow(text: string | undefined): AddressAllowList | null {
  if (text === undefined) return null
  try {
    return parseAddressAllowList(text)
  } catch (err) {
    throw new ConfigError(`Invalid NODE_ADDRESS_ALLOW: ${(err as Error).message}`)
  }
}

/** The SSH key as text, from SSH_PRIVATE_KEY_FILE or SSH_PRIVATE_KEY. */
function loadSshPrivateKey(file: string | undefined, text: string | undefined): string | undefined {
  const key = fileOrText('SSH_PRIVATE_KEY', file, text)
  if (key === undefined) return undefined
  // Only the shape here: ssh2 is loaded when a node is first contacted (Lambda
  // cold starts); the long-running server parses the key fully at start
  // (checkSshPrivateKey).
  if (!PRIVATE_KEY_SHAPE.test(key)) {
    throw new ConfigError(`Invalid ${file !== undefined ? 'SSH_PRIVATE_KEY_FILE' : 'SSH_PRIVATE_KEY'}: not a private key (expected a PEM or OpenSSH "-----BEGIN ... PRIVATE KEY-----" block)`)
  }
  return key
}

const PRIVATE_KEY_SHAPE = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]+-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----/

/** Parses the configured SSH key with ssh2 itself; a ConfigError naming the variable if it cannot use it. */
export async function checkSshPrivateKey(config: Config): Promise<void> {
  if (config.sshPrivateKey === undefined) return
  const { default: ssh2 } = await import('ssh2')
  const parsed = ssh2.utils.parseKey(config.sshPrivateKey)
  if (parsed instanceof Error) {
    const variable = config.sshPrivateKeyFile !== undefined ? 'SSH_PRIVATE_KEY_FILE' : 'SSH_PRIVATE_KEY'
    throw new ConfigError(`Invalid ${variable}: not a private key ssh2 can use (${parsed.message})`)
  }
}

/** Loopback addresses: the only ones served without tokens. */
function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '[::1]') return true
  return isIPv4(host) && host.startsWith('127.')
}

function localNodeConfig(e: z.infer<typeof envSchema>): NonNullable<Config['localNode']> {
  const staticPodPath = resolve(e.LOCAL_NODE_PATH)
  const stateDir = resolve(e.LOCAL_NODE_STATE_DIR)
  if (stateDir === staticPodPath || stateDir.startsWith(staticPodPath + '/')) {
    throw new ConfigError(
      `Invalid LOCAL_NODE_STATE_DIR: ${stateDir} is inside LOCAL_NODE_PATH, where the kubelet would run backups as pods`,
    )
  }
  return { name: e.LOCAL_NODE_NAME, staticPodPath, stateDir, kubeletHealthzUrl: e.LOCAL_KUBELET_HEALTHZ_URL }
}
