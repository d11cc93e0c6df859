// npm run bench:fanout: the service writing one static pod manifest to N sshd
// nodes, cold (first request, new connections) and warm (pooled), in the same
// run as the shared baseline harness (../shared/bench: Ansible copy,
// parallel-ssh, a bare ssh2 client), and the ratios between them.
//
//   npm run bench:fanout                  N = 10 and 50, the harness's default runs (~15 min on 2 cores)
//   BENCH_QUICK=1 npm run bench:fanout    N = 10, 3 runs, Ansible copy f5-cold only (~3 min)
//   BENCH_NS="10 20" npm run bench:fanout other node counts
//
// In the same run, bench/rollout-fanout.ts measures the fleet operations
// through GraphQL: a warm applyStaticPodToNodes (ALL_AT_ONCE, no readiness
// wait) and a fan-out read (staticPods maxAgeSeconds 0), next to the harness's
// bare ssh2 warm write/read, parallel-ssh and Ansible copy/slurp.
//
// The harness itself brings the N sshd daemons up and down on 127.0.0.1 and
// times each method with hyperfine; the service is its EXTRA_CMD
// (bench/service-fanout.ts --iters 0: start, connect, write once), timed the
// same way (manifests removed before each run, every node's copy checked with
// cmp after). Then the service runs as it does in production, one process
// serving many requests: its first request (cold) and 20 more over the pooled
// connections (warm), timed in-process. Benchmarks are never assertions.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = fileURLToPath(new URL('..', import.meta.url))
const harness = process.env.BENCH_HARNESS ?? join(repo, '..', 'shared', 'bench')
const benchDir = process.env.BENCH_DIR ?? '/tmp/bench'
const results = join(benchDir, 'results')
const quick = process.env.BENCH_QUICK === '1'
const ns = (process.env.BENCH_NS ?? (quick ? '10' : '10 50')).split(/\s+/).filter(Boolean)
const SERVICE_ITERS = 20

function die(message: string): never {
  process.stderr.write(`bench:fanout: ${message}\n`)
  process.exit(1)
}

/** ansible, parallel-ssh, hyperfine and sshd: present, installed with apt when we are root, or named. */
function prepareTools(): void {
  const tools: Array<[command: string, apt: string]> = [
    ['ansible', 'ansible'],
    ['parallel-ssh', 'pssh'],
    ['hyperfine', 'hyperfine'],
    ['/usr/sbin/sshd', 'openssh-server'],
  ]
  const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
  let missing = tools.filter(([cmd]) => !has(cmd))
  if (missing.length > 0 && process.getuid?.() === 0 && has('apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    console.log(`== installing ${missing.map(([, pkg]) => pkg).join(' ')} (apt)`)
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    spawnSync('apt-get', ['install', '-y', '-qq', ...missing.map(([, pkg]) => pkg)], { stdio: 'inherit', env })
    missing = tools.filter(([cmd]) => !has(cmd))
  }
  if (missing.length > 0) die(`missing ${missing.map(([cmd]) => cmd).join(', ')}: apt-get install -y ${missing.map(([, pkg]) => pkg).join(' ')}`)
  // The harness's bare ssh2 client needs ssh2 under $BENCH_DIR/node: the project's own (same ssh2 1.x), offline.
  const nodeModules = join(benchDir, 'node', 'node_modules')
  if (!existsSync(join(nodeModules, 'ssh2'))) {
    mkdirSync(join(benchDir, 'node'), { recursive: true })
    rmSync(nodeModules, { recursive: true, force: true })
    symlinkSync(join(repo, 'node_modules'), nodeModules)
  }
  if (!existsSync(join(harness, 'run-bench.sh'))) die(`no baseline harness at ${harness} (set BENCH_HARNESS)`)
}

const serviceScript = join(repo, 'bench', 'service-fanout.ts')
const rolloutScript = join(repo, 'bench', 'rollout-fanout.ts')

/**
 * nodes.sh waits for "ready" in latency-proxy.log, which the proxy it starts
 * in the background truncates only once it runs: a log left by an earlier
 * run can say "ready" first, and nodes.sh then gives up on a proxy that is
 * starting fine. So no old log is left for it to read.
 */
function forgetOldProxyLog(): void {
  rmSync(join(benchDir, 'latency-proxy.log'), { force: true })
}

function runHarness(n: string): void {
  // Timed by hyperfine as a whole process, like ssh2-ref.js --cold-only: start, connect, one write to every node.
  const serviceCmd = `node --import tsx ${serviceScript} --iters 0 >> ${join(results, `service-process-N${n}.jsonl`)}`
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BENCH_DIR: benchDir,
    EXTRA_NAME: 'service-process',
    // run-bench.sh prefixes "N=<n>; "; tsx must resolve from the project.
    EXTRA_CMD: `cd ${repo} && ${serviceCmd}`,
  }
  // The harness filters its EXTRA_CMD by ONLY too: the service always runs.
  if (process.env.ONLY) env.ONLY = `${process.env.ONLY}|^service`
  if (quick) {
    env.ONLY = process.env.ONLY ? `${process.env.ONLY}|^service` : 'ansible-copy-f5-cold|ansible-slurp-fN-cold|pssh-write|pssh-read|ssh2|^service'
    env.RUNS_SMALL = process.env.RUNS_SMALL ?? '3'
    env.RUNS_LARGE = process.env.RUNS_LARGE ?? '3'
  }
  console.log(`\n== N=${n}: baseline harness and the service (${quick ? 'quick' : 'full'})`)
  forgetOldProxyLog()
  const run = spawnSync(join(harness, 'run-bench.sh'), [n], { stdio: 'inherit', env, cwd: harness })
  if (run.status !== 0) die(`run-bench.sh ${n} failed (exit ${run.status})`)
}

