// npm run bench:manifest-memory [-- --concurrency 3 --mb 9.9 --reads 5 --shape block|quoted|escaped|env --heap-mb 1024]
//
// Memory and latency of concurrent large manifest writes, on the real service
// started as `npm start` runs it (its heap flags included), with a baseline of
// the same requests with a small manifest in the same run:
//   1. baseline: N concurrent REST PUTs of a ~2 KB manifest;
//   2. large: N concurrent REST PUTs of a ~9.9 MB manifest: a Pod with a big
//      annotation, an embedded config file as a block scalar (--shape block,
//      the default), one double-quoted string (quoted), one with escapes in it
//      (escaped: JSON text, the costliest string for the yaml lib to parse),
//      or a Pod with that many env entries (env: far more tokens than
//      MAX_MANIFEST_TOKENS, so refused with 400);
//   3. live reads of the node now holding the large manifests (GET list with
//      maxAgeSeconds=0, several times): they must not parse again.
// --heap-mb replaces npm start's --max-old-space-size, to see how much heap
// the run needs. During each phase the service's RSS (/proc/<pid>/status VmRSS) is sampled
// every 50 ms and /healthz is probed, to see how long the event loop is held.
// Loopback only; bounded (every request has a timeout); stops the one child
// it started, by its pid.

import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parseManifest } from '../src/manifest/parse.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const { values: args } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '3' },
    mb: { type: 'string', default: '9.9' },
    reads: { type: 'string', default: '5' },
    shape: { type: 'string', default: 'block' },
    'heap-mb': { type: 'string' },
  },
})
const CONCURRENCY = Math.max(1, Number(args.concurrency))
const BIG_BYTES = Math.round(Number(args.mb) * 1_000_000)
const READS = Math.max(1, Number(args.reads))
const SHAPE = args.shape as 'block' | 'quoted' | 'escaped' | 'env'
if (!['block', 'quoted', 'escaped', 'env'].includes(SHAPE)) throw new Error(`--shape ${SHAPE}: block, quoted, escaped or env`)
const REQUEST_TIMEOUT_MS = 120_000

/** The node arguments of `npm start` (package.json); node itself, so that the pid is the server's. */
function npmStartArgs(): string[] {
  const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start
  const [command, ...rest] = start.trim().split(/\s+/)
  if (command !== 'node' || rest.at(-1) !== 'src/server.ts') throw new Error(`npm start is "${start}": expected node <flags> src/server.ts`)
  return rest
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

interface Answer {
  status: number
  ms: number
  bytes: number
}

function send(port: number, method: string, path: string, body?: string): Promise<Answer> {
  const started = performance.now()
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false, timeout: REQUEST_TIMEOUT_MS, headers: body === undefined ? {} : { 'content-type': 'application/yaml' } })
    req.on('response', (res) => {
      let bytes = 0
      res.on('data', (chunk: Buffer) => (bytes += chunk.length))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started, bytes }))
      res.on('error', () => resolve({ status: -1, ms: performance.now() - started, bytes }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ status: -1, ms: performance.now() - started, bytes: 0 }))
    req.end(body)
  })
}

function rssMiB(pid: number): number {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
    return kb / 1024
  } catch {
    return 0
  }
}

function hwmMiB(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
  } catch {
    return 0
  }
}

interface Phase {
  answers: Answer[]
  peakRss: number
  startRss: number
  healthz: number[]
  wallMs: number
}

/** Runs `work` while sampling the child's RSS every 50 ms and probing /healthz one after the other. */
async function phase(pid: number, port: number, work: () => Promise<Answer[]>): Promise<Phase> {
  const startRss = rssMiB(pid)
  let peakRss = startRss
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssMiB(pid))), 50)
  const healthz: number[] = []
  let working = true
  const prober = (async () => {
    while (working) {
      const probe = await send(port, 'GET', '/healthz')
      if (probe.status === 200) healthz.push(probe.ms)
      await new Promise((r) => setTimeout(r, 50))
    }
  })()
  const started = performance.now()
  const answers = await work().finally(() => (working = false))
  const wallMs = performance.now() - started
  await prober
  clearInterval(sampler)
  peakRss = Math.max(peakRss, rssMiB(pid))
  return { answers, peakRss, startRss, healthz, wallMs }
}

