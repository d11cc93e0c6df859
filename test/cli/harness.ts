// A real service for the staticpodctl tests: the app built as test/helper.ts
// builds it (a real SQLite file, the local node on a temp directory), with the
// test tokens, listening on 127.0.0.1 port 0, and two SSH nodes on real sshd
// daemons (test/support/sshd.ts) whose container runtime is the stand-in
// test/support/fake-runtime.ts (no runtime can run here). The CLI itself is
// run as a child process: bin/staticpodctl.mjs, exactly what `npx
// staticpodctl` runs, with no terminal, or inside a pseudo-terminal made by
// util-linux `script`.

import assert from 'node:assert/strict'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import type { NodeRecord } from '../../src/domain.ts'
import { makeTempDir, type GqlResponse } from '../helper.ts'
import { TOKENS, TOKENS_DOCUMENT } from '../http/tokens.ts'
import { FakeRuntime, type FakeRuntimeOptions } from '../support/fake-runtime.ts'
import { testResolver } from '../support/resolver.ts'
import { startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'

export const BIN = fileURLToPath(new URL('../../bin/staticpodctl.mjs', import.meta.url))
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

interface RunOptions {
  /** Default: the admin token, in STATICPOD_TOKEN. null: no token at all. */
  token?: string | null
  env?: Record<string, string | undefined>
  /** Written to the CLI's stdin (default: nothing, stdin closed). */
  input?: string
  timeoutMs?: number
}

export interface CliBed {
  app: FastifyInstance
  url: string
  dir: string
  /** HOME of the CLI's runs (its config file is under it). */
  home: string
  localNode: string
  localManifests: string
  fleet: SshdFleet
  ssh: SshdNode[]
  runtime: FakeRuntime
  /** GraphQL over HTTP, as any client sends it (admin token unless told otherwise). */
  gql<T = Record<string, any>>(query: string, variables?: Record<string, unknown>, token?: string): Promise<GqlResponse<T>>
  /** Runs staticpodctl with these arguments, with no terminal. */
  run(args: string[], options?: RunOptions): Promise<CliResult>
  /** Starts staticpodctl and hands back the child (for --watch): stop it with child.kill(). */
  spawn(args: string[], options?: RunOptions): ChildProcessWithoutNullStreams
  /** Runs a shell command line inside a pseudo-terminal (`script -qec`); output is the terminal's. */
  runTty(commandLine: string, options?: RunOptions): Promise<{ code: number | null; output: string }>
  /** Registers an SSH node whose port nobody listens on (NODE_UNREACHABLE); returns its name. */
  addDeadNode(name: string): Promise<string>
  /** The environment a run gets (server, token, HOME, NODE_ENV=test). */
  env(options?: RunOptions): NodeJS.ProcessEnv
  close(): Promise<void>
}

export interface BedOptions {
  prefix: string
  runtime?: FakeRuntimeOptions
  env?: Record<string, string>
}

export async function startCliBed(options: BedOptions): Promise<CliBed> {
  const fleet = await startSshdFleet(2, { prefix: options.prefix, node: () => ({ crictl: { state: { sandboxes: [], containers: [] } } }) })
  const dir = await makeTempDir('staticpodctl-test-')
  const home = join(dir, 'home')
  await mkdir(home, { recursive: true })
  const localManifests = join(dir, 'manifests')
  const config = loadConfig({
    STORE_URL: `sqlite:${join(dir, 'staticpod-api.db')}`,
    LOCAL_NODE_PATH: localManifests,
    LOCAL_NODE_NAME: 'local',
    LOCAL_NODE_STATE_DIR: join(dir, 'state'),
    LOCAL_KUBELET_HEALTHZ_URL: 'http://127.0.0.1:9/healthz',
    ...fleet.env,
    SSH_STATE_DIR: join(dir, 'ssh-state'),
    SSH_KUBELET_HEALTHZ_PORT: '9',
    SSH_CONNECT_TIMEOUT_MS: '3000',
    CRICTL_TIMEOUT_MS: '60000',
    KUBELET_HEALTHZ_TIMEOUT_MS: '5000',
    LOCK_WAIT_MS: '5000',
    AUTH_TOKENS: TOKENS_DOCUMENT,
    // The CLI's runs are many requests from one address and token.
    RATE_LIMIT_PER_MINUTE: '100000',
    AUTH_FAILURES_PER_MINUTE: '1000',
    OBSERVE_INTERVAL_SECONDS: '0',
    ...options.env,
  })
  // CLI_TEST_LOG=1: the service's error log on stderr, for a test that fails on the service's side.
  const app = await buildApp(config, { logger: process.env.CLI_TEST_LOG === '1' ? { level: 'error' } : false, resolveHost: testResolver })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  const url = `http://127.0.0.1:${address.port}`

  const now = new Date().toISOString()
  for (const [i, node] of fleet.nodes.entries()) {
    const record: NodeRecord = {
      name: node.name,
      kind: 'ssh',
      ssh: { host: '127.0.0.1', port: node.port, user: fleet.user, privilege: 'NONE', sftpServer: null, via: null, hostKeyFingerprint: node.fingerprint, observedHostKeyFingerprint: null },
      staticPodPath: node.manifests,
      staticPodPathFrom: 'given',
      labels: [{ key: 'tier', value: 'edge' }, { key: 'zone', value: `z${i + 1}` }],
      createdAt: now,
      updatedAt: now,
    }
    await app.services.store.createNode(record)
  }
  const runtime = new FakeRuntime(
    fleet.nodes.map((n) => ({ name: n.name, staticPodPath: n.manifests, crictlStatePath: join(n.dir, 'crictl.json') })),
    // Pods named crashy* crash-loop and stuck* never get ready; the others run ready 0.3 s after they start.
    { readyAfterMs: 300, crashEveryMs: 1000, behaviour: (_node, pod) => (pod.startsWith('crashy') ? 'crash-loop' : pod.startsWith('stuck') ? 'never-ready' : 'ready'), ...options.runtime },
  )
  await runtime.sync()
  runtime.start(100)

  const envOf = (o: RunOptions = {}): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = {}
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('STATICPOD_') && k !== 'XDG_CONFIG_HOME' && k !== 'EDITOR' && k !== 'VISUAL') env[k] = v
    Object.assign(env, { HOME: home, NODE_ENV: 'test', STATICPOD_SERVER: url })
    const token = o.token === undefined ? TOKENS.admin : o.token
    if (token !== null) env.STATICPOD_TOKEN = token
    for (const [k, v] of Object.entries(o.env ?? {})) {
      if (v === undefined) delete env[k]
      else env[k] = v
    }
    return env
  }

  const bed: CliBed = {
    app,
    url,
    dir,
    home,
    localNode: 'local',
    localManifests,
    fleet,
    ssh: fleet.nodes,
    runtime,
    async gql(query, variables, token = TOKENS.admin) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      })
      return { status: res.status, ...((await res.json()) as { data: any }) }
    },
    run(args, o = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: envOf(o), stdio: ['pipe', 'pipe', 'pipe'] })
        let stdout = ''
        let stderr = ''
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
        const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000)
        child.once('error', reject)
        child.once('close', (code) => {
          clearTimeout(timer)
          resolve({ code, stdout, stderr })
        })
        child.stdin.end(o.input ?? '')
      })
    },
    spawn(args, o = {}) {
      const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: envOf(o), stdio: ['pipe', 'pipe', 'pipe'] })
      child.stdout.setEncoding('utf8')
      child.stderr.setEncoding('utf8')
      return child
    },
    runTty(commandLine, o = {}) {
      return new Promise((resolve, reject) => {
        // script(1) gives the command a pseudo-terminal and copies what it shows to our pipe.
        const child = spawn(onPath(TERMINAL_MAKER), ['-qec', commandLine, '/dev/null'], { cwd: ROOT, env: { ...envOf(o), TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] })
        let output = ''
        child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d))
        child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d))
        const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000)
        child.once('error', reject)
        child.once('close', (code) => {
          clearTimeout(timer)
          resolve({ code, output })
        })
        if (o.input !== undefined) child.stdin.write(o.input)
      })
    },
    async addDeadNode(name) {
      // A port that was free a moment ago: connection refused, at once.
      const probe = createServer()
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
      const port = (probe.address() as AddressInfo).port
      await new Promise((resolve) => probe.close(resolve))
      const first = fleet.nodes[0] as SshdNode
      const at = new Date().toISOString()
      await app.services.store.createNode({
        name,
        kind: 'ssh',
        ssh: { host: '127.0.0.1', port, user: fleet.user, privilege: 'NONE', sftpServer: null, via: null, hostKeyFingerprint: first.fingerprint, observedHostKeyFingerprint: null },
        staticPodPath: '/nonexistent/manifests',
        staticPodPathFrom: 'given',
        labels: [],
        createdAt: at,
        updatedAt: at,
      })
      return name
    },
    env: envOf,
    async close() {
      await runtime.stop()
      await app.close()
      await fleet.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
  return bed
}

