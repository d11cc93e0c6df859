// Builds the real app on a temp directory (real SQLite file, and a node with a
// real directory: the local node, or an SSH node served by a real sshd on
// 127.0.0.1) and closes it after the test, in the style of fastify/demo.

import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildApp, type AppOptions } from '../src/app.ts'
import { loadConfig, type Config } from '../src/config.ts'
import { startSshdFleet, type SshdFleet } from './support/sshd.ts'
import { sshNodeRecord } from './support/node-record.ts'
import { testResolver } from './support/resolver.ts'

/** The node kinds every static pod test runs on. */
export const NODE_KINDS = ['local', 'ssh'] as const
type NodeKind = (typeof NODE_KINDS)[number]

export interface TestApp {
  app: FastifyInstance
  config: Config
  dir: string
  /** The node the test works on, and what it is. */
  nodeName: string
  nodeKind: NodeKind
  /** That node's staticPodPath (a directory on this machine, whichever the kind). */
  manifests: string
  /** That node's lock and backups. */
  stateDir: string
  /** POST /graphql; returns the parsed body and the status. */
  gql<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<GqlResponse<T>>
}

export interface GqlResponse<T> {
  status: number
  data: T
  errors?: Array<{ message: string; path?: string[]; extensions?: { code?: string; [k: string]: unknown } }>
}

export async function makeTempDir(prefix = 'staticpod-api-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix))
}

export interface BuildOptions {
  env?: Record<string, string>
  dir?: string
  clock?: () => Date
  /** 'local' (default): the built-in local node. 'ssh': an SSH node over the shared test sshd, and no local node. */
  node?: NodeKind
  /** The node's name (default 'local' for the local node, 'ssh-node' for an SSH node). */
  nodeName?: string
  /** More options for buildApp (tests of events: shorter webhook retries and store polling; lazy route schemas). */
  appOptions?: Pick<AppOptions, 'webhookFirstRetryMs' | 'eventPollMs' | 'store' | 'lazySchemas'>
}

export async function build(t: TestContext, opts: BuildOptions = {}): Promise<TestApp> {
  const dir = opts.dir ?? (await makeTempDir())
  const nodeKind = opts.node ?? 'local'
  const nodeName = opts.nodeName ?? (nodeKind === 'local' ? 'local' : 'ssh-node')
  const manifests = join(dir, 'manifests')
  const ssh = nodeKind === 'ssh' ? await sharedSshd() : null
  const env: Record<string, string> = {
    STORE_URL: `sqlite:${join(dir, 'staticpod-api.db')}`,
    ...(ssh
      ? { LOCAL_NODE_PATH: 'off', ...ssh.env, SSH_STATE_DIR: join(dir, 'ssh-state'), SSH_KUBELET_HEALTHZ_PORT: '9' }
      : { LOCAL_NODE_PATH: manifests, LOCAL_NODE_NAME: nodeName, LOCAL_NODE_STATE_DIR: join(dir, 'state') }),
    // Nothing listens here, so the local node reports no kubelet quickly.
    LOCAL_KUBELET_HEALTHZ_URL: 'http://127.0.0.1:9/healthz',
    LOCK_WAIT_MS: '2000',
    ...opts.env,
  }
  const config = loadConfig(env)
  const app = await buildApp(config, { logger: false, clock: opts.clock, resolveHost: testResolver, ...opts.appOptions })
  t.after(async () => {
    await app.close()
    if (!opts.dir) await rm(dir, { recursive: true, force: true })
  })
  let stateDir = env.LOCAL_NODE_STATE_DIR as string
  if (ssh) {
    const sshd = ssh.nodes[0] as SshdFleet['nodes'][number]
    await mkdir(manifests, { recursive: true })
    // Straight into the store: registering is not what these tests are about, and it would add an audit event.
    await app.services.store.createNode(
      sshNodeRecord({ name: nodeName, host: '127.0.0.1', port: sshd.port, user: ssh.user, staticPodPath: manifests, hostKeyFingerprint: sshd.fingerprint }),
    )
    stateDir = join(env.SSH_STATE_DIR as string, nodeName)
  }
  const gql = async <T>(query: string, variables?: Record<string, unknown>): Promise<GqlResponse<T>> => {
    const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
    return { status: res.statusCode, ...(res.json() as { data: T }) }
  }
  return { app, config, dir, nodeName, nodeKind, manifests: ssh ? manifests : (env.LOCAL_NODE_PATH as string), stateDir, gql }
}

let sshdOfThisFile: Promise<SshdFleet> | undefined

/**
 * One sshd for every SSH-node test of the test file (each test gets its own
 * staticPodPath on it). Test files that use it stop it with
 * `after(stopSharedSshd)`.
 */
export function sharedSshd(): Promise<SshdFleet> {
  // No crictl stand-in: a node process per crictl call would dominate these tests' time; ssh-*.test.ts cover it.
  sshdOfThisFile ??= startSshdFleet(1, { prefix: 'shared', node: () => ({ crictl: 'none' }) })
  return sshdOfThisFile
}

export async function stopSharedSshd(): Promise<void> {
  const fleet = sshdOfThisFile
  sshdOfThisFile = undefined
  await (await fleet)?.stop()
}

/** Names in a directory that the kubelet would run (every name not starting with '.'). */
export async function kubeletVisibleFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => !n.startsWith('.')).sort()
}

export const podYaml = (name: string, image = 'nginx:1.27', extra = ''): string =>
  `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
${extra}spec:
  containers:
  - name: main
    image: ${image}
`
