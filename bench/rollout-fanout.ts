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
import { benchServiceApp, fleetOperations, readBenchFleet, timingStats, warmContents } from './harness-fleet.ts'

const fleet = await readBenchFleet(process.argv.slice(2), 1)
const { nodes, variant, iters } = fleet

const { app, close } = await benchServiceApp(fleet, { RATE_LIMIT_PER_MINUTE: '100000' })
const { apply, read } = fleetOperations(app, nodes)

try {
  const applyColdMs = await apply(variant)
  const applyWarm: number[] = []
  for (const content of warmContents(fleet)) applyWarm.push(await apply(content))
  const readWarm: number[] = []
  for (let i = 0; i < iters; i++) readWarm.push(await read())
  process.stdout.write(
    `${JSON.stringify({
      nodes: nodes.length,
      apply_cold_ms: Math.round(applyColdMs * 10) / 10,
      apply_warm_ms: timingStats(applyWarm),
      read_warm_ms: timingStats(readWarm),
      connections_opened: app.services.agents.sshPoolStats()?.connectionsOpened,
    })}\n`,
  )
} finally {
  await close()
}
