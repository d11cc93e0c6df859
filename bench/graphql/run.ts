// npm run bench:graphql: GraphQL throughput and p99 latency of `staticPods`
// over 1,000 nodes × 8 pods served from the store, next to a bare Fastify +
// Mercurius server returning the same shape from memory, in the same run; then
// the service's RSS after that load. The service is started with the node flags
// of `npm start` (its heap sizes among them), the baseline with Node's defaults.
// Loopback only; every load run is bounded.

import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { seed } from './seed.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const NODES = Number(process.env.BENCH_NODES ?? 1000)
const PODS = Number(process.env.BENCH_PODS ?? 8)
const DURATION = Number(process.env.BENCH_SECONDS ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8)
const QUERY = '{ staticPods(maxAgeSeconds: 3600) { id nodeName namespace name mirrorPodName fileName hash revision managed stale observedAt } }'

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

async function load(port: number): Promise<{ rps: number; p99: number; p50: number; errors: number; bytes: number }> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/graphql`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: QUERY }),
    connections: CONNECTIONS,
    duration: DURATION,
  })
  return { rps: result.requests.average, p99: result.latency.p99, p50: result.latency.p50, errors: result.errors + result.non2xx, bytes: result.throughput.average }
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
    // The baseline as one would run it: Node's default heap settings.
    const bare = await startServer(['--import', 'tsx', 'bench/graphql/bare-server.ts'], { BENCH_NODES: String(NODES), BENCH_PODS: String(PODS) })
    children.push(bare.child)
    // A short warm-up on each so that JIT and caches are in the same state.
    await autocannon({ url: `http://127.0.0.1:${bare.port}/graphql`, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: QUERY }), connections: 2, amount: 20 })
    const baseline = await load(bare.port)
    bare.child.kill('SIGTERM')

    const serviceArgs = npmStartArgs()
    const service = await startServer(serviceArgs, {
      PORT: '0',
      STORE_URL: `sqlite:${db}`,
      LOCAL_NODE_PATH: 'off',
      LOG_LEVEL: 'info',
      MAX_NODES_PER_REQUEST: String(Math.max(NODES, 1)),
      RATE_LIMIT_PER_MINUTE: '100000000',
      GRAPHQL_MAX_FIELDS: '100000',
    })
    children.push(service.child)
    const rssIdle = rssMiB(service.child.pid as number)
    await autocannon({ url: `http://127.0.0.1:${service.port}/graphql`, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: QUERY }), connections: 2, amount: 20 })
    const measured = await load(service.port)
    const rssAfter = rssMiB(service.child.pid as number)

    const row = (name: string, r: typeof baseline) =>
      `| ${name} | ${r.rps.toFixed(1)} | ${r.p50} | ${r.p99} | ${(r.bytes / 1e6).toFixed(1)} | ${r.errors} |`
    process.stdout.write(
      [
        '',
        `staticPods over ${NODES} nodes × ${PODS} pods (${NODES * PODS} pods per response), ${CONNECTIONS} connections, ${DURATION} s each, loopback`,
        `service started as npm start runs it: node ${serviceArgs.join(' ')}`,
        '',
        '| server | req/s | p50 ms | p99 ms | MB/s | errors |',
        '| --- | ---: | ---: | ---: | ---: | ---: |',
        row('bare Fastify + Mercurius, in memory', baseline),
        row('staticpod-api, from the SQLite store', measured),
        '',
        `throughput ratio (service / bare): ${(measured.rps / baseline.rps).toFixed(2)}`,
        `p99 latency ratio (service / bare): ${(measured.p99 / Math.max(baseline.p99, 1)).toFixed(2)}`,
        `service RSS: ${rssIdle} MiB after start with ${NODES} nodes registered, ${rssAfter} MiB after the load`,
        '',
      ].join('\n'),
    )
    if (baseline.errors > 0 || measured.errors > 0) process.exitCode = 1
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
