// npm run bench:graphql: GraphQL throughput and p99 latency of `staticPods`
// over 1,000 nodes × 8 pods served from the store, next to a bare Fastify +
// Mercurius server returning the same shape from memory, in the same run; then
// the service's RSS after that load. The service is started with the node flags
// of `npm start` (its heap sizes among them), the baselines with Node's defaults.
// Loopback only; every load run is bounded.
//
// The baseline is fair, not handicapped: the bare server (bare-server.ts) has
// the same StaticPod fields, the same 8,000 pods and mercurius's jit with the
// service's own setting, as a bare Fastify + Mercurius user would set it. The
// ratios compare the service with that server. A second bare server, the same
// with graphql-js (no jit), is reported beside them to show what the jit alone
// is worth; it is not what the ratios are measured against. One difference is
// the service's own and not an option: it sends each GraphQL answer as the
// UTF-8 bytes it encodes once (src/graphql/request-limits.ts), where the bare
// server sends Fastify's string. Measured without it, the service was at 0.91
// of the bare server's throughput and 1.20× its p99 (with it, 0.98 and 0.92).
//
// The machine may be shared (CI, other jobs): all three servers run at once and
// are loaded in turn, BENCH_ROUNDS rounds of BENCH_REQUESTS / BENCH_ROUNDS
// requests each, so that a slow spell of the machine falls on all of them
// rather than on one. Rounds are counted in requests, not seconds: a round cut
// by time would leave up to one request per connection running on after it,
// in the next server's round. Throughput is all rounds' responses over all
// rounds' time; latency percentiles are over every response of every round.
//
// Knobs: BENCH_NODES (1000), BENCH_PODS (8), BENCH_REQUESTS per server (160),
// BENCH_ROUNDS (5), BENCH_CONNECTIONS (8); BENCH_QUICK=1 is 48 requests in 3 rounds.

import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { seed } from './seed.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const QUICK = process.env.BENCH_QUICK === '1'
const NODES = Number(process.env.BENCH_NODES ?? 1000)
const PODS = Number(process.env.BENCH_PODS ?? 8)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8)
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? (QUICK ? 3 : 5)))
/** Per server per round; at least one per connection (autocannon refuses fewer). */
const PER_ROUND = Math.max(CONNECTIONS, Math.round(Number(process.env.BENCH_REQUESTS ?? (QUICK ? 48 : 160)) / ROUNDS))
const QUERY = '{ staticPods(maxAgeSeconds: 3600) { id nodeName namespace name mirrorPodName fileName hash revision managed stale observedAt } }'
const REQUEST = { method: 'POST' as const, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: QUERY }) }

/**
 * The node arguments of `npm start` (package.json), so that the service is
 * measured as it is run, heap settings included. node itself, not a wrapper
 * process: its pid is the server's, for RSS.
 */
function npmStartArgs(): string[] {
  const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start
  const [command, ...args] = start.trim().split(/\s+/)
  if (command !== 'node' || args.at(-1) !== 'src/server.ts') throw new Error(`npm start is "${start}": expected node <flags> src/server.ts`)
  return args
}

