// npm run bench:fleet: the service at fleet size, 200 and 500 sshd nodes, in
// the same run as `parallel-ssh -p 100` writing the same file.
//
//   npm run bench:fleet                          N = 200 and 500, 3 runs each (~10 min on 2 cores)
//   BENCH_FLEET_NS="50" BENCH_RUNS=1 npm run bench:fleet   other sizes, fewer runs
//   RTT_MS=20 npm run bench:fleet                every node 20 ms away (the harness's latency proxy)
//
// For each N, ../shared/bench/nodes.sh brings N sshd daemons up on 127.0.0.1
// (and down after, by PID). Each run, in alternating order so drift favours
// neither, with the nodes' manifests removed first and every copy checked
// byte for byte after:
//
//   parallel-ssh:  the harness's write (stdin piped to every node, temp file +
//                  mv), `-p 100`: the whole process, timed from here;
//   service:       bench/fleet-scale-service.ts as its own process (SQLite in
//                  a temp dir, the node-side state dirs removed first so every
//                  node's first write is a first write): its cold apply (the
//                  first applyStaticPodToNodes, new connections), warm applies
//                  and live reads, RSS and open fds with N connections open;
//                  and the whole process up to the end of the cold apply
//                  (node and tsx start, the app built, the cold apply);
//   bare ssh2:     the harness's ssh2-ref.js --cold-only (every handshake at
//                  once, one write each: the floor of what connecting costs
//                  here), for reference: at 500 its 20 s connect timeout may
//                  not hold, which is what the service's turns are for.
//
// Prints a table of medians and the ratios (the issue's targets: cold apply to
// 500 nodes no slower than parallel-ssh -p 100; RSS under 400 MB with 500
// connections open; nothing fails). Benchmarks are never assertions.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = fileURLToPath(new URL('..', import.meta.url))
const harness = process.env.BENCH_HARNESS ?? join(repo, '..', 'shared', 'bench')
const benchDir = process.env.BENCH_DIR ?? '/tmp/bench'
const ns = (process.env.BENCH_FLEET_NS ?? '200 500').split(/\s+/).filter(Boolean).map(Number)
const runs = Math.max(1, Math.min(10, Number(process.env.BENCH_RUNS ?? 3) || 3))
const psshParallel = Math.max(1, Math.min(500, Number(process.env.BENCH_PSSH_PARALLEL ?? 100) || 100))
const serviceIters = 4
/** One run of either side, at most: a wedged run is a failed benchmark, not a hung one. */
const RUN_TIMEOUT_MS = 10 * 60_000
const manifestPath = join(harness, 'kube-scheduler.yaml')

interface Held {
  rss_mib: number
  fds: number
  connections_open: number | undefined
}
interface ServiceRun {
  nodes: number
  apply_cold_ms: number
  process_cold_ms: number
  apply_warm_ms: { median: number }
  read_warm_ms: { median: number }
  connections_opened: number | undefined
  idle: Held
  after_cold: Held
  after_load: Held
}

/** Fails the run: thrown, so that the daemons still go down (below). */
function die(message: string): never {
  throw new Error(`bench:fleet: ${message}`)
}

function has(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

function nodesSh(...args: string[]): void {
  const result = spawnSync('bash', [join(harness, 'nodes.sh'), ...args], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, BENCH_DIR: benchDir } })
  if (result.status !== 0) die(`nodes.sh ${args.join(' ')} failed`)
}

function nodeDirs(): string[] {
  return (JSON.parse(readFileSync(join(benchDir, 'nodes.json'), 'utf8')) as Array<{ dir: string }>).map((node) => node.dir)
}

function removeManifests(): void {
  for (const dir of nodeDirs()) rmSync(join(dir, 'kube-scheduler.yaml'), { force: true })
}

/** Every node holds the harness's manifest, byte for byte. */
function verify(what: string): void {
  const expected = readFileSync(manifestPath)
  const wrong = nodeDirs().filter((dir) => {
    try {
      return !readFileSync(join(dir, 'kube-scheduler.yaml')).equals(expected)
    } catch {
      return true
    }
  })
  if (wrong.length > 0) die(`${what}: ${wrong.length} node(s) do not hold the manifest, e.g. ${wrong[0]}`)
}

function psshWrite(): number {
  removeManifests()
  const command = [
    `parallel-ssh -h ${benchDir}/hosts.txt -p ${psshParallel} -t 120 -I`,
    `-O IdentityFile=${benchDir}/id_ed25519 -O UserKnownHostsFile=${benchDir}/known_hosts -O StrictHostKeyChecking=yes`,
    `'d=$NODE_MANIFEST_DIR; cat > $d/.kube-scheduler.yaml.tmp && mv $d/.kube-scheduler.yaml.tmp $d/kube-scheduler.yaml' < ${manifestPath}`,
  ].join(' ')
  const started = performance.now()
  const result = spawnSync('sh', ['-c', command], { stdio: ['ignore', 'ignore', 'inherit'], timeout: RUN_TIMEOUT_MS })
  const elapsed = performance.now() - started
  if (result.status !== 0) die(`parallel-ssh failed (exit ${result.status})`)
  verify('parallel-ssh')
  return elapsed
}

