// npm run bench:jump: applyStaticPodToNodes to N nodes through one jump host
// against the same N nodes reached directly, cold (a new service: every
// connection made by the request) and warm (pooled), in one run, at each
// network distance asked, with the ratios jump / direct.
//
//   npm run bench:jump                          N = 50, RTT 0 and 20 ms, 3 cold rounds, 20 warm applies each
//   BENCH_N=10 BENCH_RTT=0 npm run bench:jump   fewer nodes, loopback only
//   BENCH_ROUNDS=5 BENCH_WARM=40                more samples (capped at 20 and 200)
//
// The nodes are the shared harness's (../shared/bench: nodes.sh up N, in
// $BENCH_DIR, default /tmp/bench-jump, ports from BENCH_BASE_PORT + 1, default
// 20001, so a bench:fanout run on the default /tmp/bench is left alone). The
// jump host is one more OpenSSH sshd started here on 127.0.0.1 (forwarding
// allowed), trusting the harness's client key. With RTT_MS = r, nodes.sh puts
// its latency proxy in front of every node (r ms per round trip) and this
// script puts one in front of the jump host, which dials the nodes' own
// sshd ports behind the proxies: either way there is one network distance
// between the service and the nodes' network, as with a bastion that sits
// next to the nodes it guards.
//
// Each round builds one service per path (SQLite in a temp dir, nodes pinned
// to the harness's known_hosts keys; through the jump host: the jump host
// pinned too and every node's via set), the paths in alternating order so
// drift does not favour one, and measures its first apply (cold) and then
// BENCH_WARM more over the pool (warm), alternating two contents so that
// every apply writes; every node must answer APPLIED. Benchmarks are never
// assertions. Every loop here is bounded; every process started here is
// stopped here, by its pid.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { openSshFingerprint } from '../src/agents/host-key.ts'
import { benchServiceApp, readBenchFleet, type BenchFleet } from './harness-fleet.ts'

const repo = fileURLToPath(new URL('..', import.meta.url))
const harness = process.env.BENCH_HARNESS ?? join(repo, '..', 'shared', 'bench')
const benchDir = process.env.BENCH_DIR ?? '/tmp/bench-jump'
// readBenchFleet (harness-fleet.ts) reads the harness's files from here.
process.env.BENCH_DIR = benchDir
// 20001.., and 30001.. behind the latency proxies: below Linux's ephemeral ports (32768 and up), which
// outgoing connections take and a busy machine would then hold when a node wants to listen there.
const basePort = Number(process.env.BENCH_BASE_PORT ?? 20000)
const n = Math.max(1, Math.min(500, Number(process.env.BENCH_N ?? 50)))
const rtts = (process.env.BENCH_RTT ?? '0 20').split(/\s+/).filter(Boolean).map(Number)
const rounds = Math.max(1, Math.min(20, Number(process.env.BENCH_ROUNDS ?? 3)))
const warmIters = 2 * Math.ceil(Math.max(2, Math.min(200, Number(process.env.BENCH_WARM ?? 20))) / 2)
const SSHD = '/usr/sbin/sshd'
/** The harness's nodes.sh: each sshd moves this far up when a latency proxy takes its port. */
const PROXIED_PORT_OFFSET = 10_000
const START_TIMEOUT_MS = 10_000

const APPLY = `mutation($input: ApplyToNodesInput!) { applyStaticPodToNodes(input: $input) { results { node status error { code message } } userErrors { code message } } }`

function die(message: string): never {
  process.stderr.write(`bench:jump: ${message}\n`)
  process.exit(1)
}

// ---- processes started here: the harness's nodes, the jump host, its latency proxy

const children = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of children) if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL')
})

/** nodes.sh; `up` is tried twice (on a busy machine its 10 s wait for the latency proxy can run out), and throws so that `down` still runs. */
function nodesSh(args: string[], rtt: number): void {
  const env = { ...process.env, BENCH_DIR: benchDir, BASE_PORT: String(basePort), RTT_MS: String(rtt) }
  const attempts = args[0] === 'up' ? 2 : 1
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const run = spawnSync(join(harness, 'nodes.sh'), args, { stdio: 'inherit', env, timeout: 300_000 })
    if (run.status === 0) return
    if (attempt === attempts) throw new Error(`nodes.sh ${args.join(' ')} failed (exit ${run.status})`)
    // nodes.sh up runs down itself first when it finds the daemons of an earlier up.
    console.log(`   nodes.sh ${args.join(' ')} failed (exit ${run.status}); once more`)
  }
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

async function waitAccepting(port: number, what: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline && child.exitCode === null) {
    if (await accepts(port)) return
    await sleep(50)
  }
  throw new Error(`${what} did not start on port ${port}`)
}