async function startServer(args: string[], env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const script = args.at(-1)
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env, NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start in 60 s`)), 60_000)
    let out = ''
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /listening (\d+)/.exec(out) ?? /127\.0\.0\.1:(\d+)\/graphiql/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    })
    child.on('exit', (code) => reject(new Error(`${script} exited with ${code}`)))
  })
  return { child, port }
}

/** What the rounds of one server added up to. */
class Tally {
  readonly latencies: number[] = []
  seconds = 0
  bytes = 0
  errors = 0

  add(result: autocannon.Result, latencies: number[]): void {
    this.latencies.push(...latencies)
    this.seconds += result.duration
    this.bytes += result.throughput.total
    this.errors += result.errors + result.non2xx
  }

  get rps(): number {
    return this.latencies.length / Math.max(this.seconds, 1e-9)
  }

  percentile(p: number): number {
    const sorted = [...this.latencies].sort((a, b) => a - b)
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0
  }
}

/** One round of load, `requests` of them (bounded by autocannon's timeout per request); the latency of every response. */
async function round(port: number, requests: number, tally: Tally): Promise<void> {
  const latencies: number[] = []
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({ url: `http://127.0.0.1:${port}/graphql`, ...REQUEST, connections: CONNECTIONS, amount: requests }, (err, done) => (err ? reject(err) : resolve(done)))
    instance.on('response', (_client, _status, _bytes, ms) => latencies.push(ms))
  })
  tally.add(result, latencies)
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  return Math.round((kb / 1024) * 10) / 10
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-graphql-'))
  const db = join(dir, 'store.db')
  process.stdout.write(`seeding ${NODES} nodes × ${PODS} pods …\n`)
  await seed(db, NODES, PODS)
  const children: ChildProcess[] = []
  try {
    const bareEnv = { BENCH_NODES: String(NODES), BENCH_PODS: String(PODS) }
    const bareArgs = ['--import', 'tsx', 'bench/graphql/bare-server.ts']
    const serviceArgs = npmStartArgs()
    const servers = [
      { name: 'bare Fastify + Mercurius (graphql-js), in memory', ...(await startServer(bareArgs, { ...bareEnv, BARE_JIT: 'off' })), tally: new Tally() },
      { name: 'bare Fastify + Mercurius (jit), in memory', ...(await startServer(bareArgs, bareEnv)), tally: new Tally() },
      {
        name: 'staticpod-api, from the SQLite store',
        ...(await startServer(serviceArgs, {
          PORT: '0',
          STORE_URL: `sqlite:${db}`,
          LOCAL_NODE_PATH: 'off',
          LOG_LEVEL: 'info',
          MAX_NODES_PER_REQUEST: String(Math.max(NODES, 1)),
          RATE_LIMIT_PER_MINUTE: '100000000',
          GRAPHQL_MAX_FIELDS: '100000',
          // No observer rounds: the seeded nodes are fictitious addresses with no SSH key, so a round
          // (5 s after start) stores every node as unreachable, and each query after it reads all 1,000
          // nodes live (failing) and stores their failures instead of reading the store.
          OBSERVE_INTERVAL_SECONDS: '0',
        })),
        tally: new Tally(),
      },
    ]
    children.push(...servers.map((s) => s.child))
    const [graphqlJs, bare, service] = servers as [(typeof servers)[0], (typeof servers)[0], (typeof servers)[0]]
    const rssIdle = rssMiB(service.child.pid as number)

    // A short warm-up on each, so that V8's JIT, caches and mercurius's jit are in the same state.
    for (const s of servers) await autocannon({ url: `http://127.0.0.1:${s.port}/graphql`, ...REQUEST, connections: 2, amount: 20 })
    for (let r = 0; r < ROUNDS; r++) {
      // Each round in a different order, so that none is always first after another's load.
      for (let i = 0; i < servers.length; i++) {
        const s = servers[(r + i) % servers.length] as (typeof servers)[0]
        await round(s.port, PER_ROUND, s.tally)
      }
    }
    const rssAfter = rssMiB(service.child.pid as number)

    const row = (s: (typeof servers)[0]) =>
      `| ${s.name} | ${s.tally.rps.toFixed(1)} | ${s.tally.percentile(50).toFixed(0)} | ${s.tally.percentile(99).toFixed(0)} | ${(s.tally.bytes / s.tally.seconds / 1e6).toFixed(1)} | ${s.tally.errors} |`
    process.stdout.write(
      [
        '',
        `staticPods over ${NODES} nodes × ${PODS} pods (${NODES * PODS} pods per response), ${CONNECTIONS} connections, ${PER_ROUND * ROUNDS} requests each in ${ROUNDS} interleaved rounds, loopback`,
        `service started as npm start runs it: node ${serviceArgs.join(' ')}`,
        '',
        '| server | req/s | p50 ms | p99 ms | MB/s | errors |',
        '| --- | ---: | ---: | ---: | ---: | ---: |',
        ...servers.map(row),
        '',
        `throughput ratio (service / bare with jit): ${(service.tally.rps / bare.tally.rps).toFixed(2)}`,
        `p99 latency ratio (service / bare with jit): ${(service.tally.percentile(99) / Math.max(bare.tally.percentile(99), 1)).toFixed(2)}`,
        `jit alone, bare with jit / bare with graphql-js: ${(bare.tally.rps / graphqlJs.tally.rps).toFixed(2)}× throughput`,
        `service RSS: ${rssIdle} MiB after start with ${NODES} nodes registered, ${rssAfter} MiB after the load`,
        '',
      ].join('\n'),
    )
    if (servers.some((s) => s.tally.errors > 0)) process.exitCode = 1
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