/** ssh2-ref.js --cold-only as a whole process; null when it failed (a handshake timed out, say). */
function ssh2Cold(): number | null {
  removeManifests()
  const nodeModules = join(benchDir, 'node', 'node_modules')
  if (!existsSync(join(nodeModules, 'ssh2'))) {
    mkdirSync(join(benchDir, 'node'), { recursive: true })
    rmSync(nodeModules, { recursive: true, force: true })
    symlinkSync(join(repo, 'node_modules'), nodeModules)
  }
  const started = performance.now()
  const result = spawnSync(process.execPath, [join(harness, 'ssh2-ref.js'), '--cold-only', '--json'], {
    env: { ...process.env, BENCH_DIR: benchDir, NODE_PATH: nodeModules },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    timeout: RUN_TIMEOUT_MS,
  })
  const elapsed = performance.now() - started
  if (result.status !== 0) {
    console.log(`bare ssh2 cold run failed: ${(result.stderr ?? '').trim().split('\n').at(-1)}`)
    return null
  }
  verify('bare ssh2')
  return elapsed
}

function serviceRun(): ServiceRun {
  removeManifests()
  rmSync(join(benchDir, 'service-state'), { recursive: true, force: true })
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'bench', 'fleet-scale-service.ts'), '--iters', String(serviceIters)], {
    cwd: repo,
    env: { ...process.env, BENCH_DIR: benchDir, MANIFEST: manifestPath },
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    timeout: RUN_TIMEOUT_MS,
    maxBuffer: 1 << 20,
  })
  if (result.status !== 0) die(`the service run failed (exit ${result.status})`)
  verify('service')
  const line = result.stdout.trim().split('\n').at(-1) ?? ''
  return JSON.parse(line) as ServiceRun
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const ms = (x: number) => `${Math.round(x)} ms`
const ratio = (x: number) => `${(Math.round(x * 100) / 100).toFixed(2)}×`

if (!has('parallel-ssh')) die('parallel-ssh is missing: apt-get install -y pssh')
if (!has('/usr/sbin/sshd')) die('sshd is missing: apt-get install -y openssh-server')

const rows: string[] = []
// Ctrl-C reaches the running child too (same process group): its run fails, and `finally` takes the daemons down.
process.on('SIGINT', () => undefined)

try {
  for (const n of ns) {
    if (!Number.isInteger(n) || n < 1 || n > 500) die(`BENCH_FLEET_NS: ${n} is not a node count of 1..500`)
    nodesSh('up', String(n))
    const pssh: number[] = []
    const service: ServiceRun[] = []
    const ssh2: Array<number | null> = []
    for (let i = 0; i < runs; i++) {
      if (i % 2 === 0) {
        pssh.push(psshWrite())
        service.push(serviceRun())
        ssh2.push(ssh2Cold())
      } else {
        ssh2.push(ssh2Cold())
        service.push(serviceRun())
        pssh.push(psshWrite())
      }
      const last = service.at(-1)!
      console.log(`N=${n} run ${i + 1}/${runs}: parallel-ssh -p ${psshParallel} ${ms(pssh.at(-1)!)}; bare ssh2 ${ssh2.at(-1) === null ? 'failed' : ms(ssh2.at(-1)!)}; service cold apply ${ms(last.apply_cold_ms)} (process start to its end ${ms(last.process_cold_ms)}), warm ${ms(last.apply_warm_ms.median)}, live read ${ms(last.read_warm_ms.median)}, RSS ${last.after_load.rss_mib} MiB, fds ${last.after_load.fds}, connections ${last.after_load.connections_open}`)
    }
    nodesSh('down')
    const psshMs = median(pssh)
    const coldMs = median(service.map((s) => s.apply_cold_ms))
    const wallMs = median(service.map((s) => s.process_cold_ms))
    const warmMs = median(service.map((s) => s.apply_warm_ms.median))
    const readMs = median(service.map((s) => s.read_warm_ms.median))
    const rss = Math.max(...service.map((s) => Math.max(s.after_cold.rss_mib, s.after_load.rss_mib)))
    const rssIdle = median(service.map((s) => s.idle.rss_mib))
    const fds = Math.max(...service.map((s) => Math.max(s.after_cold.fds, s.after_load.fds)))
    const ssh2Ok = ssh2.filter((x): x is number => x !== null)
    const ssh2Cell = ssh2Ok.length === 0 ? 'failed' : `${ms(median(ssh2Ok))}${ssh2Ok.length < ssh2.length ? ` (${ssh2.length - ssh2Ok.length} of ${ssh2.length} failed)` : ''}`
    const open = Math.min(...service.map((s) => s.after_load.connections_open ?? 0))
    rows.push(
      `| ${n} | ${ms(psshMs)} | ${ssh2Cell} | ${ms(coldMs)} | ${ratio(coldMs / psshMs)} | ${ms(wallMs)} | ${ratio(wallMs / psshMs)} | ${ms(warmMs)} | ${ms(readMs)} | ${rssIdle} → ${rss} MiB | ${fds} | ${open} |`,
    )
  }
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
} finally {
  nodesSh('down')
}

if (process.exitCode !== 1) printTable()

function printTable(): void {
  console.log(`\nRTT ${process.env.RTT_MS ?? 0} ms, ${runs} run(s) each, medians; ratios against parallel-ssh -p ${psshParallel} writing the same file in the same run.\n`)
  console.log('| N | parallel-ssh write (whole process) | bare ssh2 cold (whole process) | service cold apply | ratio | service process start → cold apply done | ratio | warm apply | live read | RSS idle → max | open fds max | connections open |')
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const row of rows) console.log(row)
}
