// Jump hosts over real OpenSSH sshd, through GraphQL: nodes that this process
// cannot reach at all, because they sit in network namespaces made here
// (test/support/netns.ts) whose only way in is a veth pair to a jump host's
// namespace, and the jump host's own namespace is the only one with a link
// to this process's:
//
//   this process ── jump-a ──┬── node-a1, node-a2   (behind jump-a)
//                            └── jump-b ── node-b   (behind jump-b, behind jump-a)
//   this process ── direct-1, direct-2              (127.0.0.1, no jump host)
//
// It shows that a direct connection to a node behind a jump host does not
// work, that nothing is sent through an unpinned (or wrongly pinned) jump
// host, that reads and writes go through one connection to the jump host
// shared by the nodes behind it, that a chain of two works, and that killing
// the jump host's sshd makes exactly its nodes NODE_UNREACHABLE, within the
// connect timeout, until it is back. Counts come from the kernel of each
// namespace (ss, /proc/net/snmp), not from the service.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { podYaml } from '../helper.ts'
import { createTestNetwork } from '../support/netns.ts'
import { sshFleetApp } from '../support/ssh-app.ts'
import { sshKeygenFingerprint, startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'

const CONNECT_TIMEOUT_MS = 3_000
/** Over the connect timeout: a loaded 2-core machine answering a fleet query. */
const MARGIN_MS = 2_000

const PUT = `mutation($input: JumpHostInput!) { putJumpHost(input: $input) { jumpHost { name host port user hostKeyFingerprint via } userErrors { code field message } } }`
const REMOVE = `mutation($name: String!) { removeJumpHost(name: $name) { removed userErrors { code field message } } }`
const REGISTER = `mutation($input: RegisterNodeInput!) { registerNode(input: $input) { node { name via } userErrors { code field message } } }`
const JUMP_HOSTS = `{ jumpHosts { name reachable lastError hostKeyFingerprint observedHostKeyFingerprint via nodes } }`
const CREATE = `mutation($input: CreateStaticPodInput!) { createStaticPod(input: $input) { staticPod { hash } userErrors { code message } } }`
const UPDATE = `mutation($input: UpdateStaticPodInput!) { updateStaticPod(input: $input) { staticPod { hash revision } userErrors { code message } } }`
const LIST = `{ staticPods(maxAgeSeconds: 0) { nodeName name hash stale } nodes { name agent { reachable lastError } } }`

type JumpHostView = { name: string; reachable: boolean; lastError: string | null; hostKeyFingerprint: string | null; observedHostKeyFingerprint: string | null; via: string | null; nodes: string[] }

test('jump hosts: nodes reachable only through them (real sshd in network namespaces)', { timeout: 300_000 }, async (t) => {
  const net = createTestNetwork()
  const started: { fleet?: SshdFleet } = {}
  // Daemons first (a namespace lives on while a process runs in it), then every namespace and veth.
  t.after(async () => {
    try {
      await started.fleet?.stop()
    } finally {
      net.remove()
    }
  })
  const nsA = net.namespace('a')
  const nsB = net.namespace('b')
  const nsN1 = net.namespace('n1')
  const nsN2 = net.namespace('n2')
  const toA = net.link('host', nsA)
  const aToN1 = net.link(nsA, nsN1)
  const aToB = net.link(nsA, nsB)
  const bToN2 = net.link(nsB, nsN2)
  const placement = [
    { namespace: nsA, listen: [toA.b, aToN1.a, aToB.a] }, // jump-a
    { namespace: nsB, listen: [aToB.b, bToN2.a] }, // jump-b
    { namespace: nsN1, listen: [aToN1.b] }, // node-a1
    { namespace: nsN1, listen: [aToN1.b] }, // node-a2
    { namespace: nsN2, listen: [bToN2.b] }, // node-b
    undefined, // direct-1
    undefined, // direct-2
  ]
  const fleet = await startSshdFleet(placement.length, { prefix: 'jmp', node: (i) => ({ network: placement[i], crictl: i < 2 ? 'none' : 'from-manifests' }) })
  started.fleet = fleet
  const [jumpA, jumpB, nodeA1, nodeA2, nodeB, direct1, direct2] = fleet.nodes as [SshdNode, SshdNode, SshdNode, SshdNode, SshdNode, SshdNode, SshdNode]
  const { user } = fleet
  // Registered under the daemons' own names: the crictl stand-in names each sandbox <pod>-<node> by them.
  const [A1, A2, B, D1, D2] = [nodeA1.name, nodeA2.name, nodeB.name, direct1.name, direct2.name]
  const app = await sshFleetApp(t, fleet, { SSH_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS) })
  const gql = app.gql.bind(app)

  const putJumpHost = async (input: Record<string, unknown>) => (await gql(PUT, { input: { user, ...input } })).data.putJumpHost as { jumpHost: Record<string, unknown> | null; userErrors: Array<{ code: string; field: string[] | null; message: string }> }
  const registerNode = async (node: SshdNode, name: string, host: string, via: string | null) =>
    (await gql(REGISTER, { input: { name, host, port: node.port, user, staticPodPath: node.manifests, hostKeyFingerprint: node.fingerprint, via } })).data.registerNode as {
      node: { name: string; via: string | null } | null
      userErrors: Array<{ code: string; field: string[] | null; message: string }>
    }
  const jumpHosts = async (): Promise<Map<string, JumpHostView>> => {
    const res = await gql(JUMP_HOSTS)
    assert.equal(res.errors, undefined, JSON.stringify(res.errors))
    return new Map((res.data.jumpHosts as JumpHostView[]).map((j) => [j.name, j]))
  }
  const readNode = async (name: string) => gql(`query($node: String!) { staticPods(node: $node, maxAgeSeconds: 0) { name hash } }`, { node: name })
  const create = async (node: string, name: string) => (await gql(CREATE, { input: { node, manifest: podYaml(name) } })).data.createStaticPod as { staticPod: { hash: string } | null; userErrors: Array<{ code: string; message: string }> }

  await t.test('a direct connection to a node behind a jump host does not work: nothing reaches it', async () => {
    const before = net.passiveOpens(nsN1)
    assert.deepEqual((await registerNode(nodeA1, `${A1}-direct`, aToN1.b, null)).userErrors, [])
    const res = await readNode(`${A1}-direct`)
    assert.deepEqual(res.errors?.map((e) => e.extensions?.code), ['NODE_UNREACHABLE'], JSON.stringify(res.errors))
    assert.equal(net.passiveOpens(nsN1), before, 'no TCP connection reached the node')
    assert.equal((await gql(`mutation { removeNode(name: "${A1}-direct") { removed } }`)).data.removeNode.removed, true)
  })

  await t.test('a node naming a jump host that is not registered is VALIDATION_FAILED on via', async () => {
    const { node, userErrors } = await registerNode(nodeA1, A1, aToN1.b, 'jump-a')
    assert.equal(node, null)
    assert.deepEqual(userErrors.map((e) => [e.code, e.field]), [['VALIDATION_FAILED', ['via']]])
    assert.match(userErrors[0]?.message ?? '', /no jump host named "jump-a" is registered/)
  })

  await t.test('an unpinned jump host: nothing is sent through it, and the key it presents is recorded for an admin to pin', async () => {
    const put = await putJumpHost({ name: 'jump-a', host: toA.b, port: jumpA.port })
    assert.deepEqual(put.userErrors, [])
    assert.deepEqual(put.jumpHost, { name: 'jump-a', host: toA.b, port: jumpA.port, user, hostKeyFingerprint: null, via: null })
    assert.deepEqual((await registerNode(nodeA1, A1, aToN1.b, 'jump-a')).userErrors, [])
    const before = net.passiveOpens(nsN1)

    const res = await readNode(A1)
    assert.deepEqual(res.errors?.map((e) => e.extensions?.code), ['NODE_UNVERIFIED'], JSON.stringify(res.errors))
    assert.match(res.errors?.[0]?.message ?? '', new RegExp(`node ${A1} is reached through jump host jump-a, which has no pinned host key: nothing is sent through jump host jump-a until an admin pins its host key with putJumpHost`))

    const listed = (await jumpHosts()).get('jump-a')
    assert.equal(listed?.reachable, false)
    assert.match(listed?.lastError ?? '', /^NODE_UNVERIFIED: nothing is sent through jump host jump-a/)
    assert.equal(listed?.observedHostKeyFingerprint, sshKeygenFingerprint(jumpA.hostKeyPubFile), 'the key ssh-keygen -lf prints')
    assert.deepEqual(listed?.nodes, [A1])
    assert.equal(net.passiveOpens(nsN1), before, 'nothing reached the node')
  })

  await t.test('a jump host presenting another key than the pinned one: HOST_KEY_MISMATCH, nothing reaches the node', async () => {
    assert.deepEqual((await putJumpHost({ name: 'jump-a', host: toA.b, port: jumpA.port, hostKeyFingerprint: nodeB.fingerprint })).userErrors, [])
    const before = net.passiveOpens(nsN1)
    const res = await readNode(A1)
    assert.deepEqual(res.errors?.map((e) => e.extensions?.code), ['HOST_KEY_MISMATCH'], JSON.stringify(res.errors))
    assert.match(res.errors?.[0]?.message ?? '', new RegExp(`jump host jump-a \\(${toA.b.replace(/\./g, '\\.')}:${jumpA.port}\\) presented host key ${jumpA.fingerprint.replace(/[+/]/g, '\\$&')}, not the pinned`))
    assert.match(res.errors?.[0]?.message ?? '', /putJumpHost\(hostKeyFingerprint\)/)
    assert.equal(net.passiveOpens(nsN1), before, 'nothing reached the node')
  })

  await t.test('pinned: reads and writes through the jump host, one connection to it for every node behind it', async () => {
    assert.deepEqual((await putJumpHost({ name: 'jump-a', host: toA.b, port: jumpA.port, hostKeyFingerprint: jumpA.fingerprint })).userErrors, [])
    assert.deepEqual((await registerNode(nodeA2, A2, aToN1.b, 'jump-a')).userErrors, [])
    const jumpOpensBefore = net.passiveOpens(nsA)
    const nodeOpensBefore = net.passiveOpens(nsN1)

    for (const node of [A1, A2]) {
      const created = await create(node, 'web')
      assert.deepEqual(created.userErrors, [], node)
    }
    assert.equal(await readFile(join(nodeA1.manifests, 'web.yaml'), 'utf8'), podYaml('web'))
    assert.equal(await readFile(join(nodeA2.manifests, 'web.yaml'), 'utf8'), podYaml('web'))

    const listed = await gql(`{ staticPods(maxAgeSeconds: 0) { nodeName name hash stale } }`)
    assert.equal(listed.errors, undefined, JSON.stringify(listed.errors))
    const pods = listed.data.staticPods as Array<{ nodeName: string; name: string; hash: string; stale: boolean }>
    assert.deepEqual(pods.map((p) => [p.nodeName, p.name, p.stale]).sort(), [[A1, 'web', false], [A2, 'web', false]])

    const hash = pods.find((p) => p.nodeName === A1)?.hash
    const updated = (await gql(UPDATE, { input: { node: A1, name: 'web', expectedHash: hash, manifest: podYaml('web', 'nginx:1.28') } })).data.updateStaticPod
    assert.deepEqual(updated.userErrors, [])
    assert.equal(updated.staticPod.revision, 2)
    assert.equal(await readFile(join(nodeA1.manifests, 'web.yaml'), 'utf8'), podYaml('web', 'nginx:1.28'))
    // The runtime too: crictl runs on the node, over the same path.
    const runtime = await gql(`{ staticPod(node: "${A2}", name: "web", maxAgeSeconds: 0) { runtime { state } } }`)
    assert.equal(runtime.errors, undefined, JSON.stringify(runtime.errors))
    assert.equal(runtime.data.staticPod.runtime?.state, 'READY')

    assert.equal(net.passiveOpens(nsA) - jumpOpensBefore, 1, 'one TCP connection reached the jump host, for both nodes and every request')
    assert.equal(net.establishedTo(nsA, jumpA.port), 1)
    assert.equal(net.passiveOpens(nsN1) - nodeOpensBefore, 2, 'one forwarded connection per node')
    assert.equal(app.app.services.agents.sshPoolStats()?.jumpHostConnections, 1)
    const jumpA_ = (await jumpHosts()).get('jump-a')
    assert.deepEqual([jumpA_?.reachable, jumpA_?.lastError, jumpA_?.nodes], [true, null, [A1, A2]])
  })

  await t.test('a chain of two jump hosts (like ssh -J jump-a,jump-b)', async () => {
    assert.deepEqual((await putJumpHost({ name: 'jump-b', host: aToB.b, port: jumpB.port, hostKeyFingerprint: jumpB.fingerprint, via: 'jump-a' })).userErrors, [])
    assert.deepEqual((await registerNode(nodeB, B, bToN2.b, 'jump-b')).userErrors, [])
    const created = await create(B, 'chained')
    assert.deepEqual(created.userErrors, [])
    assert.equal(await readFile(join(nodeB.manifests, 'chained.yaml'), 'utf8'), podYaml('chained'))
    const read = await readNode(B)
    assert.equal(read.errors, undefined, JSON.stringify(read.errors))
    assert.deepEqual((read.data.staticPods as Array<{ name: string; hash: string }>).map((p) => [p.name, p.hash]), [['chained', created.staticPod?.hash]])

    // jump-b's connection runs inside the one to jump-a.
    assert.equal(net.establishedTo(nsA, jumpA.port), 1)
    assert.equal(net.establishedTo(nsB, jumpB.port), 1)
    const listed = await jumpHosts()
    assert.deepEqual([listed.get('jump-a')?.reachable, listed.get('jump-a')?.nodes], [true, [A1, A2, B]])
    assert.deepEqual([listed.get('jump-b')?.reachable, listed.get('jump-b')?.via, listed.get('jump-b')?.nodes], [true, 'jump-a', [B]])
  })

  await t.test('chains stay sane: no loop, no jump host through itself, none removed while in use', async () => {
    const loop = await putJumpHost({ name: 'jump-a', host: toA.b, port: jumpA.port, hostKeyFingerprint: jumpA.fingerprint, via: 'jump-b' })
    assert.deepEqual(loop.userErrors.map((e) => [e.code, e.field]), [['VALIDATION_FAILED', ['via']]])
    assert.match(loop.userErrors[0]?.message ?? '', /jump-a via jump-b via jump-a would be a loop/)
    const self = await putJumpHost({ name: 'jump-b', host: aToB.b, port: jumpB.port, via: 'jump-b' })
    assert.deepEqual(self.userErrors.map((e) => [e.code, e.field]), [['VALIDATION_FAILED', ['via']]])
    const removed = (await gql(REMOVE, { name: 'jump-a' })).data.removeJumpHost
    assert.equal(removed.removed, false)
    assert.deepEqual(removed.userErrors.map((e: { code: string }) => e.code), ['CONFLICT'])
    assert.match(removed.userErrors[0].message, new RegExp(`nodes ${A1}, ${A2} and jump hosts jump-b are reached through it`))
    // Nothing changed: the chain still works.
    assert.equal((await readNode(B)).errors, undefined)
  })

  await t.test('the pool keeps its limits: SSH_MAX_CONNECTIONS counts the jump host, which is not closed to make room while used, and closes when idle', async (t) => {
    const IDLE_MS = 800
    const small = await sshFleetApp(t, fleet, { SSH_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS), SSH_MAX_CONNECTIONS: '2', SSH_IDLE_TIMEOUT_MS: String(IDLE_MS) })
    const input = { name: 'jump-a', host: toA.b, port: jumpA.port, user, hostKeyFingerprint: jumpA.fingerprint }
    assert.deepEqual((await small.gql(PUT, { input })).data.putJumpHost.userErrors, [])
    for (const [node, name] of [[nodeA1, A1], [nodeA2, A2]] as const) {
      const registered = await small.gql(REGISTER, { input: { name, host: aToN1.b, port: node.port, user, staticPodPath: node.manifests, hostKeyFingerprint: node.fingerprint, via: 'jump-a' } })
      assert.deepEqual(registered.data.registerNode.userErrors, [])
    }
    const stats = () => small.app.services.agents.sshPoolStats()
    // Two slots: the jump host's and one node's; each read of the other node closes the idle one to make room.
    for (const name of [A1, A2, A1, A2]) {
      const res = await small.gql(`query($node: String!) { staticPods(node: $node, maxAgeSeconds: 0) { name } }`, { node: name })
      assert.equal(res.errors, undefined, `${name}: ${JSON.stringify(res.errors)}`)
      assert.ok((stats()?.connectionsOpen ?? 0) <= 2, `${stats()?.connectionsOpen} open`)
    }
    assert.equal(stats()?.jumpHostConnections, 1)
    assert.equal(stats()?.connectionsOpened, 1 + 4, 'the jump host once, a node connection per read')
    // Idle: the node's connection after IDLE_MS, then the jump host's after IDLE_MS more.
    const deadline = Date.now() + 4 * IDLE_MS + 5_000
    while ((stats()?.jumpHostConnections ?? 0) > 0 && Date.now() < deadline) await sleep(100)
    assert.equal(stats()?.jumpHostConnections, 0)
    assert.equal(stats()?.connectionsOpen, 0)
    for (let i = 0; i < 50 && net.establishedTo(nsA, jumpA.port) > 1; i++) await sleep(100)
    // The other app's connection to jump-a is the one left.
    assert.equal(net.establishedTo(nsA, jumpA.port), 1)
  })

  await t.test("killing the jump host's sshd: its nodes are NODE_UNREACHABLE and no others, within the connect timeout; back when it is", async () => {
    for (const [node, name] of [[direct1, D1], [direct2, D2]] as const) {
      assert.deepEqual((await registerNode(node, name, '127.0.0.1', null)).userErrors, [])
      assert.deepEqual((await create(name, 'web')).userErrors, [])
    }
    const warm = await gql(LIST)
    assert.equal(warm.errors, undefined, JSON.stringify(warm.errors))

    await jumpA.kill()
    const started = performance.now()
    const res = await gql(LIST)
    const elapsed = performance.now() - started
    assert.ok(elapsed < CONNECT_TIMEOUT_MS + MARGIN_MS, `answered in ${Math.round(elapsed)} ms`)
    const behindA = [A1, A2, B]
    assert.deepEqual(
      (res.errors ?? []).map((e) => [e.extensions?.code, e.extensions?.node]).sort(),
      behindA.map((n) => ['NODE_UNREACHABLE', n]),
    )
    const pods = res.data.staticPods as Array<{ nodeName: string; stale: boolean }>
    assert.deepEqual(pods.filter((p) => p.stale).map((p) => p.nodeName).sort(), behindA, 'their last state, marked stale')
    assert.deepEqual(pods.filter((p) => !p.stale).map((p) => p.nodeName).sort(), [D1, D2])
    const agents = new Map((res.data.nodes as Array<{ name: string; agent: { reachable: boolean; lastError: string | null } }>).map((n) => [n.name, n.agent]))
    for (const name of behindA) {
      assert.equal(agents.get(name)?.reachable, false, name)
      // Lost mid-operation or refused at connect, depending on when the read met the loss: either names jump-a.
      assert.match(agents.get(name)?.lastError ?? '', new RegExp(`^NODE_UNREACHABLE: node ${name}\\b.*jump host jump-a\\b`), name)
    }
    const down = await jumpHosts()
    assert.deepEqual([down.get('jump-a')?.reachable, down.get('jump-b')?.reachable], [false, false])
    assert.match(down.get('jump-a')?.lastError ?? '', /^NODE_UNREACHABLE: jump host jump-a \(.*\) cannot be reached over SSH: connection refused/)

    await jumpA.start()
    const back = await gql(LIST)
    assert.equal(back.errors, undefined, JSON.stringify(back.errors))
    assert.ok((back.data.staticPods as Array<{ stale: boolean }>).every((p) => !p.stale))
    assert.deepEqual((await create(B, 'after-restart')).userErrors, [])
    assert.equal(await readFile(join(nodeB.manifests, 'after-restart.yaml'), 'utf8'), podYaml('after-restart'))
  })
})
