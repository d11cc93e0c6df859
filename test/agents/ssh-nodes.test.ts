// SSH nodes through the whole service, against real sshd daemons: host keys
// (pinned, wrong, none), sshd killed between the temp write and the rename,
// two service processes racing compare-and-swap updates, staticPodPath
// discovery, and runtime/kubelet state read over SSH or degrading with reasons.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { LOCK_FILE_NAME } from '../../src/agents/node-lock.ts'
import { createSshAgent } from '../../src/agents/ssh.ts'
import { SshPool } from '../../src/agents/ssh-pool.ts'
import { isServiceError } from '../../src/errors.ts'
import { kubeletVisibleFiles, podYaml } from '../helper.ts'
import { SSH_AGENT_DEFAULTS, SSH_POOL_DEFAULTS } from '../support/agent-defaults.ts'
import { spawnTsChild } from '../support/child-process.ts'
import { sshFleetApp } from '../support/ssh-app.ts'
import { sshKeygenFingerprint, startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'

const serviceChild = fileURLToPath(new URL('../support/service-child.ts', import.meta.url))
const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex')
const CREATE = `mutation($input: CreateStaticPodInput!) { createStaticPod(input: $input) { staticPod { hash path } userErrors { code message } } }`

let fleet: SshdFleet
let kubelet: Server
let kubeletPort: number

before(async () => {
  fleet = await startSshdFleet(6, { prefix: 'node', node: (i) => ({ crictl: i === 4 ? 'from-manifests' : 'none' }) })
  kubelet = createServer((_req, res) => res.end('ok'))
  await new Promise<void>((resolve) => kubelet.listen(0, '127.0.0.1', resolve))
  kubeletPort = (kubelet.address() as AddressInfo).port
})
after(async () => {
  kubelet.closeAllConnections()
  await new Promise((resolve) => kubelet.close(resolve))
  await fleet.stop()
})

const node = (i: number): SshdNode => fleet.nodes[i] as SshdNode

/** Every entry (dotfiles too) with its bytes. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir)).sort()
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, sha256(await readFile(join(dir, n)))] as const)))
}

describe('SSH nodes through the service', () => {
  it('a wrong pinned key: HOST_KEY_MISMATCH, the directory untouched, the presented key recorded', async (t) => {
    const app = await sshFleetApp(t, fleet)
    const target = node(0)
    await writeFile(join(target.manifests, 'existing.yaml'), podYaml('existing'))
    const before = await snapshot(target.manifests)
    await app.addNode(target, { ssh: { hostKeyFingerprint: node(1).fingerprint } })

    const created = await app.gql(CREATE, { input: { node: target.name, manifest: podYaml('web') } })
    assert.equal(created.data.createStaticPod.userErrors[0]?.code, 'HOST_KEY_MISMATCH')
    assert.match(created.data.createStaticPod.userErrors[0].message, new RegExp(target.fingerprint.replace(/[+/]/g, '\\$&')))
    const listed = await app.gql(`{ staticPods(maxAgeSeconds: 0) { name } nodes { name observedHostKeyFingerprint agent { reachable lastError } } }`)
    assert.deepEqual(listed.errors?.map((e) => [e.extensions?.code, e.extensions?.node]), [['HOST_KEY_MISMATCH', target.name]])
    assert.equal(listed.data.nodes[0].observedHostKeyFingerprint, sshKeygenFingerprint(target.hostKeyPubFile))
    assert.equal(listed.data.nodes[0].agent.reachable, false)
    assert.deepEqual(await snapshot(target.manifests), before)
    assert.equal(existsSync(join(app.dir, 'ssh-state', target.name)), false, 'no lock, no backup: nothing was sent')
    assert.equal(app.app.services.agents.sshPoolStats()?.connectionsOpened, 0)
  })

  it('unpinned: NODE_UNVERIFIED, nothing read or written, observedHostKeyFingerprint is ssh-keygen -lf of its host key', async (t) => {
    const app = await sshFleetApp(t, fleet)
    const target = node(1)
    const before = await snapshot(target.manifests)
    const registered = await app.gql(
      `mutation($input: RegisterNodeInput!) { registerNode(input: $input) { node { observedHostKeyFingerprint } userErrors { code } } }`,
      { input: { name: target.name, host: '127.0.0.1', port: target.port, user: fleet.user, staticPodPath: target.manifests } },
    )
    assert.deepEqual(registered.data.registerNode, { node: { observedHostKeyFingerprint: null }, userErrors: [] }, 'registering contacts nothing')

    const created = await app.gql(CREATE, { input: { node: target.name, manifest: podYaml('web') } })
    assert.equal(created.data.createStaticPod.userErrors[0]?.code, 'NODE_UNVERIFIED')
    const listed = await app.gql(`{ staticPods(maxAgeSeconds: 0) { name } node(name: "${target.name}") { hostKeyFingerprint observedHostKeyFingerprint } }`)
    assert.deepEqual(listed.errors?.map((e) => [e.extensions?.code, e.extensions?.node]), [['NODE_UNVERIFIED', target.name]])
    assert.deepEqual(listed.data.node, { hostKeyFingerprint: null, observedHostKeyFingerprint: sshKeygenFingerprint(target.hostKeyPubFile) })
    assert.deepEqual(await snapshot(target.manifests), before)
    assert.equal(existsSync(join(app.dir, 'ssh-state', target.name)), false)
    assert.equal(app.app.services.agents.sshPoolStats()?.connectionsOpened, 0, 'never logged in')

    // Pinning the observed key is all it takes.
    await app.gql(`mutation($fp: String!) { updateNode(input: {name: "${target.name}", hostKeyFingerprint: $fp}) { userErrors { code } } }`, {
      fp: listed.data.node.observedHostKeyFingerprint,
    })
    const now = await app.gql(CREATE, { input: { node: target.name, manifest: podYaml('web') } })
    assert.deepEqual(now.data.createStaticPod.userErrors, [])
    assert.deepEqual(await kubeletVisibleFiles(target.manifests), ['web.yaml'])
  })

  it('sshd killed between the temp write and the rename: old manifest intact, no non-dot file; the next write succeeds and clears the lock', async (t) => {
    const target = node(2)
    const pool = new SshPool({ ...SSH_POOL_DEFAULTS, privateKey: await readFile(fleet.clientKeyFile, 'utf8'), connectTimeoutMs: 3_000, operationTimeoutMs: 5_000 })
    t.after(() => pool.close())
    const stateDir = join(fleet.root, 'kill-state')
    let killDuringWrite = false
    const agent = createSshAgent({
      ...SSH_AGENT_DEFAULTS,
      endpoint: { nodeName: target.name, host: '127.0.0.1', port: target.port, username: fleet.user, hostKeyFingerprint: target.fingerprint },
      pool,
      staticPodPath: target.manifests,
      stateDir,
      hooks: {
        afterTempWrite: async () => {
          if (killDuringWrite) await target.kill() // the daemon and the session serving us
        },
      },
    })
    const old = Buffer.from(podYaml('kube-apiserver', 'registry.k8s.io/kube-apiserver:v1.30.1'))
    const next = Buffer.from(podYaml('kube-apiserver', 'registry.k8s.io/kube-apiserver:v1.30.2'))
    await agent.withLock({ actor: 't', instance: 'i' }, () => agent.writeManifest('kube-apiserver.yaml', old))

    killDuringWrite = true
    await assert.rejects(
      agent.withLock({ actor: 't', instance: 'i' }, () => agent.writeManifest('kube-apiserver.yaml', next)),
      (err) => isServiceError(err) && err.code === 'NODE_UNREACHABLE',
    )
    assert.deepEqual(await readFile(join(target.manifests, 'kube-apiserver.yaml')), old)
    assert.deepEqual(await kubeletVisibleFiles(target.manifests), ['kube-apiserver.yaml'])
    assert.ok((await readdir(stateDir)).includes(LOCK_FILE_NAME), 'the lock could not be released while the node was away')
    assert.ok((await readdir(target.manifests)).some((n) => n.startsWith('.')), 'the flushed temp file is left, as a dotfile')

    killDuringWrite = false
    await target.start()
    const started = performance.now()
    await agent.withLock({ actor: 't', instance: 'i' }, () => agent.writeManifest('kube-apiserver.yaml', next))
    assert.ok(performance.now() - started < 3_000, 'our own stale lock is cleared, not waited out')
    assert.deepEqual(await readFile(join(target.manifests, 'kube-apiserver.yaml')), next)
    assert.deepEqual(await readdir(target.manifests), ['kube-apiserver.yaml'], 'the leftover temp file is swept too')
    assert.deepEqual(await readdir(stateDir), [], 'lock released')
  })

  it('two service instances (two processes), 20 concurrent compare-and-swap updates on one SSH node: exactly one wins', async (t) => {
    const target = node(3)
    const original = podYaml('web', 'nginx:1')
    await writeFile(join(target.manifests, 'web.yaml'), original)
    const work = join(fleet.root, 'cas')
    await mkdir(work, { recursive: true })
    const goFile = join(work, 'go')
    const spec = JSON.stringify({
      name: target.name,
      port: target.port,
      user: fleet.user,
      staticPodPath: target.manifests,
      hostKeyFingerprint: target.fingerprint,
      keyFile: fleet.clientKeyFile,
      stateDir: join(work, 'ssh-state'),
      dir: work,
    })
    const children = ['a', 'b'].map((instance) => spawnTsChild(t, serviceChild, [spec, goFile, sha256(original), '10', instance]))
    await Promise.all(children.map((c) => c.waitForLine('READY', 60_000)))
    await writeFile(goFile, 'go')
    const lines = await Promise.all(children.map((c) => c.waitForLine('RESULT ', 60_000)))
    const results = lines.flatMap((l) => JSON.parse(l.slice('RESULT '.length)) as string[])
    assert.equal(results.length, 20)
    assert.deepEqual(results.filter((r) => r === 'OK').length, 1, results.join(' '))
    assert.deepEqual(results.filter((r) => r !== 'OK'), Array(19).fill('CONFLICT'))
    assert.notEqual(await readFile(join(target.manifests, 'web.yaml'), 'utf8'), original)
    assert.deepEqual(await kubeletVisibleFiles(target.manifests), ['web.yaml'])
  })

  it('runtime from crictl and kubelet health through the node, per pod; a node without them degrades with reasons', async (t) => {
    const app = await sshFleetApp(t, fleet, { SSH_KUBELET_HEALTHZ_PORT: String(kubeletPort) })
    const withRuntime = node(4)
    const bare = node(5)
    await writeFile(join(withRuntime.manifests, 'etcd.yaml'), podYaml('etcd', 'registry.k8s.io/etcd:3.5.12-0', '  namespace: kube-system\n'))
    await writeFile(join(bare.manifests, 'web.yaml'), podYaml('web'))
    await app.addNode(withRuntime)
    await app.addNode(bare)
    // The bare node's sshd forwards to a port where nothing listens: its own app setting would be per service, so stop the kubelet stand-in for it by using another app below.
    const res = await app.gql(`{ nodes { name kubelet { healthy } kubeletUnavailableReason runtimeUnavailableReason staticPods(maxAgeSeconds: 0) { name runtime { state containers { name state image } } } } }`)
    assert.equal(res.errors, undefined, JSON.stringify(res.errors))
    const [first, second] = res.data.nodes
    assert.deepEqual(first, {
      name: withRuntime.name,
      kubelet: { healthy: true },
      kubeletUnavailableReason: null,
      runtimeUnavailableReason: null,
      staticPods: [{ name: 'etcd', runtime: { state: 'READY', containers: [{ name: 'main', state: 'RUNNING', image: 'registry.k8s.io/etcd:3.5.12-0' }] } }],
    })
    assert.equal(second.runtimeUnavailableReason, 'crictl not found on the node')
    assert.deepEqual(second.staticPods, [{ name: 'web', runtime: null }])

    const noKubelet = await sshFleetApp(t, fleet)
    await noKubelet.addNode(bare)
    const degraded = await noKubelet.gql(`{ nodes { kubelet { healthy } kubeletUnavailableReason agent { reachable } } }`)
    assert.equal(degraded.errors, undefined)
    assert.equal(degraded.data.nodes[0].kubelet, null)
    assert.equal(degraded.data.nodes[0].agent.reachable, true)
    assert.match(degraded.data.nodes[0].kubeletUnavailableReason, /no kubelet answers on 127\.0\.0\.1:9 on the node/)
  })

  it('a node registered without staticPodPath gets the one its kubelet config names, recorded at first contact', async (t) => {
    const target = node(0)
    const kubeletConfig = join(target.dir, 'kubelet-config.yaml')
    const manifests = join(target.dir, 'kubelet-manifests')
    await mkdir(manifests, { recursive: true })
    await writeFile(join(manifests, 'etcd.yaml'), podYaml('etcd'))
    await writeFile(kubeletConfig, `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: ${manifests}\n`)
    const app = await sshFleetApp(t, fleet, { SSH_KUBELET_CONFIG_PATH: kubeletConfig })
    const registered = await app.gql(
      `mutation($input: RegisterNodeInput!) { registerNode(input: $input) { node { staticPodPath } userErrors { code } } }`,
      { input: { name: target.name, host: '127.0.0.1', port: target.port, user: fleet.user, hostKeyFingerprint: target.fingerprint } },
    )
    assert.equal(registered.data.registerNode.node.staticPodPath, '/etc/kubernetes/manifests', 'the kubeadm default until the node is reached')
    const listed = await app.gql(`{ staticPods(maxAgeSeconds: 0) { name } }`)
    assert.deepEqual(listed.data.staticPods, [{ name: 'etcd' }])
    const after = await app.gql(`{ node(name: "${target.name}") { staticPodPath } }`)
    assert.equal(after.data.node.staticPodPath, manifests)

    // A path an admin gave is taken as given.
    const explicit = await sshFleetApp(t, fleet, { SSH_KUBELET_CONFIG_PATH: kubeletConfig })
    await explicit.addNode(target, { staticPodPath: target.manifests })
    await explicit.gql(`{ staticPods(maxAgeSeconds: 0) { name } }`)
    assert.equal((await explicit.app.services.store.getNode(target.name))?.staticPodPath, target.manifests)
  })

  it("an admin's updateNode that lands while discovery records the path is kept whole, and a path it gives wins", async (t) => {
    const target = node(5)
    const kubeletConfig = join(target.dir, 'kubelet-config-race.yaml')
    const manifests = join(target.dir, 'kubelet-manifests-race')
    await mkdir(manifests, { recursive: true })
    await writeFile(kubeletConfig, `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: ${manifests}\n`)
    const register = `mutation($input: RegisterNodeInput!) { registerNode(input: $input) { userErrors { code } } }`
    const update = `mutation($input: UpdateNodeInput!) { updateNode(input: $input) { userErrors { code message } } }`
    const input = { name: target.name, host: '127.0.0.1', port: target.port, user: fleet.user, hostKeyFingerprint: target.fingerprint }

    for (const change of [{ labels: [{ key: 'zone', value: 'b' }] }, { labels: [{ key: 'zone', value: 'c' }], staticPodPath: target.manifests }]) {
      const app = await sshFleetApp(t, fleet, { SSH_KUBELET_CONFIG_PATH: kubeletConfig })
      assert.deepEqual((await app.gql(register, { input })).data.registerNode.userErrors, [])
      // The admin's update is made in the middle of recording the discovered
      // path: after whatever the node service reads for it, before it writes.
      const store = app.app.services.store
      const nodes = app.app.services.nodes
      let adminUpdated = false
      const adminUpdate = async () => {
        if (adminUpdated) return
        adminUpdated = true
        assert.deepEqual((await app.gql(update, { input: { name: target.name, ...change } })).data.updateNode.userErrors, [])
      }
      const recordFacts = nodes.recordFacts.bind(nodes)
      const getNode = store.getNode.bind(store)
      const recordNodeFacts = store.recordNodeFacts.bind(store)
      const updateNode = store.updateNode.bind(store)
      let discovering = false
      nodes.recordFacts = async (name, facts) => {
        discovering = facts.discoveredStaticPodPath !== undefined
        try {
          return await recordFacts(name, facts)
        } finally {
          discovering = false
        }
      }
      store.getNode = async (name) => {
        const read = await getNode(name)
        if (discovering) await adminUpdate()
        return read
      }
      store.recordNodeFacts = async (name, facts) => {
        if (discovering) await adminUpdate()
        return recordNodeFacts(name, facts)
      }
      store.updateNode = async (record) => {
        if (discovering) await adminUpdate()
        return updateNode(record)
      }
      await app.gql(`{ staticPods(maxAgeSeconds: 0) { name } }`)
      assert.equal(adminUpdated, true, 'the path was discovered and recorded')
      const stored = await getNode(target.name)
      assert.deepEqual(stored?.labels, change.labels, "the admin's labels are kept")
      assert.equal(stored?.staticPodPath, change.staticPodPath ?? manifests, change.staticPodPath ? "the admin's path wins" : 'the discovered path is kept')
    }
  })
})
