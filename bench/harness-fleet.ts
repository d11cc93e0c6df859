// The shared bench harness's fleet (../shared/bench: nodes.sh up N), as the
// service-side benchmark scripts read it: the nodes, their pinned host keys
// from known_hosts, the manifest, and a second content so that every warm
// write really writes.

import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../src/app.ts'
import { openSshFingerprint } from '../src/agents/host-key.ts'
import { loadConfig } from '../src/config.ts'
import type { Store } from '../src/store/store.ts'

export interface BenchNode {
  name: string
  host: string
  port: number
  dir: string
}

export interface BenchFleet {
  dir: string
  nodes: BenchNode[]
  /** OpenSSH SHA256 fingerprint by "[host]:port", from the harness's known_hosts. */
  knownHosts: Map<string, string>
  manifest: string
  variant: string
  /** --iters N, made even so that alternating writes end on the exact manifest (the harness's cmp check). */
  iters: number
}

export async function readBenchFleet(args: string[], minIters: number): Promise<BenchFleet> {
  const dir = process.env.BENCH_DIR ?? '/tmp/bench'
  const manifestPath = process.env.MANIFEST ?? new URL('../../shared/bench/kube-scheduler.yaml', import.meta.url).pathname
  const asked = Number(args[args.indexOf('--iters') + 1] ?? 20) || minIters
  const iters = 2 * Math.ceil(Math.max(minIters, Math.min(1000, asked)) / 2)
  const nodes = JSON.parse(await readFile(join(dir, 'nodes.json'), 'utf8')) as BenchNode[]
  const knownHosts = new Map<string, string>()
  for (const line of (await readFile(join(dir, 'known_hosts'), 'utf8')).split('\n')) {
    const [hostPort, , blob] = line.trim().split(/\s+/)
    if (hostPort && blob) knownHosts.set(hostPort, openSshFingerprint(Buffer.from(blob, 'base64')))
  }
  const manifest = await readFile(manifestPath, 'utf8')
  return { dir, nodes, knownHosts, manifest, variant: `${manifest}# staticpod-api bench: a second content, so that every warm write really writes\n`, iters }
}

/** Registers every harness node in the store, pinned to its known_hosts key (so the service trusts exactly those keys). */
export async function registerBenchNodes(store: Store, fleet: BenchFleet): Promise<void> {
  for (const node of fleet.nodes) {
    const fingerprint = fleet.knownHosts.get(`[${node.host}]:${node.port}`)
    if (!fingerprint) throw new Error(`no known_hosts entry for ${node.name}`)
    const now = new Date().toISOString()
    await store.createNode({
      name: node.name,
      kind: 'ssh',
      ssh: { host: node.host, port: node.port, user: 'root', privilege: 'NONE', sftpServer: null, via: null, hostKeyFingerprint: fingerprint, observedHostKeyFingerprint: fingerprint },
      staticPodPath: node.dir,
      staticPodPathFrom: 'given',
      labels: [],
      createdAt: now,
      updatedAt: now,
    })
  }
}

/**
 * The service as the benchmarks run it: in this process, SQLite in a temp
 * directory, no local node, the harness's key, its nodes registered and
 * pinned. close() stops it and removes the temp directory.
 */
export async function benchServiceApp(fleet: BenchFleet, env: Record<string, string> = {}): Promise<{ app: Awaited<ReturnType<typeof buildApp>>; close(): Promise<void> }> {
  const work = await mkdtemp(join(tmpdir(), 'staticpod-bench-'))
  const app = await buildApp(
    loadConfig({
      STORE_URL: `sqlite:${join(work, 'store.db')}`,
      LOCAL_NODE_PATH: 'off',
      LOG_LEVEL: 'silent',
      SSH_PRIVATE_KEY_FILE: join(fleet.dir, 'id_ed25519'),
      SSH_STATE_DIR: join(fleet.dir, 'service-state'),
      MAX_NODES_PER_REQUEST: '5000',
      ...env,
    }),
    { logger: false },
  )
  const close = async (): Promise<void> => {
    await app.close()
    await rm(work, { recursive: true, force: true })
  }
  try {
    await registerBenchNodes(app.services.store, fleet)
    // Booted as a server is before it listens (route schemas compiled, plugins
    // loaded), and past its first request, one that reaches no node (the modules
    // a request loads on first use, which tsx transpiles here on the fly): a cold
    // request here is one over new connections, not the boot.
    await app.ready()
    await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ nodes { name } }' } })
  } catch (err) {
    await close()
    throw err
  }
  return { app, close }
}

