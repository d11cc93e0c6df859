// The service side of the fan-out benchmark: one process that builds the
// service in-process (SQLite in a temp dir, no local node), registers the
// harness's N sshd nodes pinned to their known_hosts keys, and writes
// bench's kube-scheduler.yaml to every node through StaticPodService (the whole
// write path: lock, read, compare, backup, atomic write, read-back, revision,
// audit).
//
//   cold: the first write to all N nodes at once, over new connections
//   warm: --iters more writes to all N at once over the pooled connections
//         (alternating two contents so each one really writes; the last one
//         is the exact manifest, so the harness's cmp check holds)
//
// Prints one JSON line: {"nodes","cold_total_ms","warm_write_ms":{min,median,max,runs},"connections_opened"}.
// Run by bench/fanout.ts as the harness's EXTRA_CMD, so hyperfine also times the whole process.
import { benchServiceApp, readBenchFleet } from './harness-fleet.ts'
import { ANONYMOUS_ADMIN } from '../src/services/actor.ts'

const fleet = await readBenchFleet(process.argv.slice(2), 0)
const { nodes, manifest, variant, iters } = fleet

const { app, close } = await benchServiceApp(fleet)
const { services } = app
try {
  const failures = (results: Array<{ userErrors: Array<{ code: string; message: string }> }>) =>
    results.flatMap((r) => r.userErrors.map((e) => `${e.code}: ${e.message}`))

  const coldStarted = performance.now()
  const created = await Promise.all(nodes.map((n) => services.staticPods.createStaticPod({ node: n.name, manifest }, ANONYMOUS_ADMIN)))
  const coldMs = performance.now() - coldStarted
  if (failures(created).length) throw new Error(`cold write failed: ${failures(created)[0]}`)

  const warm: number[] = []
  for (let i = 0; i < iters; i++) {
    const content = (iters - i) % 2 === 0 ? variant : manifest
    const started = performance.now()
    const updated = await Promise.all(
      nodes.map((n) => services.staticPods.updateStaticPod({ node: n.name, namespace: 'kube-system', name: 'kube-scheduler', manifest: content }, ANONYMOUS_ADMIN)),
    )
    warm.push(performance.now() - started)
    if (failures(updated).length) throw new Error(`warm write failed: ${failures(updated)[0]}`)
  }

  const sorted = [...warm].sort((a, b) => a - b)
  const median = sorted.length === 0 ? 0 : sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2
  const round = (x: number) => Math.round(x * 10) / 10
  process.stdout.write(
    `${JSON.stringify({
      nodes: nodes.length,
      cold_total_ms: round(coldMs),
      warm_write_ms: { min: round(sorted[0] ?? 0), median: round(median), max: round(sorted.at(-1) ?? 0), runs: warm.length },
      connections_opened: services.agents.sshPoolStats()?.connectionsOpened,
    })}\n`,
  )
} finally {
  await close()
}
