// npm run bench:sftp-requests: what one warm write, one live read and one
// delete of a static pod cost on the wire to one node, and a write at first
// contact (a service just started: new connection, new agent, a node that
// has backups already; the SSH handshake is not counted, its time is in the
// ms): SFTP requests by type,
// the SSH messages that carry them, and the sequential round trips among them (bench/sftp-rounds.ts: counted by
// instrumenting ssh2's SFTP client), next to a bare ssh2 client doing the same
// (write a temp file, posix-rename it; read the file; unlink it).
//
// On real sshd daemons (test/support/sshd.ts): node 1 on loopback, node 2
// behind ../shared/bench/latency-proxy.js at BENCH_RTT_MS (default 20; 0: no
// proxy), where the wall time divided by the RTT is a second, independent
// count of the round trips (it includes SSH channel opens for crictl and the
// kubelet's healthz, which are not SFTP requests). Each figure is the median
// of BENCH_ITERS (default 7) runs, after 3 warm-up writes.
//
//   npm run bench:sftp-requests
//   BENCH_RTT_MS=50 BENCH_ITERS=11 npm run bench:sftp-requests
//
// Prints a table, then one JSON line with every figure. Benchmarks, not assertions.

import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Client, type SFTPWrapper } from 'ssh2'
import { freePort, startSshdFleet, type SshdNode } from '../test/support/sshd.ts'
import { sshFleetApp } from '../test/support/ssh-app.ts'
import { ANONYMOUS_ADMIN } from '../src/services/actor.ts'
import { count, installSftpCounter, type WireCount } from './sftp-rounds.ts'

installSftpCounter()

const rttMs = Number(process.env.BENCH_RTT_MS ?? 20)
const iters = Math.max(1, Number(process.env.BENCH_ITERS ?? 7))
const harness = process.env.BENCH_HARNESS ?? fileURLToPath(new URL('../../shared/bench', import.meta.url))

const pod = (v: number): string =>
  `apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: kube-system\nspec:\n  containers:\n  - name: main\n    image: nginx:1.${v}\n`

interface Sample {
  wire: WireCount
  ms: number
}
type Op = 'write' | 'read' | 'delete'
type Who = 'service' | 'bare ssh2'

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

function summary(samples: Sample[], rtt: number | null) {
  const last = samples.at(-1)!
  const ms = median(samples.map((s) => s.ms))
  return {
    requests: median(samples.map((s) => s.wire.requests)),
    messagesSent: median(samples.map((s) => s.wire.messagesSent)),
    roundTrips: median(samples.map((s) => s.wire.roundTrips)),
    waves: median(samples.map((s) => s.wire.waves)),
    ms: Math.round(ms * 10) / 10,
    ...(rtt ? { roundTripsByTime: Math.round((ms / rtt) * 10) / 10 } : {}),
    byRequest: last.wire.byRequest,
  }
}

async function startProxy(target: number): Promise<{ port: number; child: ChildProcess }> {
  const script = join(harness, 'latency-proxy.js')
  if (!existsSync(script)) throw new Error(`no ${script} (set BENCH_HARNESS, or BENCH_RTT_MS=0)`)
  const port = await freePort()
  const child = spawn(process.execPath, [script, String(rttMs), `${port}:${target}`], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`latency-proxy.js exited ${code}`)))
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve()
    })
  })
  return { port, child }
}

/** The harness's bare reference (../shared/bench/ssh2-ref.js): one ssh2 connection, SFTP writeFile + posix-rename, readFile, unlink. */
async function bareClient(node: SshdNode, port: number, user: string, keyFile: string): Promise<{ sftp: SFTPWrapper; end(): void }> {
  const client = new Client()
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve()).once('error', reject)
    client.connect({ host: '127.0.0.1', port, username: user, privateKey: readFileSync(keyFile), hostVerifier: () => true })
  })
  const sftp = await new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))))
  void node
  return { sftp, end: () => client.end() }
}

function bareOps(sftp: SFTPWrapper, dir: string): Record<Op, () => Promise<unknown>> {
  const dest = `${dir}/bare.yaml`
  const tmp = `${dir}/.bare.yaml.tmp`
  const data = Buffer.from(pod(1))
  return {
    write: () =>
      new Promise<void>((resolve, reject) =>
        sftp.writeFile(tmp, data, { mode: 0o644 }, (err) => (err ? reject(err) : sftp.ext_openssh_rename(tmp, dest, (e) => (e ? reject(e) : resolve())))),
      ),
    read: () => new Promise<Buffer>((resolve, reject) => sftp.readFile(dest, (err, buf) => (err ? reject(err) : resolve(buf)))),
    delete: () => new Promise<void>((resolve, reject) => sftp.unlink(dest, (err) => (err ? reject(err) : resolve()))),
  }
}

