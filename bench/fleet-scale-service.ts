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
import { benchServiceApp, fleetOperations, readBenchFleet, timingStats, warmContents } from './harness-fleet.ts'

const fleet = await readBenchFleet(process.argv.slice(2), 2)
const { nodes, variant, iters } = fleet


// SSH_CONNECT_CONCURRENCY from the environment, to weigh other turn sizes (the default otherwise).
const turns: Record<string, string> = process.env.SSH_CONNECT_CONCURRENCY ? { SSH_CONNECT_CONCURRENCY: process.env.SSH_CONNECT_CONCURRENCY } : {}
const { app, close } = await benchServiceApp(fleet, { RATE_LIMIT_PER_MINUTE: '100000', OBSERVE_INTERVAL_SECONDS: '0', ...turns })

const { apply, read } = fleetOperations(app, nodes)

/** What the process holds now: RSS (MiB), open file descriptors, open SSH connections. */
function held(): { rss_mib: number; fds: number; connections_open: number | undefined } {
  return {
    rss_mib: Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10,
    fds: readdirSync('/proc/self/fd').length,
    connections_open: app.services.agents.sshPoolStats()?.connectionsOpen,
  }
}

try {
  const idle = held()
  const applyColdMs = await apply(variant)
  // Since this process started (node's time origin): start, build, connect, the first apply; what a one-shot tool's whole run is.
  const processColdMs = performance.now()
  const afterCold = held()
  const applyWarm: number[] = []
  for (const content of warmContents(fleet)) applyWarm.push(await apply(content))
  const readWarm: number[] = []
  for (let i = 0; i < iters; i++) readWarm.push(await read())
  const afterLoad = held()
  process.stdout.write(
    `${JSON.stringify({
      nodes: nodes.length,
      apply_cold_ms: Math.round(applyColdMs * 10) / 10,
      process_cold_ms: Math.round(processColdMs),
      apply_warm_ms: timingStats(applyWarm),
      read_warm_ms: timingStats(readWarm),
      connections_opened: app.services.agents.sshPoolStats()?.connectionsOpened,
      idle,
      after_cold: afterCold,
      after_load: afterLoad,
    })}\n`,
  )
} finally {
  await close()
}