/**
 * The service in one long-lived process, as it runs: its first request (new
 * connections) and then SERVICE_ITERS more over the pool, RUNS times, on the
 * harness's nodes (brought up again by its own nodes.sh).
 */
function runServiceInProcess(n: string): void {
  const runs = quick ? 3 : Number(n) > 20 ? Number(process.env.RUNS_LARGE ?? 3) : Number(process.env.RUNS_SMALL ?? 5)
  const nodesSh = join(harness, 'nodes.sh')
  const env = { ...process.env, BENCH_DIR: benchDir }
  console.log(`== service-inproc N=${n} runs=${runs} (cold: first request; warm: ${SERVICE_ITERS} more over pooled connections)`)
  forgetOldProxyLog()
  if (spawnSync(nodesSh, ['up', n], { stdio: 'inherit', env }).status !== 0) die(`nodes.sh up ${n} failed`)
  let failure: string | null = null
  for (let i = 0; i < runs && failure === null; i++) {
    spawnSync('sh', ['-c', `rm -f ${benchDir}/nodes/node*/manifests/kube-scheduler.yaml`])
    const run = spawnSync(process.execPath, ['--import', 'tsx', serviceScript, '--iters', String(SERVICE_ITERS)], { cwd: repo, env, encoding: 'utf8', timeout: 600_000 })
    if (run.status !== 0) failure = `service-fanout.ts failed: ${run.stderr.trim().split('\n').slice(-3).join(' ')}`
    process.stdout.write(run.stdout)
    writeFileSync(join(results, `service-inproc-N${n}.jsonl`), run.stdout, { flag: 'a' })
    if (failure !== null) break
    // The fleet operations through GraphQL on the same nodes: applyStaticPodToNodes and a live staticPods read.
    const rollout = spawnSync(process.execPath, ['--import', 'tsx', rolloutScript, '--iters', String(SERVICE_ITERS)], { cwd: repo, env, encoding: 'utf8', timeout: 600_000 })
    if (rollout.status !== 0) failure = `rollout-fanout.ts failed: ${rollout.stderr.trim().split('\n').slice(-3).join(' ')}`
    process.stdout.write(rollout.stdout)
    writeFileSync(join(results, `rollout-inproc-N${n}.jsonl`), rollout.stdout, { flag: 'a' })
  }
  spawnSync(nodesSh, ['down'], { stdio: 'inherit', env })
  if (failure !== null) die(failure)
}

// ---- the report ----------------------------------------------------------------

interface Row {
  method: string
  n: number
  medianS: number
  runs: number
}

const median = (xs: number[]): number => {
  const a = [...xs].sort((x, y) => x - y)
  return a.length % 2 ? a[(a.length - 1) / 2]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2
}

interface Timing {
  median: number
  runs: number
}

/** One row from the per-process medians of in-process timings (none when a process did not report them). */
function warmRow(method: string, n: number, timings: Array<Timing | undefined>): Row[] {
  const present = timings.filter((t): t is Timing => t !== undefined)
  if (present.length === 0) return []
  return [{ method, n, medianS: median(present.map((t) => t.median)) / 1000, runs: present.reduce((s, t) => s + t.runs, 0) }]
}

