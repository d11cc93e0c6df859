// The SSH agent against real OpenSSH servers (test/support/sshd.ts): SFTP file
// operations with the kubelet's view of the directory, the pooled connection,
// host keys, crictl and the kubelet's healthz through the connection.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { readdir, readFile, readlink, stat, symlink, mkdir, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { openSshFingerprint } from '../../src/agents/host-key.ts'
import { LOCK_FILE_NAME, thisProcessIdentity } from '../../src/agents/node-lock.ts'
import { SftpFileSystem } from '../../src/agents/sftp-fs.ts'
import { createSshAgent, discoverStaticPodPath } from '../../src/agents/ssh.ts'
import { SshPool, type SshEndpoint, type SshPoolSettings } from '../../src/agents/ssh-pool.ts'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { isServiceError } from '../../src/errors.ts'
import { kubeletHealthAt } from '../../src/agents/local.ts'
import { SSH_AGENT_DEFAULTS, SSH_POOL_DEFAULTS } from '../support/agent-defaults.ts'
import { controlPlaneFixture } from '../support/crictl-fixture.ts'
import { startMisbehavingKubelets } from '../support/misbehaving-kubelets.ts'
import { clientIsThisProcess } from '../support/socket-owner.ts'
import { sshKeygenFingerprint, startBlackHole, startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'

let fleet: SshdFleet
let kubeletPort: number
let kubelet: Server

before(async () => {
  fleet = await startSshdFleet(3, {
    prefix: 'agent',
    node: (i) => ({ crictl: i === 0 ? 'from-manifests' : i === 1 ? { state: controlPlaneFixture() } : 'none' }),
  })
  kubelet = createServer((_req, res) => res.end('ok'))
  await new Promise<void>((resolve) => kubelet.listen(0, '127.0.0.1', resolve))
  kubeletPort = (kubelet.address() as AddressInfo).port
})

after(async () => {
  kubelet.closeAllConnections()
  await new Promise((resolve) => kubelet.close(resolve))
  await fleet.stop()
})

function poolFor(overrides: Partial<SshPoolSettings> = {}): SshPool {
  return new SshPool({ ...SSH_POOL_DEFAULTS, privateKey: readKey(), connectTimeoutMs: 5_000, ...overrides })
}

const readKey = (): string => readFileSync(fleet.clientKeyFile, 'utf8')

/** The pid of a process that has exited (and been reaped). */
function exitedPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  return new Promise((resolve) => child.once('exit', () => resolve(child.pid as number)))
}

function endpointOf(node: SshdNode, fingerprint = node.fingerprint): SshEndpoint {
  return { nodeName: node.name, host: '127.0.0.1', port: node.port, username: fleet.user, hostKeyFingerprint: fingerprint }
}

function agentOn(pool: SshPool, node: SshdNode, options: { name?: string; manifests?: string } = {}) {
  return createSshAgent({
    ...SSH_AGENT_DEFAULTS,
    endpoint: { ...endpointOf(node), nodeName: options.name ?? node.name },
    pool,
    staticPodPath: options.manifests ?? node.manifests,
    stateDir: join(fleet.root, 'state', options.name ?? node.name),
    kubeletHealthzPort: kubeletPort,
  })
}

const pod = (name: string, image = 'nginx:1.27') => Buffer.from(`apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n  containers:\n  - name: main\n    image: ${image}\n`)

