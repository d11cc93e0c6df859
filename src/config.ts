// Configuration: parsed once at boot from the environment by one zod schema.
// A bad value stops the start with one line naming the variable.

import { resolve } from 'node:path'
import { z } from 'zod'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const port = z.coerce.number().int().min(0).max(65535)
const positiveInt = z.coerce.number().int().min(1)
const nonNegativeInt = z.coerce.number().int().min(0)
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v))

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
  LOCAL_NODE_PATH: z.string().min(1).default('./data/manifests'),
  LOCAL_NODE_NAME: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'expected a lowercase DNS-1123 name')
    .max(253)
    .default('local'),
  // Backups and the node lock of the local node; must be outside LOCAL_NODE_PATH
  // because the kubelet runs every file it finds there.
  LOCAL_NODE_STATE_DIR: z.string().min(1).default('./data/state'),
  LOCAL_KUBELET_HEALTHZ_URL: z.url().default('http://127.0.0.1:10248/healthz'),
  SSH_PRIVATE_KEY_FILE: optionalText,
  SSH_PRIVATE_KEY: optionalText,
  KUBECONFIG: optionalText,
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
})

export type Config = {
  host: string
  port: number
  store: StoreLocation
  localNode: { name: string; staticPodPath: string; stateDir: string; kubeletHealthzUrl: string } | null
  sshPrivateKeyFile: string | undefined
  sshPrivateKey: string | undefined
  kubeconfig: string | undefined
  authTokensFile: string | undefined
  authTokens: string | undefined
  logLevel: (typeof LOG_LEVELS)[number]
  staticPodsMaxAgeSeconds: number
  lockWaitMs: number
  lockTtlMs: number
  bodyLimitBytes: number
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/** Parses the environment; throws a ConfigError whose message is one line naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const variable = String(issue?.path[0] ?? 'environment')
    const value = env[variable]
    const shown = value === undefined ? '' : ` (got ${JSON.stringify(value.length > 60 ? value.slice(0, 60) + '…' : value)})`
    throw new ConfigError(`Invalid ${variable}: ${issue?.message ?? 'invalid value'}${shown}`)
  }
  const e = parsed.data
  const localNode = e.LOCAL_NODE_PATH === 'off' ? null : localNodeConfig(e)
  return {
    host: e.HOST,
    port: e.PORT,
    store: e.STORE_URL,
    localNode,
    sshPrivateKeyFile: e.SSH_PRIVATE_KEY_FILE,
    sshPrivateKey: e.SSH_PRIVATE_KEY,
    kubeconfig: e.KUBECONFIG,
    authTokensFile: e.AUTH_TOKENS_FILE,
    authTokens: e.AUTH_TOKENS,
    logLevel: e.LOG_LEVEL,
    staticPodsMaxAgeSeconds: e.STATIC_PODS_MAX_AGE_SECONDS,
    lockWaitMs: e.LOCK_WAIT_MS,
    lockTtlMs: e.LOCK_TTL_MS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
  }
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