const APPLY = `mutation($input: ApplyToNodesInput!) { applyStaticPodToNodes(input: $input) { results { node status error { code message } } userErrors { code message } } }`
const READ = `{ staticPods(maxAgeSeconds: 0) { nodeName name hash } }`

/**
 * The fleet operations through GraphQL (app.inject: the whole request path),
 * each timed in ms: apply is applyStaticPodToNodes (ALL_AT_ONCE, no readiness
 * wait) of content to every node, and fails unless every node is APPLIED (an
 * UNCHANGED node wrote nothing, so its time would not be a write's); read is
 * staticPods(maxAgeSeconds: 0), every node read live.
 */
export function fleetOperations(app: Awaited<ReturnType<typeof buildApp>>, nodes: BenchNode[]): { apply(content: string): Promise<number>; read(): Promise<number> } {
  async function gql(query: string, variables?: Record<string, unknown>): Promise<{ data?: Record<string, any>; errors?: unknown[] }> {
    const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
    return res.json() as { data?: Record<string, any>; errors?: unknown[] }
  }
  return {
    async apply(content) {
      const started = performance.now()
      const res = await gql(APPLY, { input: { nodes: nodes.map((n) => n.name), manifest: content, strategy: 'ALL_AT_ONCE', readyTimeoutSeconds: 0 } })
      const elapsed = performance.now() - started
      const payload = res.data?.applyStaticPodToNodes as { results: Array<{ node: string; status: string; error: { code: string; message: string } | null }>; userErrors: Array<{ message: string }> } | undefined
      if (!payload) throw new Error(`apply failed: ${JSON.stringify(res.errors?.[0])}`)
      const failed = payload.results.filter((r) => r.status !== 'APPLIED')
      const bad = payload.userErrors[0]?.message ?? (failed.length > 0 ? `${failed.length} node(s) not applied, e.g. ${failed[0]?.node}: ${failed[0]?.status} ${failed[0]?.error?.code ?? ''} ${failed[0]?.error?.message ?? ''}` : undefined)
      if (bad || payload.results.length !== nodes.length) throw new Error(`apply failed: ${bad ?? `${payload.results.length} results`}`)
      return elapsed
    },
    async read() {
      const started = performance.now()
      const res = await gql(READ)
      const elapsed = performance.now() - started
      const pods = res.data?.staticPods as unknown[] | undefined
      if (res.errors?.length || pods?.length !== nodes.length) throw new Error(`read failed: ${JSON.stringify(res.errors?.[0] ?? `${pods?.length} pods`)}`)
      return elapsed
    },
  }
}

/** Warm applies after a cold apply of fleet.variant: manifest, variant, …, manifest (an odd count), so each writes and the last leaves the harness's file (its cmp check). */
export function warmContents(fleet: BenchFleet): string[] {
  return Array.from({ length: fleet.iters + 1 }, (_, i) => (i % 2 === 0 ? fleet.manifest : fleet.variant))
}

export function timingStats(xs: number[]): { min: number; median: number; max: number; runs: number } {
  const s = [...xs].sort((a, b) => a - b)
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
  const round = (x: number) => Math.round(x * 10) / 10
  return { min: round(s[0] ?? 0), median: round(median), max: round(s.at(-1) ?? 0), runs: s.length }
}