describe('SSH agent', () => {
  it('the fingerprint is the one ssh-keygen -lf prints', () => {
    for (const node of fleet.nodes) assert.equal(node.fingerprint, sshKeygenFingerprint(node.hostKeyPubFile))
    const blob = Buffer.from(readFileSync(fleet.nodes[0]!.hostKeyPubFile, 'utf8').split(' ')[1]!, 'base64')
    assert.equal(openSshFingerprint(blob), sshKeygenFingerprint(fleet.nodes[0]!.hostKeyPubFile))
  })

  it('writes atomically, reads, lists as the kubelet sees it, backs up outside staticPodPath, deletes', async (t) => {
    const pool = poolFor()
    t.after(() => pool.close())
    const node = fleet.nodes[0]!
    const manifests = join(node.dir, 'write-test')
    await mkdir(manifests)
    const agent = agentOn(pool, node, { name: 'write-test', manifests })
    await agent.withLock({ actor: 'test', instance: 'i' }, async () => {
      await agent.writeManifest('web.yaml', pod('web'))
      await agent.writeManifest('web.yaml', pod('web', 'nginx:2'))
      await agent.backup('web.yaml', pod('web'))
    })
    assert.deepEqual(await readFile(join(manifests, 'web.yaml')), pod('web', 'nginx:2'))
    assert.deepEqual(await readdir(manifests), ['web.yaml'], 'no temp file, no backup in staticPodPath')
    assert.deepEqual(await agent.readManifest('web.yaml'), pod('web', 'nginx:2'))
    assert.equal(await agent.readManifest('missing.yaml'), null)

    // The kubelet follows symlinks, skips subdirectories, ignores dotfiles.
    await writeFile(join(node.dir, 'outside.yaml'), pod('linked'))
    await symlink(join(node.dir, 'outside.yaml'), join(manifests, 'linked.yaml'))
    await symlink(join(node.dir, 'nowhere'), join(manifests, 'dangling.yaml'))
    await mkdir(join(manifests, 'subdir'))
    await writeFile(join(manifests, '.hidden.yaml'), 'x')
    const listed = await agent.listManifestDir()
    assert.deepEqual(
      listed.map((e) => [e.name, e.kind]).sort(),
      [
        ['dangling.yaml', 'other'],
        ['linked.yaml', 'file'],
        ['subdir', 'directory'],
        ['web.yaml', 'file'],
      ],
    )
    assert.deepEqual(listed.find((e) => e.name === 'linked.yaml')?.bytes, pod('linked'))

    const backups = await readdir(join(fleet.root, 'state', 'write-test', 'backups', 'web.yaml'))
    assert.equal(backups.length, 1)
    await agent.withLock({ actor: 'test', instance: 'i' }, () => agent.deleteManifest('web.yaml'))
    await agent.deleteManifest('web.yaml') // already gone: no error
    assert.equal(await agent.readManifest('web.yaml'), null)
    assert.equal(pool.stats().connectionsOpened, 1, 'every operation over one connection')
  })

  it('backs up a root-only manifest it replaces by linking it (hardlink@openssh.com): the backup is the replaced file, the bytes are not sent again', async (t) => {
    const pool = poolFor()
    t.after(() => pool.close())
    const node = fleet.nodes[0]!
    const manifests = join(node.dir, 'link-test')
    await mkdir(manifests)
    const agent = agentOn(pool, node, { name: 'link-test', manifests })
    await agent.writeManifest('web.yaml', pod('web'))
    const replaced = await stat(join(manifests, 'web.yaml'))
    const backup = await agent.withLock({ actor: 'test', instance: 'i' }, async () => {
      const current = (await agent.listManifestDir()).find((e) => e.name === 'web.yaml')
      assert.ok(current?.bytes, 'listed with its bytes')
      const { path } = await agent.backup('web.yaml', current.bytes)
      await agent.writeManifest('web.yaml', pod('web', 'nginx:2'))
      return path
    })
    assert.equal((await stat(backup)).ino, replaced.ino, 'the backup is the old file itself')
    assert.deepEqual(await readFile(backup), pod('web'))
    assert.deepEqual(await readFile(join(manifests, 'web.yaml')), pod('web', 'nginx:2'))
    assert.deepEqual(await readdir(manifests), ['web.yaml'])
  })

  it('an exclusive create of an existing path fails, for a file and for a symlink; readlink reads the symlink back', async (t) => {
    const pool = poolFor()
    t.after(() => pool.close())
    const node = fleet.nodes[0]!
    const fs = new SftpFileSystem((what, fn) => pool.run(endpointOf(node), what, async (s) => fn(await s.sftp())))
    const path = join(node.dir, 'exclusive')
    await fs.pipeline('create', async (p) => {
      const handle = (await p.open(path, 'create'))!
      await p.write(handle, Buffer.from('a'))
      p.close(handle)
    })
    await assert.rejects(fs.pipeline('create again', (p) => p.open(path, 'create')))
    assert.equal(await readFile(path, 'utf8'), 'a')
    const link = join(node.dir, 'exclusive-link')
    // Whatever the SSH server's banner, the target and the link come out the right way round (OpenSSH's SYMLINK order).
    await fs.pipeline('symlink', (p) => p.symlink('{"a":"b\\u002fc"}', link))
    await assert.rejects(fs.pipeline('symlink again', (p) => p.symlink('other', link)))
    await assert.rejects(fs.pipeline('symlink over a file', (p) => p.symlink('other', path)))
    assert.equal(await readlink(link), '{"a":"b\\u002fc"}')
    assert.equal(await fs.pipeline('readlink', (p) => p.readlink(link)), '{"a":"b\\u002fc"}')
    assert.equal(await fs.pipeline('readlink', (p) => p.readlink(join(node.dir, 'no-such-link'))), null)
    await assert.rejects(fs.pipeline('readlink of a file', (p) => p.readlink(path)))
  })

  it('reads files bigger than one READ and lists directories bigger than one READDIR, exactly', async (t) => {
    // The SFTP file system reads a manifest in one READ and lists a directory with two READDIRs at once;
    // files and directories past those sizes must still come back whole.
    const pool = poolFor()
    t.after(() => pool.close())
    const node = fleet.nodes[0]!
    const fs = new SftpFileSystem((what, fn) => pool.run(endpointOf(node), what, async (s) => fn(await s.sftp())))
    const dir = join(node.dir, 'big')
    await mkdir(dir, { recursive: true })
    const sizes = [0, 1, 128 * 1024 - 1, 128 * 1024, 128 * 1024 + 1, 700_001]
    for (const size of sizes) {
      const bytes = Buffer.alloc(size, 0)
      for (let i = 0; i + 4 <= size; i += 4096) bytes.writeUInt32BE(i, i) // not one repeated byte: offsets must be right
      await writeFile(join(dir, `f${size}`), bytes)
      assert.deepEqual(await fs.readFile(join(dir, `f${size}`)), bytes, `${size} bytes`)
    }
    const names = Array.from({ length: 333 }, (_, i) => `entry-${String(i).padStart(3, '0')}`)
    await Promise.all(names.map((name) => writeFile(join(dir, name), name)))
    const listed = (await fs.readDir(dir)).map((e) => e.name).sort()
    assert.deepEqual(listed, [...names, ...sizes.map((s) => `f${s}`)].sort())
    assert.equal(await fs.readFile(join(dir, 'missing')), null)
  })

  it('lists staticPodPath whole around one READDIR answer (100 names with "." and ".."), under the lock and without', async (t) => {
    // OpenSSH's server sends fewer than 100 names only at the end: the listing then sends no READDIR that would only answer "end".
    const pool = poolFor()
    t.after(() => pool.close())
    const node = fleet.nodes[0]!
    for (const count of [97, 98, 99, 100, 101, 197, 198, 250]) {
      const manifests = join(node.dir, `listing-${count}`)
      await mkdir(manifests, { recursive: true })
      const names = Array.from({ length: count }, (_, i) => `m-${String(i).padStart(3, '0')}`)
      await Promise.all(names.map((name) => writeFile(join(manifests, name), name)))
      const agent = agentOn(pool, node, { name: `listing-${count}`, manifests })
      assert.deepEqual((await agent.listManifestDir()).map((e) => e.name), names, `${count} entries`)
      const underLock = await agent.withLock({ actor: 'test', instance: 'i' }, () => agent.listManifestDir())
      assert.deepEqual(underLock.map((e) => e.name), names, `${count} entries, under the lock`)
      assert.deepEqual(underLock.map((e) => e.bytes?.toString()), names, `${count} entries read`)
    }
  })
  it('runtime state from crictl over SSH: derived from the manifests present, and a real-shaped fixture', async (t) => {
    const pool = poolFor()
    t.after(() => pool.close())
    const [fromManifests, controlPlane] = fleet.nodes as [SshdNode, SshdNode]
    await writeFile(join(fromManifests.manifests, 'web.yaml'), pod('web', 'nginx:1.27'))
    const report = await agentOn(pool, fromManifests).runtimeStatus()
    assert.equal(report.available, true)
    assert.deepEqual(
      report.available && report.pods.map((p) => [p.namespace, p.name, p.state, p.containers.map((c) => `${c.name}=${c.state} ${c.image}`)]),
      [['default', 'web', 'READY', ['main=RUNNING nginx:1.27']]],
    )

    // The fixture's pods are named for node "CP-1".
    const cp = createSshAgent({ ...SSH_AGENT_DEFAULTS, endpoint: { ...endpointOf(controlPlane), nodeName: 'CP-1' }, pool, staticPodPath: controlPlane.manifests, stateDir: join(fleet.root, 'state', 'cp') })
    const cpReport = await cp.runtimeStatus()
    assert.equal(cpReport.available, true)
    assert.deepEqual(
      cpReport.available && cpReport.pods.map((p) => `${p.name}:${p.state}`),
      ['etcd:READY', 'kube-apiserver:READY', 'kube-scheduler:READY'],
    )
  })

  it('kubelet health through the SSH forward; a node without crictl or kubelet degrades with reasons', async (t) => {
    const pool = poolFor()
    t.after(() => pool.close())
    const healthy = await agentOn(pool, fleet.nodes[0]!).kubeletHealth()
    assert.equal(healthy.available, true)
    assert.equal(healthy.available && healthy.status.healthy, true)

    const bare = fleet.nodes[2]!
    const agent = createSshAgent({ ...SSH_AGENT_DEFAULTS, endpoint: endpointOf(bare), pool, staticPodPath: bare.manifests, stateDir: join(fleet.root, 'state', bare.name), kubeletHealthzPort: 9 })
    assert.deepEqual(await agent.runtimeStatus(), { available: false, reason: 'crictl not found on the node' })
    const noKubelet = await agent.kubeletHealth()
    assert.equal(noKubelet.available, false)
    assert.match(!noKubelet.available ? noKubelet.reason : '', /no kubelet answers on 127\.0\.0\.1:9 on the node/)
  })

  it('kubelet healthz is asked on the node, through the SSH channel, not from this machine', async (t) => {
    // sshd runs on this machine too, so the kubelet stand-in tells the two apart by who opened the
    // connection: sshd (forwarding the channel) or this process (dialling 127.0.0.1 itself).
    const openedHere: boolean[] = []
    const server = createServer((req, res) => {
      void clientIsThisProcess(req.socket).then((here) => {
        openedHere.push(here)
        res.end('ok')
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise((resolve) => server.close(resolve)))
    const port = (server.address() as AddressInfo).port
    const pool = poolFor()
    t.after(() => pool.close())
    const node = fleet.nodes[0]!
    const agent = createSshAgent({ ...SSH_AGENT_DEFAULTS, endpoint: endpointOf(node), pool, staticPodPath: node.manifests, stateDir: join(fleet.root, 'state', 'forward'), kubeletHealthzPort: port })
    const report = await agent.kubeletHealth()
    assert.equal(report.available && report.status.healthy, true, JSON.stringify(report))
    // The same stand-in asked directly, as the local agent does: the check does tell this process.
    assert.equal((await kubeletHealthAt(`http://127.0.0.1:${port}/healthz`, 2_000)).available, true)
    assert.deepEqual(openedHere, [false, true])
  })

  // The same words as the local agent's (test/agents/local.test.ts): one reading of the answer for both agents.
  it('kubelet healthz through the forward: not HTTP, closed without an answer, an endless body', async (t) => {
    const kubelets = await startMisbehavingKubelets()
    t.after(() => kubelets.stop())
    const pool = poolFor()
    t.after(() => pool.close())
    const node = fleet.nodes[0]!
    const at = (port: number, kubeletTimeoutMs = 5_000) =>
      createSshAgent({ ...SSH_AGENT_DEFAULTS, endpoint: endpointOf(node), pool, staticPodPath: node.manifests, stateDir: join(fleet.root, 'state', 'misbehaving'), kubeletHealthzPort: port, kubeletTimeoutMs }).kubeletHealth()
    assert.deepEqual(await at(kubelets.notHttpPort), { available: false, reason: `no kubelet answers on 127.0.0.1:${kubelets.notHttpPort} on the node (the answer is not HTTP)` })
    assert.deepEqual(await at(kubelets.hangsUpPort), { available: false, reason: `no kubelet answers on 127.0.0.1:${kubelets.hangsUpPort} on the node (the connection closed without an answer)` })
    const started = performance.now()
    const endless = await at(kubelets.endlessBodyPort, 10_000)
    assert.ok(performance.now() - started < 5_000, 'not waited for the end of the body')
    assert.equal(endless.available && endless.status.healthy, true)
    assert.equal(endless.available && endless.status.message, `${'x'.repeat(1_000)}…`)
  })

  it('a wrong pinned key is HOST_KEY_MISMATCH, tells the presented key, and writes nothing', async (t) => {
    const seen: string[] = []
    const pool = poolFor({ onHostKey: (name, fp) => void seen.push(`${name} ${fp}`) })
    t.after(() => pool.close())
    const node = fleet.nodes[1]!
    const wrong = fleet.nodes[0]!.fingerprint
    const agent = createSshAgent({ ...SSH_AGENT_DEFAULTS, endpoint: endpointOf(node, wrong), pool, staticPodPath: node.manifests, stateDir: join(fleet.root, 'state', 'mismatch') })
    const before = await readdir(node.manifests)
    await assert.rejects(
      agent.withLock({ actor: 't', instance: 'i' }, () => agent.writeManifest('web.yaml', pod('web'))),
      (err) => isServiceError(err) && err.code === 'HOST_KEY_MISMATCH' && err.message.includes(node.fingerprint),
    )
    await assert.rejects(agent.listManifestDir(), (err) => isServiceError(err) && err.code === 'HOST_KEY_MISMATCH')
    assert.deepEqual(await readdir(node.manifests), before)
    assert.deepEqual(seen, [`${node.name} ${node.fingerprint}`, `${node.name} ${node.fingerprint}`])
    assert.equal(pool.stats().hostKeyMismatches, 2)
    assert.equal(pool.stats().connectionsOpened, 0)
  })

  it('a handshake records the key it sees unless the record already has it and it is the pin', async (t) => {
    const seen: string[] = []
    const node = fleet.nodes[1]!
    // A pool each: every connection is a new handshake.
    const connectOnce = async (recordedHostKeyFingerprint: string | null, pin = node.fingerprint) => {
      const pool = poolFor({ onHostKey: (name, fp) => void seen.push(`${name} ${fp}`) })
      t.after(() => pool.close())
      const agent = createSshAgent({ ...SSH_AGENT_DEFAULTS, endpoint: { ...endpointOf(node, pin), recordedHostKeyFingerprint }, pool, staticPodPath: node.manifests, stateDir: join(fleet.root, 'state', 'recorded') })
      await agent.listManifestDir().catch(() => undefined)
      await pool.close()
    }
    await connectOnce(node.fingerprint)
    assert.deepEqual(seen, [], 'the record has it already: nothing to record, no wait for the store')
    await connectOnce(null)
    await connectOnce(fleet.nodes[0]!.fingerprint)
    assert.deepEqual(seen, [`${node.name} ${node.fingerprint}`, `${node.name} ${node.fingerprint}`], 'never seen, or seen another: recorded')
    // Recorded as this key but pinned to another: the mismatch is recorded, for the admin to see.
    await connectOnce(node.fingerprint, fleet.nodes[0]!.fingerprint)
    assert.equal(seen.length, 3)
  })

  it('observeHostKey sees the key without logging in', async (t) => {
    const pool = poolFor({ privateKey: undefined })
    t.after(() => pool.close())
    const node = fleet.nodes[2]!
    assert.equal(await pool.observeHostKey(endpointOf(node)), sshKeygenFingerprint(node.hostKeyPubFile))
  })

  it('connection failures are NODE_UNREACHABLE: refused, black hole (after the connect timeout), no key', async (t) => {
    const pool = poolFor({ connectTimeoutMs: 500 })
    t.after(() => pool.close())
    const hole = await startBlackHole()
    t.after(() => hole.close())
    const refused = createSshAgent({ ...SSH_AGENT_DEFAULTS, endpoint: { ...endpointOf(fleet.nodes[0]!), port: 9 }, pool, staticPodPath: '/x', stateDir: '/y' })
    await assert.rejects(refused.listManifestDir(), (err) => isServiceError(err) && err.code === 'NODE_UNREACHABLE' && /: connection refused$/.test(err.message))
    const started = performance.now()
    const silent = createSshAgent({ ...SSH_AGENT_DEFAULTS, endpoint: { ...endpointOf(fleet.nodes[0]!), port: hole.port }, pool, staticPodPath: '/x', stateDir: '/y' })
    await assert.rejects(silent.listManifestDir(), (err) => isServiceError(err) && err.code === 'NODE_UNREACHABLE' && /: timed out \(no SSH handshake within 500 ms/.test(err.message))
    assert.ok(performance.now() - started < 2_000)
    const keyless = new SshPool({ ...SSH_POOL_DEFAULTS, privateKey: undefined })
    t.after(() => keyless.close())
    await assert.rejects(
      keyless.run(endpointOf(fleet.nodes[0]!), 'x', async () => 1),
      (err) => isServiceError(err) && err.code === 'NODE_UNREACHABLE' && /SSH_PRIVATE_KEY_FILE/.test(err.message),
    )
  })

  it('reconnects on demand after the node drops the connection, and closes idle connections', async (t) => {
    const pool = poolFor({ idleTimeoutMs: 300 })
    t.after(() => pool.close())
    const node = fleet.nodes[2]!
    const agent = agentOn(pool, node)
    await agent.listManifestDir()
    assert.deepEqual([pool.stats().connectionsOpened, pool.stats().connectionsOpen], [1, 1])
    await node.kill()
    await node.start()
    await agent.listManifestDir()
    assert.equal(pool.stats().connectionsOpened, 2, 'a new connection after the drop')
    // The first connection may itself have been closed as idle while the node
    // was restarting (that takes longer than idleTimeoutMs on a busy machine): count from here.
    const idleClosedBefore = pool.stats().idleClosed
    await new Promise((resolve) => setTimeout(resolve, 600))
    assert.deepEqual([pool.stats().connectionsOpen, pool.stats().idleClosed - idleClosedBefore], [0, 1])
    await agent.listManifestDir()
    assert.equal(pool.stats().connectionsOpened, 3)
  })

  it('an operation that does not finish is TIMEOUT, and its connection is replaced', async (t) => {
    const pool = poolFor({ operationTimeoutMs: 300 })
    t.after(() => pool.close())
    const node = fleet.nodes[0]!
    await assert.rejects(
      pool.run(endpointOf(node), 'waiting forever', () => new Promise(() => undefined)),
      (err) => isServiceError(err) && err.code === 'TIMEOUT' && /waiting forever on node agent-1 did not finish within 300 ms/.test(err.message),
    )
    assert.equal(await pool.run(endpointOf(node), 'after', async () => 'fine'), 'fine')
    assert.equal(pool.stats().connectionsOpened, 2)
  })

  it('at most maxOperationsPerNode operations at once on one node', async (t) => {
    const pool = poolFor({ maxOperationsPerNode: 2 })
    t.after(() => pool.close())
    let inside = 0
    let most = 0
    await Promise.all(
      Array.from({ length: 8 }, () =>
        pool.run(endpointOf(fleet.nodes[0]!), 'op', async () => {
          most = Math.max(most, ++inside)
          await new Promise((resolve) => setTimeout(resolve, 20))
          inside--
        }),
      ),
    )
    assert.equal(most, 2)
  })

  it('at most maxConnections at once: an idle connection makes room for another node', async (t) => {
    const pool = poolFor({ maxConnections: 1 })
    t.after(() => pool.close())
    const [a, b] = fleet.nodes as [SshdNode, SshdNode]
    await pool.run(endpointOf(a), 'a', async () => undefined)
    await pool.run(endpointOf(b), 'b', async () => undefined)
    assert.deepEqual([pool.stats().connectionsOpened, pool.stats().connectionsOpen], [2, 1])
  })


  it('at most connectConcurrency handshakes at once; a waiting one gets its whole connect timeout from its turn', async (t) => {
    const connectTimeoutMs = 1_500
    const pool = poolFor({ connectConcurrency: 2, connectTimeoutMs })
    t.after(() => pool.close())
    // A TCP server that never speaks SSH, noting when it accepts each connection.
    const acceptedAt: number[] = []
    const sockets = new Set<Socket>()
    const hole = createTcpServer((socket) => {
      sockets.add(socket)
      acceptedAt.push(performance.now())
      socket.on('error', () => undefined)
      socket.once('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve))
    t.after(() => {
      for (const s of sockets) s.destroy()
      return new Promise<void>((resolve) => hole.close(() => resolve()))
    })
    const holePort = (hole.address() as AddressInfo).port
    const started = performance.now()
    const silent = [1, 2, 3].map((i) => pool.run({ ...endpointOf(fleet.nodes[0]!), nodeName: `silent-${i}`, port: holePort }, 'x', async () => 1))
    // Queued behind two silent handshakes: its own starts only when one of them has timed out.
    const real = pool.run(endpointOf(fleet.nodes[1]!), 'x', async () => performance.now())
    const outcomes = await Promise.allSettled(silent)
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected', 'a server that never speaks SSH is unreachable')
      const err = (outcome as PromiseRejectedResult).reason as unknown
      assert.ok(isServiceError(err) && err.code === 'NODE_UNREACHABLE' && /no SSH handshake within 1500 ms/.test(err.message), String(err))
    }
    const answeredAt = await real
    assert.ok(answeredAt - started >= connectTimeoutMs, `the real node waited for a turn (answered after ${Math.round(answeredAt - started)} ms)`)
    // Two at once: the third silent node was let in only when one of the first two had timed out, and then had its full timeout.
    assert.equal(acceptedAt.length, 3, 'each silent node was dialled once')
    const [first, second, third] = acceptedAt.map((at) => Math.round(at - started)) as [number, number, number]
    assert.ok(second < connectTimeoutMs && third >= connectTimeoutMs, `accepted at ${first}, ${second}, ${third} ms`)
    assert.ok(performance.now() - started >= 2 * connectTimeoutMs, 'the third silent node timed out a whole timeout after its turn began')
  })
  it('discovers staticPodPath from the kubelet config over SFTP', async (t) => {
    const pool = poolFor()
    t.after(() => pool.close())
    const node = fleet.nodes[0]!
    const config = join(node.dir, 'kubelet-config.yaml')
    await writeFile(config, `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: ${node.manifests}/\n`)
    assert.equal(await discoverStaticPodPath(pool, endpointOf(node), config), node.manifests)
    assert.equal(await discoverStaticPodPath(pool, endpointOf(node), join(node.dir, 'missing.yaml')), null)
  })

  it('lock holders are judged as processes of the service, not of the node: dead here is taken over, same name on another machine waits', async (t) => {
    const pool = poolFor()
    t.after(() => pool.close())
    const node = fleet.nodes[0]!
    const stateDir = join(fleet.root, 'state', 'liveness')
    await mkdir(stateDir, { recursive: true })
    const agent = createSshAgent({ ...SSH_AGENT_DEFAULTS, endpoint: endpointOf(node), pool, staticPodPath: node.manifests, stateDir, lockWaitMs: 300 })
    const self = thisProcessIdentity()
    const deadPid = await exitedPid()
    const lock = (identity: { hostname: string; pid: number; pidNamespace: string | null }) =>
      JSON.stringify({ actor: 'dave', instance: 'other', ...identity, acquiredAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString(), token: 'abc' })

    // Another service process on this machine that died holding the lock: taken over at once.
    await writeFile(join(stateDir, LOCK_FILE_NAME), lock({ ...self, pid: deadPid }))
    assert.equal(await agent.withLock({ actor: 'erin', instance: 'me' }, async () => 'ran'), 'ran')

    // Same hostname and pid namespace inode, another boot: another machine. Its pid means nothing here.
    assert.ok(self.pidNamespace?.includes(' boot:'), self.pidNamespace ?? 'no pid namespace')
    const elsewhere = { ...self, pid: deadPid, pidNamespace: `${self.pidNamespace?.split(' boot:')[0]} boot:00000000-0000-0000-0000-000000000000` }
    await writeFile(join(stateDir, LOCK_FILE_NAME), lock(elsewhere))
    await assert.rejects(agent.withLock({ actor: 'erin', instance: 'me' }, async () => 'ran'), (err) => isServiceError(err) && err.code === 'LOCKED')
  })

  it('SSH settings come from the environment; a key that cannot be used stops the start naming the variable', () => {
    const config = loadConfig({ SSH_PRIVATE_KEY_FILE: fleet.clientKeyFile, SSH_CONNECT_TIMEOUT_MS: '2500', SSH_STATE_DIR: '/srv/state' })
    assert.equal(config.sshPrivateKey, readKey())
    assert.equal(config.ssh.connectTimeoutMs, 2500)
    assert.equal(config.ssh.stateDir, '/srv/state')
    assert.equal(config.ssh.kubeletHealthzPort, 10248)
    const fails = (env: Record<string, string>, pattern: RegExp) =>
      assert.throws(() => loadConfig(env), (err) => err instanceof ConfigError && pattern.test(err.message) && !err.message.includes('\n'))
    fails({ SSH_PRIVATE_KEY: 'not a key' }, /^Invalid SSH_PRIVATE_KEY: /)
    fails({ SSH_PRIVATE_KEY_FILE: join(fleet.root, 'missing') }, /^Invalid SSH_PRIVATE_KEY_FILE: cannot read/)
    fails({ SSH_STATE_DIR: 'relative' }, /^Invalid SSH_STATE_DIR/)
  })
})