async function stop(child: ChildProcess): Promise<void> {
  if (!child.pid || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  process.kill(child.pid, 'SIGTERM')
  const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
  children.delete(child)
}

interface JumpHost {
  /** Where the service dials it (the proxy's port with an RTT). */
  port: number
  fingerprint: string
  processes: ChildProcess[]
}

/** The jump host: OpenSSH sshd on 127.0.0.1, the harness's client key, TCP forwarding on; behind a latency proxy when rtt > 0. */
async function startJumpHost(rtt: number): Promise<JumpHost> {
  const dir = join(benchDir, 'jump-host')
  await mkdir(dir, { recursive: true })
  const hostKey = join(dir, 'ssh_host_ed25519_key')
  if (!existsSync(hostKey)) spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-jump-host', '-f', hostKey], { stdio: 'ignore' })
  const fingerprint = openSshFingerprint(Buffer.from((await readFile(`${hostKey}.pub`, 'utf8')).split(' ')[1] as string, 'base64'))
  const sshdPort = basePort + 900 + (rtt > 0 ? PROXIED_PORT_OFFSET : 0)
  const port = basePort + 900
  await writeFile(
    join(dir, 'sshd_config'),
    `# bench jump host (bench/jump-hosts.ts)
Port ${sshdPort}
ListenAddress 127.0.0.1
AddressFamily inet
HostKey ${hostKey}
PidFile ${join(dir, 'sshd.pid')}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile ${join(benchDir, 'authorized_keys')}
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
X11Forwarding no
# a jump host forwards; it runs no sessions for the service
AllowTcpForwarding yes
MaxStartups 1000:100:1000
LoginGraceTime 30
LogLevel ERROR
# root's ~/.bashrc here is slow (pyenv init); nothing runs a shell, but keep the harness's rule
SetEnv HOME=${dir}
`,
  )
  const sshd = spawn(SSHD, ['-D', '-f', join(dir, 'sshd_config'), '-E', join(dir, 'sshd.log')], { stdio: 'ignore' })
  children.add(sshd)
  const processes = [sshd]
  try {
    await waitAccepting(sshdPort, 'the jump host sshd', sshd)
    if (rtt > 0) {
      const proxy = spawn(process.execPath, [join(harness, 'latency-proxy.js'), String(rtt), `${port}:${sshdPort}`], { stdio: 'ignore' })
      children.add(proxy)
      processes.push(proxy)
      await waitAccepting(port, 'the latency proxy in front of the jump host', proxy)
    }
  } catch (err) {
    for (const p of processes.reverse()) await stop(p)
    throw err
  }
  return { port, fingerprint, processes }
}

// ---- one service, one path

interface PathTiming {
  coldMs: number
  warmMs: number[]
  connectionsOpened: number | undefined
  jumpHostConnections: number | undefined
}

async function measure(fleet: BenchFleet, jump: { port: number; fingerprint: string; nodePort: (harnessPort: number) => number } | null): Promise<PathTiming> {
  const { app, close } = await benchServiceApp(fleet, { RATE_LIMIT_PER_MINUTE: '100000' })
  try {
    const { store } = app.services
    if (jump) {
      await store.putJumpHost({ name: 'bastion', host: '127.0.0.1', port: jump.port, user: 'root', hostKeyFingerprint: jump.fingerprint, observedHostKeyFingerprint: null, via: null })
      for (const node of await store.listNodes()) {
        if (node.kind !== 'ssh') continue
        await store.updateNode({ ...node, ssh: { ...node.ssh, port: jump.nodePort(node.ssh.port), via: 'bastion' } })
      }
    }
    const apply = async (content: string): Promise<number> => {
      const started = performance.now()
      const res = await app.inject({
        method: 'POST',
        url: '/graphql',
        payload: { query: APPLY, variables: { input: { nodes: fleet.nodes.map((x) => x.name), manifest: content, strategy: 'ALL_AT_ONCE', readyTimeoutSeconds: 0 } } },
      })
      const elapsed = performance.now() - started
      const payload = (res.json() as { data?: { applyStaticPodToNodes?: { results: Array<{ status: string; error: { message: string } | null }>; userErrors: Array<{ message: string }> } } }).data?.applyStaticPodToNodes
      const bad = payload?.userErrors[0]?.message ?? payload?.results.find((r) => r.status !== 'APPLIED')?.error?.message ?? (payload ? null : res.body.slice(0, 300))
      if (bad || payload?.results.length !== fleet.nodes.length) throw new Error(`apply (${jump ? 'through the jump host' : 'direct'}) failed: ${bad ?? `${payload?.results.length} results`}`)
      return elapsed
    }
    // The nodes hold neither content now: the first apply writes everywhere, over new connections.
    const coldMs = await apply(fleet.variant)
    const warmMs: number[] = []
    for (let i = 0; i < warmIters; i++) warmMs.push(await apply(i % 2 === 0 ? fleet.manifest : fleet.variant))
    const stats = app.services.agents.sshPoolStats()
    return { coldMs, warmMs, connectionsOpened: stats?.connectionsOpened, jumpHostConnections: stats?.jumpHostConnections }
  } finally {
    await close()
  }
}

function removeManifests(fleet: BenchFleet): void {
  for (const node of fleet.nodes) spawnSync('rm', ['-f', join(node.dir, 'kube-scheduler.yaml')])
}

const median = (xs: number[]): number => {
  const a = [...xs].sort((x, y) => x - y)
  return a.length === 0 ? Number.NaN : a.length % 2 ? a[(a.length - 1) / 2]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2
}
const ms = (x: number): string => x.toFixed(1)

interface RttResult {
  rtt: number
  direct: PathTiming[]
  jump: PathTiming[]
}

async function runAt(rtt: number): Promise<RttResult> {
  console.log(`\n== RTT ${rtt} ms: ${n} nodes (nodes.sh up ${n}), ${rounds} rounds, ${warmIters} warm applies per service`)
  let jumpHost: JumpHost | null = null
  try {
    nodesSh(['up', String(n)], rtt)
    const fleet = await readBenchFleet(['--iters', '2'], 2)
    jumpHost = await startJumpHost(rtt)
    // Behind the proxies, the nodes' own sshd: the jump host sits next to them.
    const nodePort = (harnessPort: number): number => harnessPort + (rtt > 0 ? PROXIED_PORT_OFFSET : 0)
    const result: RttResult = { rtt, direct: [], jump: [] }
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['direct', 'jump'] as const) : (['jump', 'direct'] as const)
      for (const path of order) {
        removeManifests(fleet)
        const timing = await measure(fleet, path === 'jump' ? { port: jumpHost.port, fingerprint: jumpHost.fingerprint, nodePort } : null)
        result[path].push(timing)
        console.log(
          `   round ${round + 1} ${path.padEnd(6)} cold ${ms(timing.coldMs).padStart(8)} ms   warm median ${ms(median(timing.warmMs)).padStart(7)} ms   connections ${timing.connectionsOpened} (to the jump host: ${timing.jumpHostConnections})`,
        )
      }
    }
    return result
  } finally {
    for (const p of jumpHost?.processes.reverse() ?? []) await stop(p)
    nodesSh(['down'], 0)
  }
}

