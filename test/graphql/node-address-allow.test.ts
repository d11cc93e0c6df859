// NODE_ADDRESS_ALLOW through the API: registerNode/updateNode refuse a host
// (or port) outside the list and store nothing, and the SSH pool refuses, at
// connect time, a node whose record is outside it, sending it nothing. Real
// sshd on 127.0.0.1 (test/helper.ts's shared one), real listeners counting
// the connections they get.
import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { build, sharedSshd, stopSharedSshd, type TestApp } from '../helper.ts'
import type { SshdFleet, SshdNode } from '../support/sshd.ts'
import { sshNodeRecord } from '../support/node-record.ts'

const REGISTER = `mutation($input: RegisterNodeInput!) { registerNode(input: $input) { node { name host port } userErrors { code field message } } }`
const UPDATE = `mutation($input: UpdateNodeInput!) { updateNode(input: $input) { node { name host port labels { key value } } userErrors { code field message } } }`
const NOT_ALLOWED = /address not allowed by NODE_ADDRESS_ALLOW/

let fleet: SshdFleet
let sshd: SshdNode
/** A listener that is not in the list, counting every connection it gets. */
let trap: Server
let trapPort: number
let trapConnections = 0
const trapSockets = new Set<Socket>()

before(async () => {
  fleet = await sharedSshd()
  sshd = fleet.nodes[0] as SshdNode
  trap = createServer((socket) => {
    trapConnections++
    trapSockets.add(socket)
    socket.on('error', () => undefined)
    socket.once('close', () => trapSockets.delete(socket))
  })
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve))
  trapPort = (trap.address() as AddressInfo).port
})

after(async () => {
  for (const s of trapSockets) s.destroy()
  await new Promise((resolve) => trap.close(resolve))
  await stopSharedSshd()
})

/** The list: 10.0.0.0/8 on port 22, the test sshd's port on loopback, and an IPv6 range. */
const allowList = (): string => `10.0.0.0/8:22, 127.0.0.1:${sshd.port}, [fd00::/8]:22`

async function put(app: TestApp, name: string, host: string, port: number, hostKeyFingerprint: string | null): Promise<void> {
  await app.app.services.store.createNode(sshNodeRecord({ name, host, port, user: fleet.user, staticPodPath: app.manifests, hostKeyFingerprint }))
}

