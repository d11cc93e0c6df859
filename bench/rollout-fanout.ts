// The rollout side of the fan-out benchmark: one long-lived service process
// (SQLite in a temp dir, no local node) over the harness's N sshd nodes,
// driven through GraphQL (app.inject: the whole request path) as a client would:
//
//   apply: applyStaticPodToNodes(ALL_AT_ONCE, readyTimeoutSeconds: 0) of the
//          harness's kube-scheduler.yaml to all N; the first request (cold:
//          new connections), then --iters more over the pooled connections
//          (warm), alternating two contents so each really writes, ending on
//          the exact manifest (the harness's cmp check holds);
//   read:  staticPods(maxAgeSeconds: 0), --iters times: every node read live.
//
// Prints one JSON line: {"nodes","apply_cold_ms","apply_warm_ms":{min,median,max,runs},"read_warm_ms":{...},"connections_opened"}.
// Run by bench/fanout.ts after the harness for each N (benchmarks are never assertions).
import { benchServiceApp, readBenchFleet } from './harness-fleet.ts'

const fleet = await readBenchFleet(process.argv.slice(2), 1)
const { nodes, manifest, variant, iters } = fleet

const APPLY = `mutation($input: ApplyToNodesInput!) { applyStaticPodToNodes(input: $input) { results { node status error { code message } } userErrors { code message } } }`
const READ = `{ staticPods(maxAgeSeconds: 0) { nodeName name hash } }`

const { app, close } = await benchServiceApp(fleet, { RATE_LIMIT_PER_MINUTE: '100000' })

async function gql(query: string, variables?: Record<string, unknown>): Promise<{ data: Record<string, any>; errors?: unknown[] }> {
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
  return res.json() as { data: Record<string, any>; errors?: unknown[] }
}

async function apply(content: string): Promise<number> {
  const started = performance.now()
  const res = await gql(APPLY, { input: { nodes: nodes.map((n) => n.name), manifest: content, strategy: 'ALL_AT_ONCE', readyTimeoutSeconds: 0 } })
  const elapsed = performance.now() - started
  const payload = res.data.applyStaticPodToNodes as { results: Array<{ node: string; status: string; error: { code: string; message: string } | null }>; userErrors: Array<{ message: string }> }
  const bad = payload.userErrors[0]?.message ?? payload.results.find((r) => r.status !== 'APPLIED')?.error?.message
  if (bad || payload.results.length !== nodes.length) throw new Error(`apply failed: ${bad ?? `${payload.results.length} results`}`)
  return elapsed
}

async function read(): Promise<number> {
  const started = performance.now()
  const res = await gql(READ)
  const elapsed = performance.now() - started
  if (res.errors?.length || (res.data.staticPods as unknown[]).length !== nodes.length) throw new Error(`read failed: ${JSON.stringify(res.errors?.[0] ?? res.data)}`)
  return elapsed
}

function stats(xs: number[]): { min: number; median: number; max: number; runs: number } {
  const s = [...xs].sort((a, b) => a - b)
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
  const round = (x: number) => Math.round(x * 10) / 10
  return { min: round(s[0] ?? 0), median: round(median), max: round(s.at(-1) ?? 0), runs: s.length }
}

try {
  const applyColdMs = await apply(variant)
  const applyWarm: number[] = []
  for (let i = 0; i < iters; i++) applyWarm.push(await apply((iters - i) % 2 === 0 ? variant : manifest))
  const readWarm: number[] = []
  for (let i = 0; i < iters; i++) readWarm.push(await read())
  process.stdout.write(
    `${JSON.stringify({
      nodes: nodes.length,
      apply_cold_ms: Math.round(applyColdMs * 10) / 10,
      apply_warm_ms: stats(applyWarm),
      read_warm_ms: stats(readWarm),
      connections_opened: app.services.agents.sshPoolStats()?.connectionsOpened,
    })}\n`,
  )
} finally {
  await close()
}
