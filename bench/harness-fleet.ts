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
  } catch (err) {
    await close()
    throw err
  }
  return { app, close }
}
