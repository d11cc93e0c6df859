// The node-side evidence of a diagnosis, on the local agent: container detail
// from crictl inspect (exit codes, reasons, times, how the attempt before
// ended), container logs (crictl logs, or the kubelet's files where crictl is
// missing or cannot answer), the kubelet's journal, and bounded file reads.
// crictl and journalctl are the stand-ins (test/support/fake-crictl.mjs,
// fake-journalctl.mjs), run by wrapper scripts in a bin directory of the
// test's own; the kubelet's log directory is one of the test's own too
// (podLogDir), never /var/log. The SSH and SUDO paths: diagnostics-ssh.test.ts.
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { NodeFileRefusedError, type ContainerLogRequest } from '../../src/agents/agent.ts'
import { CRICTL_INSPECT_MAX_IDS, crictlInspectArgs, readCrictl } from '../../src/agents/crictl.ts'
import { createLocalAgent } from '../../src/agents/local.ts'
import { isServiceError } from '../../src/errors.ts'
import { LOCAL_AGENT_DEFAULTS } from '../support/agent-defaults.ts'
import { container, criLogRecord, sandbox, type CrictlContainer, type CrictlSandbox } from '../support/crictl-fixture.ts'
import { FakeRuntime } from '../support/fake-runtime.ts'

const fakeCrictl = fileURLToPath(new URL('../support/fake-crictl.mjs', import.meta.url))
const fakeJournalctl = fileURLToPath(new URL('../support/fake-journalctl.mjs', import.meta.url))
const run = promisify(execFile)
const now = new Date('2024-06-10T07:00:00.000Z')
const print = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

async function tempRoot(t: TestContext): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'staticpod-diagnostics-'))
  t.after(() => rm(root, { recursive: true, force: true }))
  return root
}

/** A bin directory with the stand-ins: crictl (on statePath, when given) and journalctl (on journalPath, when given), each logging its argv. */
async function standIns(root: string, opts: { crictlState?: string; journal?: string }): Promise<{ bin: string; crictlLog: string; journalLog: string }> {
  const bin = join(root, 'bin')
  await mkdir(bin, { recursive: true })
  const crictlLog = join(root, 'crictl.log')
  const journalLog = join(root, 'journalctl.log')
  if (opts.crictlState) {
    await writeFile(join(bin, 'crictl'), `#!/bin/sh\nFAKE_CRICTL_STATE=${quote(opts.crictlState)} FAKE_CRICTL_LOG=${quote(crictlLog)} exec ${quote(process.execPath)} ${quote(fakeCrictl)} "$@"\n`, { mode: 0o755 })
  }
  if (opts.journal) {
    await writeFile(join(bin, 'journalctl'), `#!/bin/sh\nFAKE_JOURNALCTL_ENTRIES=${quote(opts.journal)} FAKE_JOURNALCTL_LOG=${quote(journalLog)} exec ${quote(process.execPath)} ${quote(fakeJournalctl)} "$@"\n`, { mode: 0o755 })
  }
  return { bin, crictlLog, journalLog }
}

async function calls(log: string): Promise<string[][]> {
  const text = await readFile(log, 'utf8').catch(() => '')
  return text.trim() === '' ? [] : text.trim().split('\n').map((line) => JSON.parse(line) as string[])
}

async function localAgent(root: string, opts: { bin: string; nodeName?: string; podLogDir?: string; clock?: () => Date }) {
  return createLocalAgent({
    ...LOCAL_AGENT_DEFAULTS,
    nodeName: opts.nodeName ?? 'CP-1',
    staticPodPath: join(root, 'manifests'),
    stateDir: join(root, 'state'),
    searchPath: opts.bin,
    podLogDir: opts.podLogDir ?? join(root, 'pods'),
    clock: opts.clock,
  })
}

// ---- a crash-looping control plane, as crictl shows it ---------------------------------

/**
 * kube-apiserver exits 1 again and again (attempts 2 and 3 listed; 0 and 1
 * removed by the kubelet), etcd was OOM-killed once and runs attempt 1, the
 * scheduler is only created, the controller-manager runs its first attempt.
 */