function readRows(): Row[] {
  const rows: Row[] = []
  for (const file of readdirSync(results).sort()) {
    let m = file.match(/^(.*)-N(\d+)\.json$/)
    if (m) {
      const r = JSON.parse(readFileSync(join(results, file), 'utf8')).results[0] as { median: number; times: number[] }
      rows.push({ method: m[1]!, n: Number(m[2]), medianS: r.median, runs: r.times.length })
      continue
    }
    m = file.match(/^(ssh2|service)-inproc-N(\d+)\.jsonl$/)
    if (m) {
      const lines = readFileSync(join(results, file), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { cold_total_ms: number; warm_write_ms: { median: number; runs: number } })
      if (lines.length === 0) continue
      const n = Number(m[2])
      rows.push({ method: `${m[1]}-inproc-cold`, n, medianS: median(lines.map((l) => l.cold_total_ms)) / 1000, runs: lines.length })
      rows.push({ method: `${m[1]}-inproc-warm-write`, n, medianS: median(lines.map((l) => l.warm_write_ms.median)) / 1000, runs: lines.reduce((s, l) => s + l.warm_write_ms.runs, 0) })
      rows.push(...warmRow(`${m[1]}-inproc-warm-read`, n, lines.map((l) => (l as { warm_read_ms?: Timing }).warm_read_ms)))
      continue
    }
    m = file.match(/^rollout-inproc-N(\d+)\.jsonl$/)
    if (m) {
      const lines = readFileSync(join(results, file), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { apply_cold_ms: number; apply_warm_ms: Timing; read_warm_ms: Timing })
      if (lines.length === 0) continue
      const n = Number(m[1])
      rows.push({ method: 'service-apply-cold', n, medianS: median(lines.map((l) => l.apply_cold_ms)) / 1000, runs: lines.length })
      rows.push(...warmRow('service-apply-warm', n, lines.map((l) => l.apply_warm_ms)))
      rows.push(...warmRow('service-read-warm', n, lines.map((l) => l.read_warm_ms)))
    }
  }
  return rows.sort((a, b) => a.n - b.n || a.method.localeCompare(b.method))
}

/** 0.0016 reads badly as "0.00×": small ratios are shown as how many times faster. */
function ratioText(ratio: number): string {
  return ratio >= 0.1 ? `${ratio.toFixed(2)}×` : `${ratio.toPrecision(2)}× (${Math.round(1 / ratio)}× faster)`
}

function report(): void {
  const rows = readRows()
  console.log('\n| method | N | median wall s | per-node ms | runs |')
  console.log('|---|---:|---:|---:|---:|')
  for (const r of rows) console.log(`| ${r.method} | ${r.n} | ${r.medianS.toFixed(3)} | ${((r.medianS * 1000) / r.n).toFixed(1)} | ${r.runs} |`)

  const pairs: Array<[service: string, baseline: string, what: string]> = [
    ['service-inproc-warm-write', 'ssh2-inproc-warm-write', 'warm write, pooled connections: service / bare ssh2'],
    ['service-inproc-cold', 'ssh2-inproc-cold', 'cold write, new connections (in-process): service / bare ssh2'],
    ['service-process', 'ssh2-cold-process', 'whole process, cold: service / bare ssh2'],
    ['service-process', 'pssh-write-pN', 'whole process, cold: service / parallel-ssh'],
    ['service-process', 'ansible-copy-f5-cold', 'whole process, cold: service / Ansible copy (forks 5)'],
    ['service-process', 'ansible-copy-fN-cold', 'whole process, cold: service / Ansible copy (forks N)'],
    ['service-inproc-warm-write', 'pssh-write-pN', 'service warm request / parallel-ssh run'],
    ['service-inproc-warm-write', 'ansible-copy-f5-cold', 'service warm request / Ansible copy run'],
    ['service-apply-warm', 'ssh2-inproc-warm-write', 'applyStaticPodToNodes warm (ALL_AT_ONCE, no wait) / bare ssh2 warm write'],
    ['service-apply-warm', 'pssh-write-pN', 'applyStaticPodToNodes warm / parallel-ssh write'],
    ['service-apply-warm', 'ansible-copy-f5-cold', 'applyStaticPodToNodes warm / Ansible copy (forks 5)'],
    ['service-apply-warm', 'ansible-copy-f5-warm', 'applyStaticPodToNodes warm / Ansible copy (forks 5, ControlPersist warm)'],
    ['service-apply-cold', 'ssh2-inproc-cold', 'applyStaticPodToNodes cold (first request) / bare ssh2 cold'],
    ['service-read-warm', 'ssh2-inproc-warm-read', 'staticPods(maxAgeSeconds: 0) warm / bare ssh2 warm read'],
    ['service-read-warm', 'pssh-read-pN', 'staticPods(maxAgeSeconds: 0) warm / parallel-ssh read'],
    ['service-read-warm', 'ansible-slurp-fN-cold', 'staticPods(maxAgeSeconds: 0) warm / Ansible slurp (forks N)'],
  ]
  console.log('\n| N | ratio | value |')
  console.log('|---:|---|---:|')
  for (const n of [...new Set(rows.map((r) => r.n))]) {
    for (const [service, baseline, what] of pairs) {
      const a = rows.find((r) => r.n === n && r.method === service)
      const b = rows.find((r) => r.n === n && r.method === baseline)
      if (a && b) console.log(`| ${n} | ${what} | ${ratioText(a.medianS / b.medianS)} |`)
    }
  }
}

if (!process.argv.includes('--report-only')) {
  prepareTools()
  rmSync(results, { recursive: true, force: true })
  mkdirSync(results, { recursive: true })
  for (const n of ns) {
    runHarness(n)
    runServiceInProcess(n)
  }
}
report()