/** util-linux script(1): runs a command in a new pseudo-terminal. */
const TERMINAL_MAKER = 'script'

function onPath(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const path = join(dir || '.', name)
    if (existsSync(path)) return path
  }
  throw new Error(`the staticpodctl terminal tests need ${name} (util-linux) on the PATH`)
}

/** A shell-quoted command line running staticpodctl with these arguments (for runTty). */
export function cliLine(args: string[]): string {
  return [process.execPath, BIN, ...args].map(shellQuote).join(' ')
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}

/** Writes an executable script (e.g. an EDITOR) and returns its path. */
export async function script(path: string, body: string): Promise<string> {
  await writeFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 })
  return path
}

/** A pod manifest of one container named as the pod. */
export const pod = (name: string, image = 'nginx:1.27'): string => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  containers:
  - name: ${name}
    image: ${image}
`

/** The web pod of every SSH node: a label to select by, and a container with a command whose flag to change. */
export const webPod = (image = 'nginx:1.27'): string => `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: web
    image: ${image}
    command:
    - nginx
    - --v=1
`

/** The run succeeded: exit 0 (else its output, to see why). */
export function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}; stderr: ${r.stderr}; stdout: ${r.stdout}`)
  return r
}

/** The run exited with code and printed the service's errorCode on stderr, as severity (a pattern: error, or error|warning). */
export function fails(r: CliResult, code: number, errorCode: string, severity = 'error'): CliResult {
  assert.equal(r.code, code, `expected exit ${code}, got ${r.code}; stderr: ${r.stderr}; stdout: ${r.stdout}`)
  assert.match(r.stderr, new RegExp(`^(${severity}): ${errorCode}: \\S`, 'm'), r.stderr)
  return r
}

/** probe's first truthy answer, asked every 200 ms until timeoutMs. */
export async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(200)
  }
}
