// The local agent: directories, the kubelet's healthz over real HTTP (the
// misbehaving kubelets are real servers too), and the runtime through crictl. No container runtime can run here, so crictl is
// test/support/fake-crictl.mjs, a stand-in that prints JSON shaped like the
// real crictl's; the agent runs it exactly as it would run crictl.
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createLocalAgent, kubeletHealthAt } from '../../src/agents/local.ts'
import { LOCAL_AGENT_DEFAULTS } from '../support/agent-defaults.ts'
import { startMisbehavingKubelets, type MisbehavingKubelets } from '../support/misbehaving-kubelets.ts'
import { makeTestCa } from '../support/tls-certs.ts'
import { controlPlaneFixture } from '../support/crictl-fixture.ts'

const fakeCrictl = fileURLToPath(new URL('../support/fake-crictl.mjs', import.meta.url))
const TIMEOUT_MS = LOCAL_AGENT_DEFAULTS.kubeletTimeoutMs

let misbehaving: MisbehavingKubelets
before(async () => {
  misbehaving = await startMisbehavingKubelets()
})
after(() => misbehaving.stop())

async function tempRoot(t: TestContext): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'staticpod-local-'))
  t.after(() => rm(root, { recursive: true, force: true }))
  return root
}

async function listen(t: TestContext, handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server: Server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`
}

test('createLocalAgent creates staticPodPath and stateDir when they are missing', async (t) => {
  const root = await tempRoot(t)
  const agent = await createLocalAgent({ ...LOCAL_AGENT_DEFAULTS, nodeName: 'n1', staticPodPath: join(root, 'etc/manifests'), stateDir: join(root, 'var/state') })
  assert.ok((await stat(join(root, 'etc/manifests'))).isDirectory())
  assert.ok((await stat(join(root, 'var/state'))).isDirectory())
  await agent.writeManifest('web.yaml', Buffer.from('x'))
  const { mtimeMs } = await stat(join(root, 'etc/manifests/web.yaml'))
  assert.deepEqual(await agent.listManifestDir(), [{ name: 'web.yaml', kind: 'file', size: 1, bytes: Buffer.from('x'), modifiedAt: new Date(mtimeMs).toISOString() }])
  await agent.close()
})

test('kubelet healthz: 200 ok is healthy', async (t) => {
  const url = await listen(t, (_req, res) => res.end('ok'))
  const report = await kubeletHealthAt(url, TIMEOUT_MS, () => new Date('2024-06-10T07:00:00Z'))
  assert.deepEqual(report, { available: true, status: { healthy: true, checkedAt: '2024-06-10T07:00:00.000Z', message: null } })
})

test('kubelet healthz: any other status is unhealthy, with the body as the message', async (t) => {
  const body = '[+]ping ok\n[-]syncloop failed: reason withheld\nhealthz check failed\n'
  const url = await listen(t, (_req, res) => {
    res.statusCode = 500
    res.end(body)
  })
  const report = await kubeletHealthAt(url, TIMEOUT_MS)
  assert.equal(report.available, true)
  assert.equal(report.available && report.status.healthy, false)
  assert.equal(report.available && report.status.message, body.trim())
})

test('kubelet healthz: nothing listening is "no kubelet answers", not a failure', async (t) => {
  const url = await listen(t, (_req, res) => res.end('ok'))
  // Take a port that was free a moment ago and is closed now.
  const closedUrl = url.replace(/:\d+\//, `:${await closedPort()}/`)
  assert.deepEqual(await kubeletHealthAt(closedUrl, TIMEOUT_MS), {
    available: false,
    reason: `no kubelet answers on ${closedUrl} (connection refused)`,
  })
})

// The same words as over SSH (test/agents/ssh-agent.test.ts): one reading of the answer for both agents.
test('kubelet healthz: an answer that is not HTTP, and a connection closed without one, are said so', async () => {
  const notHttp = `http://127.0.0.1:${misbehaving.notHttpPort}/healthz`
  assert.deepEqual(await kubeletHealthAt(notHttp, TIMEOUT_MS), { available: false, reason: `no kubelet answers on ${notHttp} (the answer is not HTTP)` })
  const hangsUp = `http://127.0.0.1:${misbehaving.hangsUpPort}/healthz`
  assert.deepEqual(await kubeletHealthAt(hangsUp, TIMEOUT_MS), { available: false, reason: `no kubelet answers on ${hangsUp} (the connection closed without an answer)` })
})

test('kubelet healthz: an endless body is read only as far as the message needs, and answered at once', async () => {
  const url = `http://127.0.0.1:${misbehaving.endlessBodyPort}/healthz`
  const started = performance.now()
  const report = await kubeletHealthAt(url, 10_000)
  assert.ok(performance.now() - started < 5_000, 'not waited for the end of the body')
  assert.equal(report.available && report.status.healthy, true)
  assert.equal(report.available && report.status.message, `${'x'.repeat(1_000)}…`)
})