function crashLoopFixture(): { sandboxes: CrictlSandbox[]; containers: CrictlContainer[] } {
  const apiserver = sandbox({ podName: 'kube-apiserver-cp-1', namespace: 'kube-system', id: '2b', state: 'SANDBOX_READY', createdAt: '2024-06-10T06:00:00Z' })
  const etcd = sandbox({ podName: 'etcd-cp-1', namespace: 'kube-system', id: '3c', state: 'SANDBOX_READY', createdAt: '2024-06-10T05:00:00Z' })
  const scheduler = sandbox({ podName: 'kube-scheduler-cp-1', namespace: 'kube-system', id: '4d', state: 'SANDBOX_READY', createdAt: '2024-06-10T05:00:01Z' })
  const manager = sandbox({ podName: 'kube-controller-manager-cp-1', namespace: 'kube-system', id: '5e', state: 'SANDBOX_READY', createdAt: '2024-06-10T05:00:02Z' })
  const certError = 'E0610 06:55:00.000001       1 run.go:74] "command failed" err="unable to load server certificate: x509: certificate has expired or is not yet valid"'
  const image = 'registry.k8s.io/kube-apiserver:v1.30.2'
  return {
    sandboxes: [apiserver, etcd, scheduler, manager],
    containers: [
      container({
        name: 'kube-apiserver', sandbox: apiserver, id: 'a2', state: 'CONTAINER_EXITED', createdAt: '2024-06-10T06:50:00Z', attempt: 2, image,
        detail: {
          exitCode: 1, reason: 'Error', startedAt: '2024-06-10T06:50:00.5Z', finishedAt: '2024-06-10T06:50:01.25Z',
          log: [criLogRecord('2024-06-10T06:50:00.600000000Z', 'stderr', 'I0610 06:50:00.600000 attempt two starting'), criLogRecord('2024-06-10T06:50:01.200000000Z', 'stderr', certError.replace('06:55', '06:50'))],
        },
      }),
      container({
        name: 'kube-apiserver', sandbox: apiserver, id: 'a3', state: 'CONTAINER_EXITED', createdAt: '2024-06-10T06:55:00Z', attempt: 3, image,
        detail: {
          exitCode: 1, reason: 'Error', message: '', startedAt: '2024-06-10T06:55:00.1Z', finishedAt: '2024-06-10T06:55:00.9Z',
          log: [
            criLogRecord('2024-06-10T06:55:00.100000000Z', 'stdout', 'I0610 06:55:00.100000       1 options.go:221] external host was not specified'),
            criLogRecord('2024-06-10T06:55:00.200000000Z', 'stderr', 'W0610 06:55:00.200000       1 a long warning,', 'P'),
            criLogRecord('2024-06-10T06:55:00.200000001Z', 'stderr', ' continued'),
            criLogRecord('2024-06-10T06:55:00.900000000Z', 'stderr', certError),
          ],
        },
      }),
      container({ name: 'etcd', sandbox: etcd, id: 'e0', state: 'CONTAINER_EXITED', createdAt: '2024-06-10T05:00:05Z', image: 'registry.k8s.io/etcd:3.5.12-0', detail: { exitCode: 137, reason: 'OOMKilled', message: 'memory limit', finishedAt: '2024-06-10T05:30:00Z' } }),
      container({ name: 'etcd', sandbox: etcd, id: 'e1', state: 'CONTAINER_RUNNING', createdAt: '2024-06-10T05:30:01Z', attempt: 1, image: 'registry.k8s.io/etcd:3.5.12-0', detail: { startedAt: '2024-06-10T05:30:01.5Z' } }),
      container({ name: 'kube-scheduler', sandbox: scheduler, id: 'b0', state: 'CONTAINER_CREATED', createdAt: '2024-06-10T05:00:06Z', image: 'registry.k8s.io/kube-scheduler:v1.30.2' }),
      container({ name: 'kube-controller-manager', sandbox: manager, id: 'c0', state: 'CONTAINER_RUNNING', createdAt: '2024-06-10T05:00:07Z', image: 'registry.k8s.io/kube-controller-manager:v1.30.2' }),
    ],
  }
}

const id = (seed: string): string => seed.repeat(32)

