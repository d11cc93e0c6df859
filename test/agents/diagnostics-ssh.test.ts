// Diagnosis evidence over SSH, against real OpenSSH sshd daemons
// (test/support/sshd.ts) whose crictl is the stand-in driven by the runtime
// stand-in (test/support/fake-runtime.ts: a crash loop, with the kubelet's
// log files in a directory of the test's own), and whose journalctl is the
// journal stand-in: crictl inspect and logs over exec, the kubelet's files
// over SFTP where a node has no crictl, the journal, bounded file reads; and
// on a SUDO node (a real user and sudo, test/support/sudo-user.ts) the same
// through sudo -n and the SFTP server started with it, with and without the
// diagnosis sudoers lines.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { NodeFileRefusedError, type ContainerLogRequest } from '../../src/agents/agent.ts'
import { createSshAgent, sudoAccessFor } from '../../src/agents/ssh.ts'
import { SshPool, type SshEndpoint } from '../../src/agents/ssh-pool.ts'
import { SFTP_SERVER_PATHS, sudoersDiagnosisRule, sudoersRule } from '../../src/agents/sudo.ts'
import { SSH_AGENT_DEFAULTS, SSH_POOL_DEFAULTS } from '../support/agent-defaults.ts'
import { FakeRuntime } from '../support/fake-runtime.ts'
import { startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'
import { createSudoUser, type SudoUser } from '../support/sudo-user.ts'

const sftpServer = SFTP_SERVER_PATHS.find((p) => existsSync(p)) as string
const CERT_ERROR = 'E0610 run.go:74] "command failed" err="unable to load server certificate: x509: certificate has expired or is not yet valid"'

let fleet: SshdFleet
let user: SudoUser
let runtime: FakeRuntime
let pool: SshPool

const node = (i: number): SshdNode => fleet.nodes[i] as SshdNode
const podLogDirOf = (n: SshdNode): string => join(n.dir, 'pods')
const apiserverManifest = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\nspec:\n  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.30.2\n'

before(async () => {
  assert.ok(sftpServer, `none of ${SFTP_SERVER_PATHS.join(', ')} exists: install openssh-server`)
  const empty = { state: { sandboxes: [], containers: [] } }
  // 0: root login with crictl; 1: root login, no crictl; 2: SUDO (root logins refused), with crictl.
  fleet = await startSshdFleet(3, { prefix: 'diag', node: (i) => (i === 1 ? { crictl: 'none' } : i === 2 ? { crictl: empty, permitRootLogin: 'no' } : { crictl: empty }) })
  user = await createSudoUser()
  pool = new SshPool({ ...SSH_POOL_DEFAULTS, privateKey: readFileSync(fleet.clientKeyFile, 'utf8'), connectTimeoutMs: 5_000 })
  runtime = new FakeRuntime(
    fleet.nodes.map((n) => ({ name: n.name, staticPodPath: n.manifests, crictlStatePath: n.crictlStateFile ?? join(n.dir, 'no-crictl.json'), podLogDir: podLogDirOf(n) })),
    { behaviour: () => 'crash-loop', crashEveryMs: 100 },
  )
  for (const n of fleet.nodes) {
    await mkdir(podLogDirOf(n), { recursive: true })
    await writeFile(join(n.manifests, 'kube-apiserver.yaml'), apiserverManifest)
    runtime.setLogs(n.name, 'kube-apiserver', ['I0610 Starting kube-apiserver v1.30.2', CERT_ERROR])
  }
  await runtime.sync()
  await new Promise((resolve) => setTimeout(resolve, 250))
  await runtime.sync()
  // Only root may read the SUDO node's log files: whatever is read there went through sudo.
  await chmod(podLogDirOf(node(2)), 0o700)
})

after(async () => {
  await pool?.close()
  await fleet?.stop()
  await user?.remove()
})

function agentOn(n: SshdNode, sudo = false) {
  const endpoint: SshEndpoint = {
    nodeName: n.name,
    host: '127.0.0.1',
    port: n.port,
    username: sudo ? user.name : fleet.user,
    hostKeyFingerprint: n.fingerprint,
    ...(sudo ? sudoAccessFor(n.name, 'SUDO', null) : {}),
  }
  return createSshAgent({ ...SSH_AGENT_DEFAULTS, endpoint, pool, staticPodPath: n.manifests, stateDir: join(fleet.root, 'state', n.name), podLogDir: podLogDirOf(n) })
}

const apiserverLog = (overrides: Partial<ContainerLogRequest> = {}): ContainerLogRequest => ({
  namespace: 'kube-system',
  pod: 'kube-apiserver',
  container: 'kube-apiserver',
  previous: false,
  tailLines: 200,
  sinceSeconds: 3600,
  limitBytes: 1 << 20,
  ...overrides,
})

async function podLogFile(n: SshdNode, attempt: number): Promise<string> {
  const [dir] = await readdir(podLogDirOf(n))
  return join(podLogDirOf(n), dir as string, 'kube-apiserver', `${attempt}.log`)
}

describe('diagnosis over SSH', () => {
  it('runtime: exit code, reason and how the attempt before ended, from crictl inspect over exec', async () => {
    const report = await agentOn(node(0)).runtimeStatus()
    assert.equal(report.available, true, JSON.stringify(report))
    const c = report.available ? report.pods[0]?.containers[0] : undefined
    assert.deepEqual([c?.state, c?.exitCode, c?.reason, c?.lastTermination?.exitCode, c?.lastTermination?.reason], ['TERMINATED', 1, 'Error', 1, 'Error'])
    assert.ok(c?.startedAt && c.finishedAt && c.startedAt < c.finishedAt)
    assert.ok((c?.attempt ?? 0) >= 2)
  })

  it('logs through crictl logs: the current attempt and, with previous, the one before', async () => {
    const agent = agentOn(node(0))
    const current = await agent.containerLog(apiserverLog())
    const attempt = current?.attempt as number
    assert.deepEqual([current?.source, current?.truncated, current?.lines.length], ['crictl', false, 2])
    assert.ok(current?.lines[1]?.endsWith(CERT_ERROR))
    const previous = await agent.containerLog(apiserverLog({ previous: true }))
    assert.deepEqual([previous?.source, previous?.attempt, previous?.lines.length], ['crictl', attempt - 1, 2])
    assert.ok((previous?.lines[0] as string) < (current?.lines[0] as string), "the attempt before's lines are older")
    const one = await agent.containerLog(apiserverLog({ tailLines: 1 }))
    assert.deepEqual([one?.lines.length, one?.truncated], [1, true])
  })

  it("a node without crictl: the kubelet's file over SFTP, source naming it", async () => {
    const agent = agentOn(node(1))
    assert.deepEqual(await agent.runtimeStatus(), { available: false, reason: 'crictl not found on the node' })
    const current = await agent.containerLog(apiserverLog())
    const attempt = current?.attempt as number
    assert.equal(current?.source, await podLogFile(node(1), attempt))
    assert.equal(current?.containerId, null)
    assert.deepEqual(current?.lines.map((l) => l.slice(31)), ['I0610 Starting kube-apiserver v1.30.2', CERT_ERROR])
    const previous = await agent.containerLog(apiserverLog({ previous: true }))
    assert.equal(previous?.source, await podLogFile(node(1), attempt - 1))
    assert.equal(await agent.containerLog(apiserverLog({ container: 'etcd' })), null)
  })

  it("the kubelet's journal through journalctl on the node; a node without one says so", async () => {
    const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString()
    await node(0).setJournal([
      { at: ago(7200), message: 'too old' },
      { at: ago(90), message: 'E0610 pod_workers.go:1298] "Error syncing pod, skipping" err="failed to \\"StartContainer\\" for \\"kube-apiserver\\" with CrashLoopBackOff" pod="kube-system/kube-apiserver-diag-1"' },
      { at: ago(30), message: 'kubelet.service: Main process exited, code=exited, status=1/FAILURE', fromSystemd: true },
    ])
    const read = await agentOn(node(0)).kubeletJournal({ sinceSeconds: 600, tailLines: 200 })
    assert.ok('lines' in read, JSON.stringify(read))
    assert.deepEqual(read.lines.map((l) => l.message.slice(0, 25)), ['E0610 pod_workers.go:1298', 'kubelet.service: Main pro'])
    assert.equal(read.truncated, false)
  })

  it('readNodeFile over SFTP: whole, absent, too large, not a regular file', async () => {
    const agent = agentOn(node(0))
    const pki = join(node(0).dir, 'pki')
    await mkdir(pki, { recursive: true })
    const cert = Buffer.alloc(300 * 1024, 'c') // more than one SFTP read
    await writeFile(join(pki, 'apiserver.crt'), cert)
    assert.deepEqual(await agent.readNodeFile(join(pki, 'apiserver.crt'), cert.length), cert)
    assert.equal(await agent.readNodeFile(join(pki, 'absent.crt'), 10), null)
    await assert.rejects(agent.readNodeFile(join(pki, 'apiserver.crt'), cert.length - 1), (err) => err instanceof NodeFileRefusedError && err.why === 'too-large')
    execFileSync('mkfifo', [join(pki, 'fifo')])
    await assert.rejects(agent.readNodeFile(join(pki, 'fifo'), 10), (err) => err instanceof NodeFileRefusedError && err.why === 'not-a-file')
    await assert.rejects(agent.readNodeFile(pki, 10), (err) => err instanceof NodeFileRefusedError && err.why === 'not-a-file')
  })
})

describe('diagnosis on a SUDO node', () => {
  const bin = () => join(node(2).dir, 'bin')
  const baseRule = () =>
    [`Defaults:${user.name} secure_path="${bin()}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"`, sudoersRule(user.name, { sftpServer, crictl: join(bin(), 'crictl') }, 'STATICPOD_API_TEST')].join('\n')

  it('with the diagnosis lines: crictl inspect and logs through sudo -n; the journal as the user; root-only files through the sudo SFTP session', async (t) => {
    await user.allow([baseRule(), sudoersDiagnosisRule(user.name, { crictl: join(bin(), 'crictl') }, 'STATICPOD_API_TEST_DIAGNOSIS')].join('\n'))
    t.after(() => user.revoke())
    const agent = agentOn(node(2), true)
    const report = await agent.runtimeStatus()
    assert.equal(report.available, true, JSON.stringify(report))
    const c = report.available ? report.pods[0]?.containers[0] : undefined
    assert.deepEqual([c?.exitCode, c?.reason, c?.lastTermination?.exitCode], [1, 'Error', 1], 'crictl inspect ran as root')

    const current = await agent.containerLog(apiserverLog())
    assert.deepEqual([current?.source, current?.lines.length], ['crictl', 2])
    assert.deepEqual((await agent.containerLog(apiserverLog({ previous: true })))?.attempt, (current?.attempt as number) - 1)

    await node(2).setJournal([{ at: new Date(Date.now() - 5_000).toISOString(), message: 'I0610 kubelet as seen by the user' }])
    const journal = await agent.kubeletJournal({ sinceSeconds: 60, tailLines: 10 })
    assert.deepEqual('lines' in journal && journal.lines.map((l) => l.message), ['I0610 kubelet as seen by the user'])
    await node(2).setJournal({ entries: [], notSeeingSystem: true })
    assert.match((await agent.kubeletJournal({ sinceSeconds: 60, tailLines: 10 }) as { unavailable: string }).unavailable, /systemd-journal group/)

    const secret = join(node(2).dir, 'root-only')
    await mkdir(secret, { recursive: true, mode: 0o700 })
    await writeFile(join(secret, 'ca.crt'), 'ca', { mode: 0o600 })
    assert.equal((await agent.readNodeFile(join(secret, 'ca.crt'), 10))?.toString(), 'ca')
  })

  it("with only the base rule: the runtime without exit codes, and logs from the kubelet's files through the sudo SFTP session", async (t) => {
    await user.allow(baseRule())
    t.after(() => user.revoke())
    const agent = agentOn(node(2), true)
    const report = await agent.runtimeStatus()
    assert.equal(report.available, true, JSON.stringify(report))
    const c = report.available ? report.pods[0]?.containers[0] : undefined
    assert.deepEqual([c?.state, c?.exitCode, c?.lastTermination], ['TERMINATED', null, { exitCode: null, reason: null, finishedAt: null }], 'sudo refused crictl inspect: the state as listed')
    const current = await agent.containerLog(apiserverLog())
    assert.equal(current?.source, await podLogFile(node(2), current?.attempt as number))
    assert.ok(current?.lines[1]?.endsWith(CERT_ERROR))
  })

  it('the README shows the diagnosis sudoers lines', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
    const rule = sudoersDiagnosisRule('staticpod', { crictl: '/usr/bin/crictl' })
    assert.ok(readme.includes(`\`\`\`\n${rule}\n\`\`\`\n`), `README.md has no code block with exactly:\n${rule}`)
  })
})
