// Builds the real app on a temp directory (real SQLite file, real local
// filesystem node) and closes it after the test, in the style of fastify/demo.

import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.ts'
import { loadConfig, type Config } from '../src/config.ts'

export interface TestApp {
  app: FastifyInstance
  config: Config
  dir: string
  manifests: string
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

export async function build(t: TestContext, opts: { env?: Record<string, string>; dir?: string; clock?: () => Date } = {}): Promise<TestApp> {
  const dir = opts.dir ?? (await makeTempDir())
  const env = {
    STORE_URL: `sqlite:${join(dir, 'staticpod-api.db')}`,
    LOCAL_NODE_PATH: join(dir, 'manifests'),
    LOCAL_NODE_STATE_DIR: join(dir, 'state'),
    // Nothing listens here, so the local node reports no kubelet quickly.
    LOCAL_KUBELET_HEALTHZ_URL: 'http://127.0.0.1:9/healthz',
    LOCK_WAIT_MS: '2000',
    ...opts.env,
  }
  const config = loadConfig(env)
  const app = await buildApp(config, { logger: false, clock: opts.clock })
  t.after(async () => {
    await app.close()
    if (!opts.dir) await rm(dir, { recursive: true, force: true })
  })
  const gql = async <T>(query: string, variables?: Record<string, unknown>): Promise<GqlResponse<T>> => {
    const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
    return { status: res.statusCode, ...(res.json() as { data: T }) }
  }
  return { app, config, dir, manifests: env.LOCAL_NODE_PATH, stateDir: env.LOCAL_NODE_STATE_DIR, gql }
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