async function inspectOutput(state: object, ids: string[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'staticpod-inspect-'))
  try {
    await writeFile(join(root, 'state.json'), JSON.stringify(state))
    const { stdout } = await run(process.execPath, [fakeCrictl, ...crictlInspectArgs(ids)], { env: { ...process.env, FAKE_CRICTL_STATE: join(root, 'state.json') } })
    return stdout
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

describe('container detail: crictl inspect for the containers that are not running or restarted', () => {
  it('which containers: current attempts not running, the attempts before restarted ones, restarted running ones; none when all run a first attempt', () => {
    const { sandboxes, containers } = crashLoopFixture()
    const reading = readCrictl(print({ items: sandboxes }), print({ containers }), 'CP-1', now)
    // Not running: apiserver attempt 3; before restarted ones (pods in name order): etcd 0, apiserver 2; restarted and running: etcd 1.
    assert.deepEqual(reading.inspectIds, [id('a3'), id('e0'), id('a2'), id('e1')])
    const running = containers.filter((c) => c.id === id('c0'))
    assert.deepEqual(readCrictl(print({ items: sandboxes }), print({ containers: running }), 'CP-1', now).inspectIds, [])
    // Bounded: one call names at most CRICTL_INSPECT_MAX_IDS.
    const many = Array.from({ length: 100 }, (_, i) =>
      container({ name: `c${i}`, sandbox: sandboxes[0] as CrictlSandbox, id: i.toString(16).padStart(2, '0'), state: 'CONTAINER_EXITED', createdAt: '2024-06-10T06:00:00Z', image: 'x' }),
    )
    assert.equal(readCrictl(print({ items: sandboxes }), print({ containers: many }), 'CP-1', now).inspectIds.length, CRICTL_INSPECT_MAX_IDS)
  })

  it('exit code, reason, message, times and lastTermination, from crictl inspect as crictl >= 1.31 prints it (an array) and as older crictl did (one document per id)', async () => {
    const state = crashLoopFixture()
    const reading = readCrictl(print({ items: state.sandboxes }), print({ containers: state.containers }), 'CP-1', now)
    const expected = {
      apiserver: {
        name: 'kube-apiserver', image: 'registry.k8s.io/kube-apiserver:v1.30.2', state: 'TERMINATED', ready: null, restartCount: 3, containerId: id('a3'), attempt: 3,
        exitCode: 1, reason: 'Error', message: null, startedAt: '2024-06-10T06:55:00.100Z', finishedAt: '2024-06-10T06:55:00.900Z',
        lastTermination: { exitCode: 1, reason: 'Error', finishedAt: '2024-06-10T06:50:01.250Z' },
      },
      etcd: {
        name: 'etcd', image: 'registry.k8s.io/etcd:3.5.12-0', state: 'RUNNING', ready: null, restartCount: 1, containerId: id('e1'), attempt: 1,
        exitCode: null, reason: null, message: null, startedAt: '2024-06-10T05:30:01.500Z', finishedAt: null,
        lastTermination: { exitCode: 137, reason: 'OOMKilled', finishedAt: '2024-06-10T05:30:00.000Z' },
      },
    }
    for (const legacyInspect of [false, true]) {
      const output = await inspectOutput({ ...state, legacyInspect }, reading.inspectIds)
      assert.equal(output.trimStart().startsWith('['), !legacyInspect)
      const pods = reading.withInspect(output)
      assert.deepEqual(pods.map((p) => p.name), ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'])
      assert.deepEqual(pods[1]?.containers, [expected.apiserver], `legacyInspect ${legacyInspect}`)
      assert.deepEqual(pods[0]?.containers, [expected.etcd])
      // Running its first attempt, or only created: nothing was asked, nothing to tell.
      assert.deepEqual(pods[2]?.containers.map((c) => [c.state, c.exitCode, c.startedAt, c.lastTermination]), [['RUNNING', null, null, null]])
      assert.deepEqual(pods[3]?.containers.map((c) => [c.state, c.exitCode, c.startedAt, c.lastTermination]), [['CREATED', null, null, null]])
    }
    // One id: one object, not an array (crictl's "old behavior" kept for single entries).
    const single = await inspectOutput(state, [id('a3')])
    assert.ok(single.startsWith('{\n  "status": {\n    "id": '), single.slice(0, 40))
    assert.deepEqual(reading.withInspect(single)[1]?.containers[0]?.lastTermination, { exitCode: null, reason: null, finishedAt: null }, 'attempt 2 listed, not inspected')
  })

  it("times in the node's zone and Go's zero time; output that is not inspect's JSON is an error saying so", () => {
    const state = crashLoopFixture()
    const reading = readCrictl(print({ items: state.sandboxes }), print({ containers: state.containers }), 'CP-1', now)
    const documents = [
      { status: { id: id('e1'), state: 'CONTAINER_RUNNING', startedAt: '2024-06-10T07:30:01.123456789+02:00', finishedAt: '0001-01-01T00:00:00Z', exitCode: 0, reason: '', message: '' } },
      // Older crictl printed int64 nanoseconds.
      { status: { id: id('e0'), state: 'CONTAINER_EXITED', startedAt: '1718000000000000000', finishedAt: '1718001800000000000', exitCode: 137, reason: 'OOMKilled' } },
    ]
    const [etcd] = reading.withInspect(documents.map((d) => print(d)).join(''))
    assert.deepEqual(etcd?.containers.map((c) => [c.startedAt, c.finishedAt, c.exitCode, c.reason, c.lastTermination]), [
      ['2024-06-10T05:30:01.123Z', null, null, null, { exitCode: 137, reason: 'OOMKilled', finishedAt: '2024-06-10T06:43:20.000Z' }],
    ])
    assert.throws(() => reading.withInspect('time="x" level=fatal msg="nope"'), /crictl inspect did not print JSON/)
    assert.throws(() => reading.withInspect('{"status": {"id": 7}}'), /crictl inspect printed JSON of an unexpected shape at status\.id/)
    assert.throws(() => crictlInspectArgs(['not-hex; rm -rf /']), /not one/)
  })

  it('a runtime read: one inspect call when containers crash or restarted; none when every container runs its first attempt', async (t) => {
    const root = await tempRoot(t)
    const statePath = join(root, 'crictl.json')
    await writeFile(statePath, JSON.stringify(crashLoopFixture()))
    const { bin, crictlLog } = await standIns(root, { crictlState: statePath })
    const agent = await localAgent(root, { bin, clock: () => now })
    const report = await agent.runtimeStatus()
    assert.equal(report.available, true, JSON.stringify(report))
    const apiserver = report.available ? report.pods.find((p) => p.name === 'kube-apiserver')?.containers[0] : undefined
    assert.deepEqual([apiserver?.exitCode, apiserver?.reason, apiserver?.restartCount, apiserver?.lastTermination?.exitCode], [1, 'Error', 3, 1])
    assert.deepEqual((await calls(crictlLog)).map((argv) => argv.slice(0, 4).join(' ')).sort(), ['inspect -q -o json', 'pods -o json', 'ps -a -o json'])

    const healthy = crashLoopFixture()
    healthy.containers = healthy.containers.filter((c) => c.state === 'CONTAINER_RUNNING' && c.metadata.attempt === 0)
    await writeFile(statePath, JSON.stringify(healthy))
    await rm(crictlLog)
    assert.equal((await agent.runtimeStatus()).available, true)
    assert.deepEqual((await calls(crictlLog)).sort(), [['pods', '-o', 'json'], ['ps', '-a', '-o', 'json']], 'no inspect: the cost of a healthy node is unchanged')

    // inspect failing (a container removed in between, say) leaves the state as listed.
    await writeFile(statePath, JSON.stringify({ ...crashLoopFixture(), failures: { inspect: { exitCode: 1, stderr: 'time="2024-06-10T07:00:00Z" level=fatal msg="not found"\n' } } }))
    const without = await agent.runtimeStatus()
    assert.equal(without.available, true)
    assert.deepEqual(without.available && without.pods.find((p) => p.name === 'kube-apiserver')?.containers.map((c) => [c.state, c.exitCode, c.attempt]), [['TERMINATED', null, 3]])
  })
})

// ---- logs ---------------------------------------------------------------------

const apiserverLog = (overrides: Partial<ContainerLogRequest> = {}): ContainerLogRequest => ({
  namespace: 'kube-system',
  pod: 'kube-apiserver',
  container: 'kube-apiserver',
  previous: false,
  tailLines: 200,
  sinceSeconds: null,
  limitBytes: 1 << 20,
  ...overrides,
})

describe('container logs', () => {
  it('through crictl logs: the current attempt or the one before, oldest first with timestamps, stdout and stderr in order; tail, since and bytes bounded', async (t) => {
    const root = await tempRoot(t)
    const statePath = join(root, 'crictl.json')
    await writeFile(statePath, JSON.stringify(crashLoopFixture()))
    const { bin, crictlLog } = await standIns(root, { crictlState: statePath })
    const agent = await localAgent(root, { bin })

    const current = await agent.containerLog(apiserverLog())
    assert.deepEqual(current, {
      lines: [
        '2024-06-10T06:55:00.100000000Z I0610 06:55:00.100000       1 options.go:221] external host was not specified',
        '2024-06-10T06:55:00.200000000Z W0610 06:55:00.200000       1 a long warning, continued',
        '2024-06-10T06:55:00.900000000Z E0610 06:55:00.000001       1 run.go:74] "command failed" err="unable to load server certificate: x509: certificate has expired or is not yet valid"',
      ],
      truncated: false,
      source: 'crictl',
      attempt: 3,
      containerId: id('a3'),
    })
    const logsCall = (await calls(crictlLog)).find((argv) => argv[0] === 'logs')
    assert.deepEqual(logsCall, ['logs', '--timestamps', '--tail', '201', id('a3')], 'fixed argv: one line more than asked, to know whether there were more')

    const previous = await agent.containerLog(apiserverLog({ previous: true }))
    assert.deepEqual([previous?.attempt, previous?.containerId, previous?.lines.length, previous?.lines[1]?.slice(0, 41)], [2, id('a2'), 2, '2024-06-10T06:50:01.200000000Z E0610 06:5'])

    assert.deepEqual(await agent.containerLog(apiserverLog({ tailLines: 1 })).then((r) => [r?.lines.length, r?.truncated]), [1, true])
    assert.deepEqual(await agent.containerLog(apiserverLog({ tailLines: 3 })).then((r) => [r?.lines.length, r?.truncated]), [3, false])
    assert.deepEqual(await agent.containerLog(apiserverLog({ tailLines: 0 })).then((r) => [r?.lines, r?.truncated]), [[], true])
    const newest = await agent.containerLog(apiserverLog({ limitBytes: 200 }))
    assert.deepEqual([newest?.lines.length, newest?.truncated, newest?.lines[0]?.includes('certificate has expired')], [1, true, true], 'the newest lines are the ones kept')
    // since: crictl --since <N>s, back from the node's clock; these lines are from 2024.
    assert.deepEqual(await agent.containerLog(apiserverLog({ sinceSeconds: 600 })).then((r) => r?.lines), [])
    assert.equal((await calls(crictlLog)).find((argv) => argv.includes('--since'))?.join(' '), `logs --timestamps --tail 201 --since 600s ${id('a3')}`)

    // No such attempt, no such container: null.
    assert.equal(await agent.containerLog({ ...apiserverLog(), pod: 'kube-controller-manager', container: 'kube-controller-manager', previous: true }), null)
    assert.equal(await agent.containerLog(apiserverLog({ container: 'sidecar' })), null)
    assert.equal(await agent.containerLog(apiserverLog({ namespace: 'default' })), null)
  })

  it('arguments are checked before anything runs: VALIDATION_FAILED naming the field', async (t) => {
    const root = await tempRoot(t)
    const { bin, crictlLog } = await standIns(root, { crictlState: join(root, 'none.json') })
    const agent = await localAgent(root, { bin })
    const bad: Array<[Partial<ContainerLogRequest>, string]> = [
      [{ pod: '../../etc' }, 'pod'],
      [{ namespace: 'kube_system' }, 'namespace'],
      [{ container: 'a/b' }, 'container'],
      [{ container: 'x\0' }, 'container'],
      [{ tailLines: -1 }, 'tailLines'],
      [{ tailLines: 1.5 }, 'tailLines'],
      [{ sinceSeconds: 0 }, 'sinceSeconds'],
      [{ limitBytes: 0 }, 'limitBytes'],
      [{ limitBytes: 64 * 1024 * 1024 }, 'limitBytes'],
    ]
    for (const [fields, field] of bad) {
      await assert.rejects(agent.containerLog(apiserverLog(fields)), (err) => isServiceError(err) && err.code === 'VALIDATION_FAILED' && err.field?.[0] === field, JSON.stringify(fields))
    }
    assert.deepEqual(await calls(crictlLog), [])
  })

  it("without crictl, or with a runtime that cannot answer: the kubelet's file under podLogDir, read from its end; source names it", async (t) => {
    const root = await tempRoot(t)
    const podLogDir = join(root, 'pods')
    const staticPodPath = join(root, 'manifests')
    await mkdir(staticPodPath, { recursive: true })
    await writeFile(join(staticPodPath, 'kube-apiserver.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\nspec:\n  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.30.2\n')
    // The runtime stand-in writes crictl's document and the kubelet's files, as a crash loop leaves them.
    const statePath = join(root, 'crictl.json')
    const runtime = new FakeRuntime([{ name: 'CP-1', staticPodPath, crictlStatePath: statePath, podLogDir }], { behaviour: () => 'crash-loop', crashEveryMs: 100 })
    runtime.setLogs('CP-1', 'kube-apiserver', ['I0610 Starting kube-apiserver', 'E0610 run.go:74 "command failed" err="open /etc/kubernetes/pki/apiserver.crt: no such file or directory"'])
    await runtime.sync()
    await new Promise((resolve) => setTimeout(resolve, 250))
    await runtime.sync()

    const withCrictl = await localAgent(root, { bin: (await standIns(join(root, 'with'), { crictlState: statePath })).bin, podLogDir })
    const withoutCrictl = await localAgent(root, { bin: join(root, 'empty-bin'), podLogDir })
    const state = await withCrictl.runtimeStatus()
    const apiserver = state.available ? state.pods[0]?.containers[0] : undefined
    assert.deepEqual([apiserver?.state, apiserver?.exitCode, apiserver?.reason, apiserver?.lastTermination?.exitCode], ['TERMINATED', 1, 'Error', 1])
    const attempt = apiserver?.attempt as number
    assert.ok(attempt >= 2, `restarted: attempt ${attempt}`)

    for (const previous of [false, true]) {
      const viaCrictl = await withCrictl.containerLog(apiserverLog({ previous }))
      const viaFile = await withoutCrictl.containerLog(apiserverLog({ previous }))
      assert.equal(viaCrictl?.source, 'crictl')
      const [dir] = await readdir(podLogDir)
      assert.match(dir as string, /^kube-system_kube-apiserver-cp-1_[0-9a-f]{32}$/)
      assert.equal(viaFile?.source, join(podLogDir, dir as string, 'kube-apiserver', `${previous ? attempt - 1 : attempt}.log`))
      assert.deepEqual(viaFile?.lines, viaCrictl?.lines, 'the same lines, timestamps and all')
      assert.deepEqual([viaFile?.attempt, viaFile?.containerId, viaFile?.truncated], [previous ? attempt - 1 : attempt, null, false])
      assert.match(viaFile?.lines[1] ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z E0610 run\.go:74 "command failed"/)
    }
    // since, on this machine's clock for the files: the lines are a moment old.
    assert.equal((await withoutCrictl.containerLog(apiserverLog({ sinceSeconds: 60 })))?.lines.length, 2)
    const future = await localAgent(root, { bin: join(root, 'empty-bin'), podLogDir, clock: () => new Date(Date.now() + 3_600_000) })
    assert.deepEqual(await future.containerLog(apiserverLog({ sinceSeconds: 60 })).then((r) => [r?.lines, r?.truncated]), [[], false])

    // A runtime that cannot answer (containerd down): crictl fails, the files still tell.
    await writeFile(statePath, JSON.stringify({ exitCode: 1, stderr: 'time="2024-06-10T07:00:00Z" level=fatal msg="validate service connection: dial unix /run/containerd/containerd.sock: connect: connection refused"\n' }))
    const runtimeDown = await withCrictl.containerLog(apiserverLog())
    assert.equal(runtimeDown?.source.endsWith(`${attempt}.log`), true)
    assert.equal(await withoutCrictl.containerLog(apiserverLog({ container: 'other' })), null, 'no crictl, no file: no log')
    await assert.rejects(withCrictl.containerLog(apiserverLog({ container: 'other' })), /crictl pods -o json failed: .*connection refused.*, and .* has no log of kube-system\/kube-apiserver container other/)
  })

  it('a big file is read from its end only: the newest lines within limitBytes, tailLines, truncated', async (t) => {
    const root = await tempRoot(t)
    const podLogDir = join(root, 'pods')
    const dir = join(podLogDir, 'kube-system_kube-apiserver-cp-1_0123456789abcdef0123456789abcdef', 'kube-apiserver')
    await mkdir(dir, { recursive: true })
    // 20,000 lines of 200 bytes: 4 MB; an older attempt beside it, and one from a previous pod UID.
    const line = (i: number) => criLogRecord(new Date(Date.parse('2024-06-10T06:00:00Z') + i).toISOString().replace('Z', '000000Z').replace(/(\.\d{9})\d+Z$/, '$1Z'), i % 3 ? 'stdout' : 'stderr', `line ${String(i).padStart(5, '0')} ${'x'.repeat(150)}`)
    await writeFile(join(dir, '7.log'), Array.from({ length: 20_000 }, (_, i) => `${line(i)}\n`).join(''))
    await writeFile(join(dir, '6.log'), `${line(0)}\n`)
    const old = join(podLogDir, 'kube-system_kube-apiserver-cp-1_ffffffffffffffffffffffffffffffff', 'kube-apiserver')
    await mkdir(old, { recursive: true })
    await writeFile(join(old, '0.log'), `${line(0)}\n`)
    await utimes(join(old, '0.log'), new Date('2024-01-01'), new Date('2024-01-01'))
    const agent = await localAgent(root, { bin: join(root, 'empty-bin'), podLogDir })

    const tail = await agent.containerLog(apiserverLog({ tailLines: 3 }))
    assert.deepEqual(tail?.lines.map((l) => l.slice(31, 41)), ['line 19997', 'line 19998', 'line 19999'])
    assert.equal(tail?.truncated, true)
    const bytes = await agent.containerLog(apiserverLog({ tailLines: null, limitBytes: 10_000 }))
    assert.ok(bytes && bytes.lines.length > 40 && bytes.lines.length < 60, `${bytes?.lines.length} lines in 10,000 bytes`)
    assert.equal(bytes?.lines.at(-1)?.slice(31, 41), 'line 19999')
    assert.ok(bytes && bytes.lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0) <= 10_000)
    const previous = await agent.containerLog(apiserverLog({ previous: true }))
    assert.deepEqual([previous?.attempt, previous?.lines.length, previous?.truncated], [6, 1, false])
  })
})

// ---- the kubelet's journal -------------------------------------------------------------

describe("the kubelet's journal", () => {
  it('journalctl -u kubelet -o json with --since and --lines: oldest first, truncated when there were more', async (t) => {
    const root = await tempRoot(t)
    const journal = join(root, 'journal.json')
    const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString()
    await writeFile(
      journal,
      JSON.stringify([
        { at: ago(7200), message: 'two hours ago' },
        { at: ago(120), message: 'E0610 kuberuntime_manager.go:1256] "Failed to pull image" image="registry.k8s.io/kube-apiserver:v1.99.0" err="not found"' },
        { at: ago(60), message: 'kubelet.service: Main process exited, code=exited, status=1/FAILURE', fromSystemd: true },
        { at: ago(30), message: [0x49, 0x30, 0xff] },
        { at: ago(20), message: 'not the kubelet', unit: 'containerd.service' },
      ]),
    )
    const { bin, journalLog } = await standIns(root, { journal })
    const agent = await localAgent(root, { bin })
    const read = await agent.kubeletJournal({ sinceSeconds: 600, tailLines: 10 })
    assert.ok('lines' in read, JSON.stringify(read))
    assert.deepEqual(read.lines.map((l) => l.message.slice(0, 30)), ['E0610 kuberuntime_manager.go:1', 'kubelet.service: Main process ', 'I0\ufffd'])
    assert.equal(read.truncated, false)
    assert.ok(read.lines.every((l) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(l.at)))
    assert.deepEqual(await calls(journalLog), [['-u', 'kubelet', '-o', 'json', '--no-pager', '--all', '--since=-600s', '--lines=11']])
    const two = await agent.kubeletJournal({ sinceSeconds: 600, tailLines: 2 })
    assert.deepEqual('lines' in two && [two.lines.map((l) => l.message.slice(0, 5)), two.truncated], [['kubel', 'I0\ufffd'], true])
    const all = await agent.kubeletJournal({ sinceSeconds: null, tailLines: null })
    assert.deepEqual('lines' in all && all.lines.length, 4)
    await assert.rejects(agent.kubeletJournal({ sinceSeconds: -5, tailLines: 1 }), (err) => isServiceError(err) && err.code === 'VALIDATION_FAILED')

    // A user outside the journal's groups, a failing journalctl, none at all: a reason, not an exception.
    await writeFile(journal, JSON.stringify({ entries: [], notSeeingSystem: true }))
    assert.match((await agent.kubeletJournal({ sinceSeconds: 60, tailLines: 1 }) as { unavailable: string }).unavailable, /may not read the system journal.*systemd-journal group/)
    await writeFile(journal, JSON.stringify({ entries: [], exitCode: 1, stderr: 'Failed to open journal: Permission denied\n' }))
    assert.match((await agent.kubeletJournal({ sinceSeconds: 60, tailLines: 1 }) as { unavailable: string }).unavailable, /journalctl -u kubelet failed: Failed to open journal: Permission denied/)
    const none = await localAgent(root, { bin: join(root, 'empty-bin') })
    assert.deepEqual(await none.kubeletJournal({ sinceSeconds: 60, tailLines: 1 }), { unavailable: 'journalctl not found on this machine' })
  })
})

// ---- a file, whole ------------------------------------------------------------------------

describe('readNodeFile', () => {
  it('a regular file whole, symlinks followed; null when absent; refused when larger, not a regular file (a FIFO does not block), or the path is not plain', async (t) => {
    const root = await tempRoot(t)
    const agent = await localAgent(root, { bin: join(root, 'empty-bin') })
    const pki = join(root, 'pki')
    await mkdir(pki)
    const cert = Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
    await writeFile(join(pki, 'apiserver.crt'), cert)
    await symlink(join(pki, 'apiserver.crt'), join(pki, 'current.crt'))
    assert.deepEqual(await agent.readNodeFile(join(pki, 'apiserver.crt'), 1024), cert)
    assert.deepEqual(await agent.readNodeFile(`${pki}//./current.crt`, cert.length), cert, 'exactly maxBytes is fine')
    assert.equal(await agent.readNodeFile(join(pki, 'missing.crt'), 1024), null)

    const refused = async (path: string, why: string, message: RegExp) =>
      assert.rejects(agent.readNodeFile(path, 16), (err) => err instanceof NodeFileRefusedError && err.why === why && err.path === path && message.test(err.message))
    await refused(join(pki, 'apiserver.crt'), 'too-large', /node CP-1: .*apiserver\.crt is \d+ bytes, more than the 16 it may be/)
    await refused(pki, 'not-a-file', /is not a regular file \(directory\)/)
    execFileSync('mkfifo', [join(pki, 'fifo')])
    await refused(join(pki, 'fifo'), 'not-a-file', /is not a regular file \(other\)/)

    for (const path of ['etc/kubernetes/pki/ca.crt', '/etc/kubernetes/../shadow', '/etc/x\0.crt', '', '/']) {
      await assert.rejects(agent.readNodeFile(path, 16), (err) => isServiceError(err) && err.code === 'VALIDATION_FAILED' && err.field?.[0] === 'path', JSON.stringify(path))
    }
  })
})