function report(results: RttResult[]): void {
  console.log(`\n| RTT ms | N | path | cold apply ms (median of ${rounds}) | warm apply ms (median of ${rounds}×${warmIters}) | warm min-max ms |`)
  console.log('|---:|---:|---|---:|---:|---|')
  for (const r of results) {
    for (const path of ['direct', 'jump'] as const) {
      const cold = median(r[path].map((t) => t.coldMs))
      const warm = r[path].flatMap((t) => t.warmMs)
      console.log(`| ${r.rtt} | ${n} | ${path === 'jump' ? 'one jump host' : 'direct'} | ${ms(cold)} | ${ms(median(warm))} | ${ms(Math.min(...warm))}-${ms(Math.max(...warm))} |`)
    }
  }
  console.log('\n| RTT ms | N | ratio jump / direct: cold | warm |')
  console.log('|---:|---:|---:|---:|')
  for (const r of results) {
    const cold = median(r.jump.map((t) => t.coldMs)) / median(r.direct.map((t) => t.coldMs))
    const warm = median(r.jump.flatMap((t) => t.warmMs)) / median(r.direct.flatMap((t) => t.warmMs))
    console.log(`| ${r.rtt} | ${n} | ${cold.toFixed(2)}× | ${warm.toFixed(2)}× |`)
  }
}

if (!existsSync(join(harness, 'nodes.sh'))) die(`no baseline harness at ${harness} (set BENCH_HARNESS)`)
if (!existsSync(SSHD)) die(`${SSHD} not found: apt-get install -y openssh-server`)
if (rtts.some((r) => !(r >= 0))) die('BENCH_RTT: milliseconds, e.g. "0 20"')
const results: RttResult[] = []
try {
  for (const rtt of rtts) results.push(await runAt(rtt))
} catch (err) {
  die(err instanceof Error ? err.message : String(err))
}
report(results)
// The known_hosts and keys of the harness stay for the next run; the jump host's state directory too.
if (process.env.BENCH_CLEAN === '1') await rm(benchDir, { recursive: true, force: true })
