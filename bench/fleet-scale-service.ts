// The service side of `npm run bench:fleet` (bench/fleet-scale.ts): one
// service process, as in production, over the harness's N sshd nodes, driven
// through GraphQL (app.inject: the whole request path):
//
//   apply cold: the first applyStaticPodToNodes (ALL_AT_ONCE, no readiness
//               wait) to all N: N new connections, taking their turns
//               (SSH_CONNECT_CONCURRENCY), each node's first write;
//   apply warm: --iters more over the pooled connections, alternating two
//               contents so each really writes, ending on the exact manifest;
//   read:       staticPods(maxAgeSeconds: 0), --iters times: every node live.
//
// After each phase: the process's RSS and open file descriptors, and the
// pool's open connections; and the time from this process's start to the end
// of the cold apply (a one-shot tool's whole run). Prints one JSON line. Benchmarks are never assertions; a failed node fails the run.
import { readdirSync } from 'node:fs'
import { benchServiceApp, readBenchFleet } from './harness-fleet.ts'

const fleet = await readBenchFleet(process.argv.slice(2), 2)
const { nodes, manifest, variant, iters } = fleet

const APPLY = `mutation($input: ApplyToNodesInput!) { applyStaticPodToNodes(input: $input) { results { node status error { code message } } userErrors { code message } } }`
const READ = `{ staticPods(maxAgeSeconds: 0) { nodeName name hash } }`

// SSH_CONNECT_CONCURRENCY from the environment, to weigh other turn sizes (the default otherwise).
const turns: Record<string, string> = process.env.SSH_CONNECT_CONCURRENCY ? { SSH_CONNECT_CONCURRENCY: process.env.SSH_CONNECT_CONCURRENCY } : {}
const { app, close } = await benchServiceApp(fleet, { RATE_LIMIT_PER_MINUTE: '100000', OBSERVE_INTERVAL_SECONDS: '0', ...turns })

async function gql(query: string, variables?: Record<string, unknown>): Promise<{ data: Record<string, any>; errors?: unknown[] }> {
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
  return res.json() as { data: Record<string, any>; errors?: unknown[] }
}

async function apply(content: string): Promise<number> {
  const started = performance.now()
  const res = await gql(APPLY, { input: { nodes: nodes.map((n) => n.name), manifest: content, strategy: 'ALL_AT_ONCE', readyTimeoutSeconds: 0 } })
  const elapsed = performance.now() - started
  const payload = res.data?.applyStaticPodToNodes as { results: Array<{ node: string; status: string; error: { code: string; message: string } | null }>; userErrors: Array<{ message: string }> } | undefined
  if (!payload) throw new Error(`apply failed: ${JSON.stringify(res.errors?.[0])}`)
  const failed = payload.results.filter((r) => r.status !== 'APPLIED')
  const bad = payload.userErrors[0]?.message ?? (failed.length > 0 ? `${failed.length} node(s) not applied, e.g. ${failed[0]?.node}: ${failed[0]?.status} ${failed[0]?.error?.code ?? ''} ${failed[0]?.error?.message ?? ''}` : undefined)
  if (bad || payload.results.length !== nodes.length) throw new Error(`apply failed: ${bad ?? `${payload.results.length} results`}`)
  return elapsed
}

async function read(): Promise<number> {
  const started = performance.now()
  const res = await gql(READ)
  const elapsed = performance.now() - started
  const pods = res.data?.staticPods as Array<{ hash: string }> | undefined
  if (res.errors?.length || pods?.length !== nodes.length) throw new Error(`read failed: ${JSON.stringify(res.errors?.[0] ?? `${pods?.length} pods`)}`)
  return elapsed
}

/** What the process holds now: RSS (MiB), open file descriptors, open SSH connections. */
function held(): { rss_mib: number; fds: number; connections_open: number | undefined } {
  return {
    rss_mib: Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10,
    fds: readdirSync('/proc/self/fd').length,
    connections_open: app.services.agents.sshPoolStats()?.connectionsOpen,
  }
}

function stats(xs: number[]): { min: number; median: number; max: number; runs: number } {
  const s = [...xs].sort((a, b) => a - b)
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
  const round = (x: number) => Math.round(x * 10) / 10
  return { min: round(s[0] ?? 0), median: round(median), max: round(s.at(-1) ?? 0), runs: s.length }
}

try {
  const idle = held()
  const applyColdMs = await apply(variant)
  // Since this process started (node's time origin): start, build, connect, the first apply; what a one-shot tool's whole run is.
  const processColdMs = performance.now()
  const afterCold = held()
  const applyWarm: number[] = []
  // The cold apply wrote the variant: manifest, variant, …, manifest (an odd count), so each writes and the last leaves the harness's file.
  for (let i = 0; i <= iters; i++) applyWarm.push(await apply(i % 2 === 0 ? manifest : variant))
  const readWarm: number[] = []
  for (let i = 0; i < iters; i++) readWarm.push(await read())
  const afterLoad = held()
  process.stdout.write(
    `${JSON.stringify({
      nodes: nodes.length,
      apply_cold_ms: Math.round(applyColdMs * 10) / 10,
      process_cold_ms: Math.round(processColdMs),
      apply_warm_ms: stats(applyWarm),
      read_warm_ms: stats(readWarm),
      connections_opened: app.services.agents.sshPoolStats()?.connectionsOpened,
      idle,
      after_cold: afterCold,
      after_load: afterLoad,
    })}\n`,
  )
} finally {
  await close()
}