describe('NODE_ADDRESS_ALLOW', () => {
  it('registerNode: a host or port outside the list is VALIDATION_FAILED naming the field, and nothing is stored', async (t) => {
    const app = await build(t, { env: { NODE_ADDRESS_ALLOW: allowList() } })
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ host: '192.168.1.10' }, 'host'],
      [{ host: '10.0.0.11', port: 2222 }, 'port'],
      [{ host: '127.0.0.1', port: 22 }, 'port'],
      [{ host: '127.0.0.2', port: sshd.port }, 'host'],
      [{ host: '::ffff:192.168.1.10' }, 'host'],
      [{ host: '::ffff:127.0.0.1', port: 9 }, 'port'],
      [{ host: 'fe80::1' }, 'host'],
      [{ host: 'localhost', port: 9 }, 'port'],
      [{ host: 'unresolvable-node.test' }, 'host'],
    ]
    for (const [input, field] of cases) {
      const res = await app.gql(REGISTER, { input: { name: 'refused', ...input } })
      const label = JSON.stringify(input)
      assert.equal(res.data.registerNode.node, null, label)
      const [err, ...more] = res.data.registerNode.userErrors
      assert.deepEqual(more, [], label)
      assert.equal(err?.code, 'VALIDATION_FAILED', label)
      assert.deepEqual(err.field, [field], label)
      assert.match(err.message, new RegExp(`^${field}: address not allowed by NODE_ADDRESS_ALLOW \\(`), label)
      assert.ok(err.message.includes(String(input.host)), label)
      // The host as given, and nothing else that looks like an address: not the list, not what a name resolved to.
      assert.doesNotMatch(err.message.replace(String(input.host), ''), /\d+\.\d+\.\d+\.\d+|[0-9a-f]*::[0-9a-f]*/i, label)
    }
    assert.deepEqual((await app.gql('{ nodes { name } }')).data.nodes, [{ name: 'local' }], 'nothing stored')

    // Inside the list: an IP literal, a host name that resolves into it, an IPv6 address.
    for (const [name, host, port] of [
      ['cp-1', '10.0.0.11', 22],
      ['lo', 'localhost', sshd.port],
      ['v6', 'fd00::11', 22],
    ] as const) {
      const res = await app.gql(REGISTER, { input: { name, host, port } })
      assert.deepEqual(res.data.registerNode, { node: { name, host, port }, userErrors: [] }, name)
    }
    const audit = await app.gql('{ auditEvents { action result } }')
    const results = audit.data.auditEvents.map((e: { action: string; result: string }) => `${e.action}:${e.result}`)
    assert.equal(results.filter((r: string) => r === 'registerNode:VALIDATION_FAILED').length, cases.length)
    assert.equal(results.filter((r: string) => r === 'registerNode:OK').length, 3)
  })

  it('updateNode: moving a node outside the list is refused and changes nothing; other fields stay editable', async (t) => {
    const app = await build(t, { env: { NODE_ADDRESS_ALLOW: allowList() } })
    await app.gql(REGISTER, { input: { name: 'cp-1', host: '10.0.0.11' } })
    const moved = await app.gql(UPDATE, { input: { name: 'cp-1', host: '192.168.1.10' } })
    assert.equal(moved.data.updateNode.node, null)
    assert.deepEqual(moved.data.updateNode.userErrors.map((e: { code: string; field: string[] }) => [e.code, e.field]), [['VALIDATION_FAILED', ['host']]])
    assert.match(moved.data.updateNode.userErrors[0].message, NOT_ALLOWED)
    const reported = await app.gql(UPDATE, { input: { name: 'cp-1', port: 2222 } })
    assert.deepEqual(reported.data.updateNode.userErrors.map((e: { field: string[] }) => e.field), [['port']])
    assert.deepEqual((await app.gql('{ node(name: "cp-1") { host port } }')).data.node, { host: '10.0.0.11', port: 22 })

    // A node stored before the list changed: its labels can still be edited, its address cannot be kept outside.
    await put(app, 'old', '192.168.1.10', 22, null)
    const relabelled = await app.gql(UPDATE, { input: { name: 'old', labels: [{ key: 'tier', value: 'edge' }] } })
    assert.deepEqual(relabelled.data.updateNode.userErrors, [])
    const back = await app.gql(UPDATE, { input: { name: 'old', host: '10.0.0.12' } })
    assert.deepEqual(back.data.updateNode.node, { name: 'old', host: '10.0.0.12', port: 22, labels: [{ key: 'tier', value: 'edge' }] })

    // The local node is exempt: LOCAL_NODE_PATH is the operator's own.
    const local = await app.gql('{ node(name: "local") { agent { reachable } } }')
    assert.deepEqual(local.data.node, { agent: { reachable: true } })
  })

  it('at connect time: a stored node outside the list is NODE_UNREACHABLE and gets no packet, pinned or not; one inside is read', async (t) => {
    const app = await build(t, { node: 'ssh', env: { NODE_ADDRESS_ALLOW: allowList() } })
    // Written straight into the store, as if registered before NODE_ADDRESS_ALLOW said otherwise.
    await put(app, 'pinned-out', '127.0.0.1', trapPort, sshd.fingerprint)
    await put(app, 'unpinned-out', '127.0.0.1', trapPort, null)
    await put(app, 'name-out', 'localhost', trapPort, sshd.fingerprint)
    const before = trapConnections

    const res = await app.gql('{ staticPods(maxAgeSeconds: 0) { nodeName } nodes { name agent { reachable lastError } } }')
    const agents = new Map(res.data.nodes.map((n: { name: string; agent: { reachable: boolean; lastError: string | null } }) => [n.name, n.agent]))
    for (const [name, host] of [
      ['pinned-out', '127.0.0.1'],
      ['unpinned-out', '127.0.0.1'],
      ['name-out', 'localhost'],
    ]) {
      assert.deepEqual(
        agents.get(name),
        { reachable: false, lastError: `NODE_UNREACHABLE: node ${name} (${host}:${trapPort}) cannot be reached over SSH: address not allowed by NODE_ADDRESS_ALLOW` },
        name,
      )
    }
    assert.deepEqual(
      (res.errors ?? []).map((e) => [e.extensions?.node, e.extensions?.code]).sort(),
      [
        ['name-out', 'NODE_UNREACHABLE'],
        ['pinned-out', 'NODE_UNREACHABLE'],
        ['unpinned-out', 'NODE_UNREACHABLE'],
      ],
    )
    assert.equal(trapConnections, before, 'not one connection to an address outside the list')

    // The node inside the list (127.0.0.1 on the sshd's port) is read as ever, and so is one registered by a name that resolves there.
    assert.equal((agents.get(app.nodeName) as { reachable: boolean }).reachable, true)
    const reg = await app.gql(REGISTER, { input: { name: 'by-name', host: 'localhost', port: sshd.port, user: fleet.user, staticPodPath: app.manifests, hostKeyFingerprint: sshd.fingerprint } })
    assert.deepEqual(reg.data.registerNode.userErrors, [])
    const byName = await app.gql('{ node(name: "by-name") { staticPods(maxAgeSeconds: 0) { name } agent { reachable lastError } } }')
    assert.deepEqual(byName.data.node.agent, { reachable: true, lastError: null })
    assert.equal(trapConnections, before)
  })

  it('unset: nodes may be anywhere', async (t) => {
    const app = await build(t)
    const res = await app.gql(REGISTER, { input: { name: 'anywhere', host: '192.168.1.10', port: 2222 } })
    assert.deepEqual(res.data.registerNode.userErrors, [])
  })
})