test('kubelet healthz over https:// verifies the server: a certificate of an unknown CA is no answer', async (t) => {
  const pki = await makeTestCa()
  const server = createHttpsServer({ key: pki.key, cert: pki.cert }, (_req, res) => res.end('ok'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => server.close(resolve)))
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`
  assert.deepEqual(await kubeletHealthAt(url, TIMEOUT_MS), { available: false, reason: `no kubelet answers on ${url} (UNABLE_TO_VERIFY_LEAF_SIGNATURE)` })
})

async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

test('kubelet healthz: a kubelet that does not answer within the timeout', async (t) => {
  const url = await listen(t, () => {
    // Accept the request and never answer.
  })
  const started = performance.now()
  const report = await kubeletHealthAt(url, 300)
  assert.deepEqual(report, { available: false, reason: `no kubelet answers on ${url} (no answer within 0.3 s)` })
  assert.ok(performance.now() - started < 3_000)
})

test('the local agent asks the kubelet at its healthz URL', async (t) => {
  const root = await tempRoot(t)
  const url = await listen(t, (_req, res) => res.end('ok'))
  const agent = await createLocalAgent({ ...LOCAL_AGENT_DEFAULTS, nodeName: 'n1', staticPodPath: join(root, 'm'), stateDir: join(root, 's'), kubeletHealthzUrl: url })
  const report = await agent.kubeletHealth()
  assert.equal(report.available && report.status.healthy, true)
})

/**
 * A bin directory with a `crictl` that runs the stand-in on the given state.
 * The wrapper passes the stand-in its inputs, so the test changes nothing in
 * this process's environment.
 */
async function crictlStandIn(t: TestContext, state: object): Promise<{ root: string; bin: string; log: string }> {
  const root = await tempRoot(t)
  const statePath = join(root, 'crictl-state.json')
  const log = join(root, 'crictl.log')
  await writeFile(statePath, JSON.stringify(state))
  const bin = join(root, 'bin')
  await mkdir(bin)
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`
  await writeFile(
    join(bin, 'crictl'),
    `#!/bin/sh\nFAKE_CRICTL_STATE=${quote(statePath)} FAKE_CRICTL_LOG=${quote(log)} exec ${quote(process.execPath)} ${quote(fakeCrictl)} "$@"\n`,
    { mode: 0o755 },
  )
  return { root, bin, log }
}

test('runtime: crictl found on PATH is run with fixed arguments, and its output parsed', async (t) => {
  const { root, bin, log } = await crictlStandIn(t, controlPlaneFixture())
  const agent = await createLocalAgent({
    ...LOCAL_AGENT_DEFAULTS,
    nodeName: 'CP-1',
    staticPodPath: join(root, 'm'),
    stateDir: join(root, 's'),
    searchPath: ['relative/bin', '/nonexistent', bin].join(':'),
    clock: () => new Date('2024-06-10T07:00:00Z'),
  })
  const report = await agent.runtimeStatus()
  assert.equal(report.available, true, JSON.stringify(report))
  assert.deepEqual(report.available && report.pods.map((p) => `${p.namespace}/${p.name} ${p.state} ${p.containers.map((c) => c.state)}`), [
    'kube-system/etcd READY RUNNING',
    'kube-system/kube-apiserver READY RUNNING',
    'kube-system/kube-scheduler READY CREATED',
  ])
  const calls = (await readFile(log, 'utf8')).trim().split('\n').map((line) => JSON.parse(line)).sort()
  // kube-apiserver restarted once: one inspect, of its current attempt and the one before (test/agents/diagnostics.test.ts).
  assert.deepEqual(calls, [['inspect', '-q', '-o', 'json', '8b'.repeat(32), '9c'.repeat(32)], ['pods', '-o', 'json'], ['ps', '-a', '-o', 'json']])
})

test('runtime: no crictl on this machine', async (t) => {
  const root = await tempRoot(t)
  const agent = await createLocalAgent({ ...LOCAL_AGENT_DEFAULTS, nodeName: 'n1', staticPodPath: join(root, 'm'), stateDir: join(root, 's'), searchPath: join(root, 'empty') })
  assert.deepEqual(await agent.runtimeStatus(), { available: false, reason: 'crictl not found on this machine' })
})

test('runtime: crictl failing, or too slow, is a reason, not an exception', async (t) => {
  const failing = await crictlStandIn(t, {
    exitCode: 1,
    stderr: 'time="2024-06-10T07:00:00Z" level=fatal msg="validate service connection: dial unix /run/containerd/containerd.sock: connect: no such file or directory"\n',
  })
  const agent = await createLocalAgent({
    ...LOCAL_AGENT_DEFAULTS,
    nodeName: 'n1',
    staticPodPath: join(failing.root, 'm'),
    stateDir: join(failing.root, 's'),
    crictlPath: join(failing.bin, 'crictl'),
  })
  const report = await agent.runtimeStatus()
  assert.equal(report.available, false)
  assert.match(report.available ? '' : report.reason, /^crictl (pods -o json|ps -a -o json) failed: .*containerd\.sock: connect: no such file/)

  const slow = await crictlStandIn(t, { delayMs: 5_000 })
  const slowAgent = await createLocalAgent({
    ...LOCAL_AGENT_DEFAULTS,
    nodeName: 'n1',
    staticPodPath: join(slow.root, 'm'),
    stateDir: join(slow.root, 's'),
    crictlPath: join(slow.bin, 'crictl'),
    crictlTimeoutMs: 500,
  })
  const slowReport = await slowAgent.runtimeStatus()
  assert.match(slowReport.available ? '' : slowReport.reason, /did not finish within 500 ms/)
})