const afters: Array<() => Promise<void>> = []
const fleet = await startSshdFleet(2, { node: () => ({ crictl: 'none' }) })
let proxy: { port: number; child: ChildProcess } | null = null
const results: Record<string, Record<Who, Partial<Record<Op | 'first write', ReturnType<typeof summary>>>>> = {}
try {
  if (rttMs > 0) proxy = await startProxy(fleet.nodes[1]!.port)
  const app = await sshFleetApp({ after: (fn) => afters.push(fn) }, fleet)
  const placements: Array<{ label: string; node: SshdNode; port: number; rtt: number | null }> = [
    { label: 'loopback', node: fleet.nodes[0]!, port: fleet.nodes[0]!.port, rtt: null },
    ...(proxy ? [{ label: `RTT ${rttMs} ms`, node: fleet.nodes[1]!, port: proxy.port, rtt: rttMs }] : []),
  ]
  const s = app.app.services.staticPods
  for (const { label, node, port, rtt } of placements) {
    await app.addNode(node, { ssh: { port } })
    const put = (v: number) => s.putStaticPod({ node: node.name, namespace: 'kube-system', name: 'web', manifest: pod(v) }, ANONYMOUS_ADMIN)
    const service: Record<Op, () => Promise<unknown>> = {
      write: async () => {
        const r = await put(writes++ % 2 ? 7 : 8)
        if (!r.changed || r.userErrors.length) throw new Error(`write: ${JSON.stringify(r.userErrors)}`)
      },
      read: async () => {
        const r = await app.gql<{ staticPods: Array<{ name: string }> }>('query($n: String) { staticPods(node: $n, maxAgeSeconds: 0) { name hash } }', { n: node.name })
        if (r.errors || r.data.staticPods.length !== 1) throw new Error(`read: ${JSON.stringify(r.errors ?? r.data)}`)
      },
      delete: async () => {
        const r = await s.deleteStaticPod({ node: node.name, namespace: 'kube-system', name: 'web' }, ANONYMOUS_ADMIN)
        if (!r.deleted || r.userErrors.length) throw new Error(`delete: ${JSON.stringify(r.userErrors)}`)
      },
    }
    let writes = 0
    for (let v = 1; v <= 3; v++) await put(v)
    const samples: Record<Who, Record<Op, Sample[]>> = { service: { write: [], read: [], delete: [] }, 'bare ssh2': { write: [], read: [], delete: [] } }
    for (let i = 0; i < iters; i++) {
      // The service sends every close without waiting for it (sftp-fs.ts): not on its critical path.
      for (const op of ['write', 'read', 'delete'] as const) samples.service[op].push(await count(service[op], { unawaited: ['close'] }))
      await put(9) // back for the next round, not counted
    }
    // A service just started, on the same node-side state (its lock and backups): its first write.
    const restarted = await sshFleetApp({ after: (fn) => afters.push(fn) }, fleet, { SSH_STATE_DIR: join(app.dir, 'ssh-state') })
    await restarted.addNode(node, { ssh: { port } })
    const first = await count(
      async () => {
        const r = await restarted.app.services.staticPods.putStaticPod({ node: node.name, namespace: 'kube-system', name: 'web', manifest: pod(10) }, ANONYMOUS_ADMIN)
        if (!r.changed || r.userErrors.length) throw new Error(`first write: ${JSON.stringify(r.userErrors)}`)
      },
      { unawaited: ['close'] },
    )
    const bare = await bareClient(node, port, fleet.user, fleet.clientKeyFile)
    const ops = bareOps(bare.sftp, node.manifests)
    await ops.write()
    for (let i = 0; i < iters; i++) for (const op of ['write', 'read', 'delete'] as const) samples['bare ssh2'][op].push(await count(ops[op]))
    bare.end()
    results[label] = {
      service: { write: summary(samples.service.write, rtt), read: summary(samples.service.read, rtt), delete: summary(samples.service.delete, rtt), 'first write': summary([first], rtt) },
      'bare ssh2': { write: summary(samples['bare ssh2'].write, rtt), read: summary(samples['bare ssh2'].read, rtt), delete: summary(samples['bare ssh2'].delete, rtt) },
    }
  }
} finally {
  for (const f of afters.reverse()) await f()
  proxy?.child.kill('SIGTERM')
  await fleet.stop()
}

console.log('| where | op | who | SFTP requests | SSH messages sent | round trips (critical path) | waves | ms | round trips by wall time |')
console.log('|---|---|---|---:|---:|---:|---:|---:|---:|')
for (const [label, byWho] of Object.entries(results)) {
  for (const op of ['write', 'read', 'delete', 'first write'] as const) {
    for (const who of ['service', 'bare ssh2'] as const) {
      const r = byWho[who][op]
      if (!r) continue
      console.log(`| ${label} | ${op} | ${who} | ${r.requests} | ${r.messagesSent} | ${r.roundTrips} | ${r.waves} | ${r.ms} | ${'roundTripsByTime' in r ? r.roundTripsByTime : ''} |`)
    }
  }
}
console.log(JSON.stringify({ rttMs, iters, results }))