function smallPod(name: string): string {
  const lines = ['apiVersion: v1', 'kind: Pod', 'metadata:', `  name: ${name}`, '  namespace: default', '  labels:']
  for (let i = 0; lines.join('\n').length < 1700; i++) lines.push(`    label-${i}: value-${i}`)
  lines.push('spec:', '  containers:', '  - name: app', '    image: nginx:1.27', '')
  return lines.join('\n')
}

/** A Pod of about `bytes` bytes, of the --shape asked for. */
function bigPod(name: string, bytes: number): string {
  const metadata = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: default\n`
  const spec = 'spec:\n  containers:\n  - name: app\n    image: nginx:1.27\n'
  const parts: string[] = []
  let size = 0
  const fill = (head: string, tail: string, item: (i: number) => string): string => {
    parts.push(head)
    size = head.length + tail.length
    for (let i = 0; ; i++) {
      const next = item(i)
      if (size + next.length > bytes) break
      parts.push(next)
      size += next.length
    }
    parts.push(tail)
    return parts.join('')
  }
  if (SHAPE === 'block') {
    // An embedded config file of 100-character lines.
    return fill(`${metadata}  annotations:\n    example.com/config: |\n`, spec, (i) => `      ${`setting.${name}.${i} = ${'v'.repeat(100)}`.slice(0, 94)}\n`)
  }
  if (SHAPE === 'quoted') return fill(`${metadata}  annotations:\n    example.com/blob: "`, `"\n${spec}`, () => 'x'.repeat(1000))
  if (SHAPE === 'escaped') return fill(`${metadata}  annotations:\n    example.com/json: "`, `"\n${spec}`, (i) => `{\\"key-${i}\\": \\"${'v'.repeat(80)}\\"}, `)
  return fill(`${metadata}${spec}    env:\n`, '', (i) => `    - name: VAR_${i}\n      value: "value-${i}-abcdefghij"\n`)
}

const median = (xs: number[]): number => {
  if (xs.length === 0) return 0
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}
const max = (xs: number[]): number => (xs.length === 0 ? 0 : Math.max(...xs))
const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(1))
const statuses = (answers: Answer[]): string => {
  const counts = new Map<number, number>()
  for (const a of answers) counts.set(a.status, (counts.get(a.status) ?? 0) + 1)
  return [...counts].sort(([a], [b]) => a - b).map(([s, c]) => `${c}×${s === -1 ? 'lost' : s}`).join(' ')
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-manifest-memory-'))
  const port = await freePort()
  const heapMb = args['heap-mb']
  const serviceArgs = npmStartArgs().map((arg) => (heapMb !== undefined && arg.startsWith('--max-old-space-size=') ? `--max-old-space-size=${Number(heapMb)}` : arg))
  let child: ChildProcess | undefined
  let exited = false
  try {
    child = spawn(process.execPath, serviceArgs, {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(port),
        STORE_URL: `sqlite:${join(dir, 'store.db')}`,
        LOCAL_NODE_PATH: join(dir, 'manifests'),
        LOCAL_NODE_STATE_DIR: join(dir, 'state'),
        // Nothing listens there: the local node reports no kubelet at once.
        LOCAL_KUBELET_HEALTHZ_URL: 'http://127.0.0.1:9/healthz',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    })
    child.on('exit', () => (exited = true))
    const pid = child.pid as number
    for (let i = 0; ; i++) {
      if (exited) throw new Error('the service exited during start')
      if ((await send(port, 'GET', '/healthz')).status === 200) break
      if (i > 600) throw new Error('the service did not answer /healthz within 60 s')
      await new Promise((r) => setTimeout(r, 100))
    }
    const idleRss = rssMiB(pid)

    const smalls = Array.from({ length: CONCURRENCY }, (_, i) => smallPod(`small-${i}`))
    const bigs = Array.from({ length: CONCURRENCY }, (_, i) => bigPod(`big-${i}`, BIG_BYTES))
    // What one parse of such a manifest costs (in this process, not the service's): what a read must not pay again.
    const parseMs = median([0, 1, 2].map((i) => {
      const t = performance.now()
      try {
        parseManifest(`# ${i}\n${bigs[0]!}`)
      } catch {
        // --shape env: refused (too many tokens); the time is still what a read would pay
      }
      return performance.now() - t
    }))

    const putAll = (texts: string[], prefix: string) => () =>
      Promise.all(texts.map((text, i) => send(port, 'PUT', `/api/v1/nodes/local/staticpods/default/${prefix}-${i}`, text)))
    const baseline = await phase(pid, port, putAll(smalls, 'small'))
    const hwmAfterBaseline = hwmMiB(pid)
    const large = await phase(pid, port, putAll(bigs, 'big'))
    const hwmAfterLarge = hwmMiB(pid)
    const reads = await phase(pid, port, async () => {
      const answers: Answer[] = []
      for (let i = 0; i < READS; i++) answers.push(await send(port, 'GET', '/api/v1/nodes/local/staticpods?maxAgeSeconds=0'))
      return answers
    })
    if (exited) throw new Error('the service exited during the run (out of memory?)')

    const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(1)}×` : '-')
    const lat = (p: Phase) => p.answers.map((a) => a.ms)
    const row = (name: string, p: Phase) =>
      `| ${name} | ${statuses(p.answers)} | ${lat(p).map(fmt).join(' / ')} | ${fmt(p.peakRss)} | ${fmt(median(p.healthz))} | ${fmt(max(p.healthz))} | ${p.healthz.length} |`
    const mb = (BIG_BYTES / 1e6).toFixed(1)
    process.stdout.write(
      [
        '',
        `service: node ${serviceArgs.join(' ')} (pid ${pid}), loopback; ${CONCURRENCY} concurrent PUTs each; large manifest shape: ${SHAPE}; RSS idle ${fmt(idleRss)} MiB`,
        `budget and wait: MANIFEST_BUDGET_BYTES=${process.env.MANIFEST_BUDGET_BYTES ?? 'default'} MANIFEST_BUDGET_WAIT_MS=${process.env.MANIFEST_BUDGET_WAIT_MS ?? 'default'}`,
        '',
        '| phase | answers | latency of each, ms | peak RSS MiB | /healthz p50 ms | /healthz max ms | probes |',
        '| --- | --- | --- | ---: | ---: | ---: | ---: |',
        row(`PUT ${Buffer.byteLength(smalls[0]!)} B manifest (baseline)`, baseline),
        row(`PUT ${mb} MB manifest`, large),
        row(`GET list (${CONCURRENCY} × ${mb} MB pods, live), one after another`, reads),
        '',
        `large / baseline: peak RSS ${ratio(large.peakRss, baseline.peakRss)} (VmHWM ${fmt(hwmAfterBaseline)} -> ${fmt(hwmAfterLarge)} MiB), ` +
          `max PUT latency ${ratio(max(lat(large)), max(lat(baseline)))}, /healthz max ${ratio(max(large.healthz), max(baseline.healthz))}, /healthz p50 ${ratio(median(large.healthz), median(baseline.healthz))}`,
        `live reads: ${lat(reads).map(fmt).join(' / ')} ms for ${fmt(median(reads.answers.map((a) => a.bytes)) / 1e6)} MB answers; ` +
          `one parse of one such manifest takes ${fmt(parseMs)} ms (here, in the bench process), ${CONCURRENCY} per read if reads parsed again; ` +
          `RSS ${fmt(reads.startRss)} -> peak ${fmt(reads.peakRss)} MiB during the reads`,
        '',
      ].join('\n'),
    )
    const lost = [...baseline.answers, ...large.answers, ...reads.answers].filter((a) => a.status === -1).length
    if (lost > 0) process.exitCode = 1
  } finally {
    if (child?.pid !== undefined && !exited) {
      process.kill(child.pid, 'SIGTERM')
      const deadline = Date.now() + 10_000
      while (!exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      if (!exited) process.kill(child.pid, 'SIGKILL')
    }
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
