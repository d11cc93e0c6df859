// The rules of jump hosts through GraphQL (services/jump-hosts.ts), on the
// real app and SQLite: what putJumpHost accepts and refuses, chains (no loop,
// bounded length counting the jump hosts behind), removeJumpHost while in use,
// a node's via, NODE_ADDRESS_ALLOW on the first hop only, roles, and the audit
// trail. Connections through jump hosts: test/agents/jump-hosts.test.ts.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { describe, it, type TestContext } from 'node:test'
import { MAX_JUMP_HOSTS_IN_CHAIN } from '../../src/agents/registry.ts'
import { build, type GqlResponse, type TestApp } from '../helper.ts'

const PUT = `mutation($input: JumpHostInput!) { putJumpHost(input: $input) { jumpHost { name host port user hostKeyFingerprint observedHostKeyFingerprint via } userErrors { code field message } } }`
const REMOVE = `mutation($name: String!) { removeJumpHost(name: $name) { removed userErrors { code field message } } }`
const REGISTER = `mutation($input: RegisterNodeInput!) { registerNode(input: $input) { node { name via } userErrors { code field message } } }`
const UPDATE = `mutation($input: UpdateNodeInput!) { updateNode(input: $input) { node { name host via } userErrors { code field message } } }`
const LIST = `{ jumpHosts { name host port user via nodes } }`
const FINGERPRINT = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s'

type Payload = { jumpHost: Record<string, unknown> | null; userErrors: Array<{ code: string; field: string[] | null; message: string }> }

async function put(app: TestApp, input: Record<string, unknown>): Promise<Payload> {
  const res = await app.gql(PUT, { input: { host: '10.0.0.1', user: 'jump', hostKeyFingerprint: FINGERPRINT, ...input } })
  assert.equal(res.errors, undefined, JSON.stringify(res.errors))
  return res.data.putJumpHost as Payload
}

const codes = (p: { userErrors: Array<{ code: string; field: string[] | null }> }) => p.userErrors.map((e) => [e.code, e.field])

describe('jump hosts (GraphQL)', () => {
  it('putJumpHost creates with the defaults, replaces in place, and lists by name', async (t) => {
    const app = await build(t)
    const created = await put(app, { name: 'bastion', host: 'bastion.example.internal' })
    assert.deepEqual(created, {
      jumpHost: { name: 'bastion', host: 'bastion.example.internal', port: 22, user: 'jump', hostKeyFingerprint: FINGERPRINT, observedHostKeyFingerprint: null, via: null },
      userErrors: [],
    })
    const inner = await put(app, { name: 'inner', host: '10.1.0.1', port: 2222, via: 'bastion', hostKeyFingerprint: null })
    assert.deepEqual(inner.userErrors, [])
    const replaced = await put(app, { name: 'bastion', host: '192.0.2.10', user: 'ops', via: '' })
    assert.deepEqual(replaced.jumpHost, { name: 'bastion', host: '192.0.2.10', port: 22, user: 'ops', hostKeyFingerprint: FINGERPRINT, observedHostKeyFingerprint: null, via: null })
    const listed = await app.gql(LIST)
    assert.deepEqual(listed.data.jumpHosts, [
      { name: 'bastion', host: '192.0.2.10', port: 22, user: 'ops', via: null, nodes: [] },
      { name: 'inner', host: '10.1.0.1', port: 2222, user: 'jump', via: 'bastion', nodes: [] },
    ])
  })

  it('putJumpHost refuses bad fields with VALIDATION_FAILED naming each, and stores nothing', async (t) => {
    const app = await build(t)
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: 'Bastion_1' }, 'name'],
      [{ name: 'b'.repeat(254) }, 'name'],
      [{ name: 'bastion', host: 'bad host;rm' }, 'host'],
      [{ name: 'bastion', port: 0 }, 'port'],
      [{ name: 'bastion', port: 70000 }, 'port'],
      [{ name: 'bastion', user: 'Root Admin' }, 'user'],
      [{ name: 'bastion', hostKeyFingerprint: 'MD5:aa:bb' }, 'hostKeyFingerprint'],
      [{ name: 'bastion', via: 'No Such' }, 'via'],
    ]
    for (const [input, field] of cases) {
      const payload = await put(app, input)
      // Each problem of the field is one error (a name too long is also not a DNS name).
      assert.ok(payload.userErrors.length > 0, JSON.stringify(input))
      assert.deepEqual([...new Set(codes(payload).map((c) => JSON.stringify(c)))], [JSON.stringify(['VALIDATION_FAILED', [field]])], JSON.stringify(input))
      assert.equal(payload.jumpHost, null)
    }
    assert.deepEqual((await app.gql(LIST)).data.jumpHosts, [])
  })

  it('via: must be registered, not itself, no loop, and the longest chain through it at most the limit', async (t) => {
    const app = await build(t)
    assert.deepEqual(codes(await put(app, { name: 'j1', via: 'ghost' })), [['VALIDATION_FAILED', ['via']]])
    assert.deepEqual(codes(await put(app, { name: 'j1', via: 'j1' })), [['VALIDATION_FAILED', ['via']]])
    // j1 <- j2 <- ... <- jN: the longest chain there is.
    for (let i = 1; i <= MAX_JUMP_HOSTS_IN_CHAIN; i++) assert.deepEqual((await put(app, { name: `j${i}`, via: i === 1 ? null : `j${i - 1}` })).userErrors, [], `j${i}`)
    const loop = await put(app, { name: 'j1', via: `j${MAX_JUMP_HOSTS_IN_CHAIN}` })
    assert.deepEqual(codes(loop), [['VALIDATION_FAILED', ['via']]])
    assert.match(loop.userErrors[0]?.message ?? '', / would be a loop/)
    // One more at the far end, or in front of the first (which lengthens every chain behind it): too long.
    const tooLong = await put(app, { name: 'j0', via: `j${MAX_JUMP_HOSTS_IN_CHAIN}` })
    assert.match(tooLong.userErrors[0]?.message ?? '', new RegExp(`a chain of ${MAX_JUMP_HOSTS_IN_CHAIN + 1} jump hosts; at most ${MAX_JUMP_HOSTS_IN_CHAIN}`))
    assert.deepEqual((await put(app, { name: 'j0' })).userErrors, [])
    const inFront = await put(app, { name: 'j1', via: 'j0' })
    assert.deepEqual(codes(inFront), [['VALIDATION_FAILED', ['via']]])
    assert.match(inFront.userErrors[0]?.message ?? '', new RegExp(`a chain of ${MAX_JUMP_HOSTS_IN_CHAIN + 1} jump hosts \\(with the ${MAX_JUMP_HOSTS_IN_CHAIN - 1} behind j1\\)`))
    // Nothing of the refused ones was stored.
    const names = ((await app.gql(LIST)).data.jumpHosts as Array<{ name: string; via: string | null }>).map((j) => [j.name, j.via])
    assert.deepEqual(names, [['j0', null], ...Array.from({ length: MAX_JUMP_HOSTS_IN_CHAIN }, (_, i) => [`j${i + 1}`, i === 0 ? null : `j${i}`])])
  })

  it("a node's via must name a registered jump host; removeJumpHost is CONFLICT while used, then removes it", async (t) => {
    const app = await build(t)
    const node = { name: 'cp-1', host: '10.0.0.5', staticPodPath: '/etc/kubernetes/manifests', hostKeyFingerprint: FINGERPRINT }
    const refused = (await app.gql(REGISTER, { input: { ...node, via: 'bastion' } })).data.registerNode
    assert.deepEqual(codes(refused), [['VALIDATION_FAILED', ['via']]])
    assert.equal((await app.gql(`{ node(name: "cp-1") { name } }`)).data.node, null, 'nothing stored')

    assert.deepEqual((await put(app, { name: 'bastion' })).userErrors, [])
    assert.deepEqual((await put(app, { name: 'inner', via: 'bastion' })).userErrors, [])
    assert.deepEqual((await app.gql(REGISTER, { input: { ...node, via: 'inner' } })).data.registerNode, { node: { name: 'cp-1', via: 'inner' }, userErrors: [] })
    assert.deepEqual(codes((await app.gql(UPDATE, { input: { name: 'cp-1', via: 'ghost' } })).data.updateNode), [['VALIDATION_FAILED', ['via']]])
    assert.deepEqual(((await app.gql(LIST)).data.jumpHosts as Array<{ name: string; nodes: string[] }>).map((j) => [j.name, j.nodes]), [['bastion', ['cp-1']], ['inner', ['cp-1']]])

    const inUse = (await app.gql(REMOVE, { name: 'bastion' })).data.removeJumpHost
    assert.equal(inUse.removed, false)
    assert.deepEqual(codes(inUse), [['CONFLICT', ['name']]])
    assert.match(inUse.userErrors[0].message, /jump hosts inner is reached through it/)
    assert.deepEqual(codes((await app.gql(REMOVE, { name: 'inner' })).data.removeJumpHost), [['CONFLICT', ['name']]])
    assert.match((await app.gql(REMOVE, { name: 'inner' })).data.removeJumpHost.userErrors[0].message, /nodes cp-1 is reached through it/)

    assert.deepEqual((await app.gql(UPDATE, { input: { name: 'cp-1', via: '' } })).data.updateNode, { node: { name: 'cp-1', host: '10.0.0.5', via: null }, userErrors: [] })
    assert.deepEqual((await app.gql(REMOVE, { name: 'inner' })).data.removeJumpHost, { removed: true, userErrors: [] })
    assert.deepEqual((await app.gql(REMOVE, { name: 'bastion' })).data.removeJumpHost, { removed: true, userErrors: [] })
    assert.deepEqual(codes((await app.gql(REMOVE, { name: 'bastion' })).data.removeJumpHost), [['NOT_FOUND', ['name']]])
    assert.deepEqual((await app.gql(LIST)).data.jumpHosts, [])
  })

  it('NODE_ADDRESS_ALLOW applies to the first hop: a jump host reached directly; not to what a jump host resolves', async (t) => {
    const app = await build(t, { env: { NODE_ADDRESS_ALLOW: '10.0.0.0/8:22' } })
    assert.deepEqual(codes(await put(app, { name: 'outside', host: '192.0.2.1' })), [['VALIDATION_FAILED', ['host']]])
    assert.deepEqual(codes(await put(app, { name: 'outside', host: '10.0.0.1', port: 2222 })), [['VALIDATION_FAILED', ['port']]])
    assert.deepEqual((await put(app, { name: 'bastion', host: '10.0.0.1' })).userErrors, [])
    // Behind the bastion, addresses are the bastion's to resolve and dial, as OpenSSH's ProxyJump does.
    assert.deepEqual((await put(app, { name: 'inner', host: '192.168.7.1', port: 2222, via: 'bastion' })).userErrors, [])
    const node = { name: 'cp-1', host: 'cp-1.internal.example', port: 2022, staticPodPath: '/etc/kubernetes/manifests', hostKeyFingerprint: FINGERPRINT }
    assert.deepEqual((await app.gql(REGISTER, { input: { ...node, via: 'inner' } })).data.registerNode.userErrors, [])
    assert.deepEqual(codes((await app.gql(REGISTER, { input: { ...node, name: 'cp-2' } })).data.registerNode), [['VALIDATION_FAILED', ['host']]])
    // Leaving the jump host: the address is now this service's to dial, and checked.
    assert.deepEqual(codes((await app.gql(UPDATE, { input: { name: 'cp-1', via: '' } })).data.updateNode), [['VALIDATION_FAILED', ['host']]])
    assert.equal((await app.gql(`{ node(name: "cp-1") { via } }`)).data.node.via, 'inner', 'unchanged')
  })

  it('an unpinned jump host whose key cannot be seen: reachable false, saying so; nothing stored as observed', async (t) => {
    const app = await build(t, { env: { SSH_CONNECT_TIMEOUT_MS: '2000' } })
    // A listener that closes every connection at once: not an SSH server.
    const sockets = new Set<Socket>()
    const closer = createServer((socket) => {
      sockets.add(socket)
      socket.destroy()
    })
    await new Promise<void>((resolve) => closer.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise((resolve) => closer.close(resolve)))
    const port = (closer.address() as AddressInfo).port
    assert.deepEqual((await put(app, { name: 'bastion', host: '127.0.0.1', port, hostKeyFingerprint: null })).userErrors, [])
    const res = await app.gql(`{ jumpHosts { name reachable lastError observedHostKeyFingerprint } }`)
    assert.equal(res.errors, undefined)
    const [jump] = res.data.jumpHosts as Array<{ reachable: boolean; lastError: string; observedHostKeyFingerprint: string | null }>
    assert.equal(jump?.reachable, false)
    assert.match(jump?.lastError ?? '', new RegExp(`^NODE_UNVERIFIED: nothing is sent through jump host bastion until an admin pins its host key with putJumpHost\\(hostKeyFingerprint\\); its key could not be seen either \\(jump host bastion \\(127\\.0\\.0\\.1:${port}\\) cannot be reached over SSH: not an SSH server`))
    assert.equal(jump?.observedHostKeyFingerprint, null)
    assert.ok(sockets.size >= 1, 'it was asked')
  })

  describe('roles and audit', () => {
    const sha = (token: string) => createHash('sha256').update(token).digest('hex')
    const TOKENS = { viewer: 'jh-viewer-4f1e', admin: 'jh-admin-9a0c', cpAdmin: 'jh-cp-admin-77d2' }
    const DOCUMENT = JSON.stringify({
      tokens: [
        { name: 'val-viewer', role: 'viewer', sha256: sha(TOKENS.viewer) },
        { name: 'ada-admin', role: 'admin', sha256: sha(TOKENS.admin) },
        { name: 'cp-admin', role: 'admin', sha256: sha(TOKENS.cpAdmin), nodes: ['cp-*'] },
      ],
    })
    async function setup(t: TestContext) {
      const app = await build(t, { env: { AUTH_TOKENS: DOCUMENT } })
      const as = async (token: string, query: string, variables?: Record<string, unknown>): Promise<GqlResponse<Record<string, any>>> => {
        const res = await app.app.inject({ method: 'POST', url: '/graphql', headers: { authorization: `Bearer ${token}` }, payload: { query, variables } })
        return { status: res.statusCode, ...(res.json() as { data: Record<string, any> }) }
      }
      return { app, as }
    }

    it('a viewer lists but does not change; an admin limited to some nodes does not change either; every attempt is audited', async (t) => {
      const { as } = await setup(t)
      const input = { name: 'bastion', host: '10.0.0.1', user: 'jump', hostKeyFingerprint: FINGERPRINT }
      assert.deepEqual(codes((await as(TOKENS.viewer, PUT, { input })).data.putJumpHost), [['FORBIDDEN', null]])
      assert.deepEqual(codes((await as(TOKENS.cpAdmin, PUT, { input })).data.putJumpHost), [['FORBIDDEN', null]])
      assert.deepEqual((await as(TOKENS.admin, PUT, { input })).data.putJumpHost.userErrors, [])
      assert.deepEqual(codes((await as(TOKENS.cpAdmin, REMOVE, { name: 'bastion' })).data.removeJumpHost), [['FORBIDDEN', null]])
      assert.deepEqual(((await as(TOKENS.viewer, LIST)).data.jumpHosts as Array<{ name: string }>).map((j) => j.name), ['bastion'])
      assert.deepEqual((await as(TOKENS.admin, REMOVE, { name: 'bastion' })).data.removeJumpHost, { removed: true, userErrors: [] })

      const events = (await as(TOKENS.admin, `{ auditEvents(limit: 10) { actor action node target result } }`)).data.auditEvents as Array<Record<string, unknown>>
      assert.deepEqual(
        events.filter((e) => String(e.action).endsWith('JumpHost')).reverse(),
        [
          { actor: 'val-viewer', action: 'putJumpHost', node: null, target: 'bastion', result: 'FORBIDDEN' },
          { actor: 'cp-admin', action: 'putJumpHost', node: null, target: 'bastion', result: 'FORBIDDEN' },
          { actor: 'ada-admin', action: 'putJumpHost', node: null, target: 'bastion', result: 'OK' },
          { actor: 'cp-admin', action: 'removeJumpHost', node: null, target: 'bastion', result: 'FORBIDDEN' },
          { actor: 'ada-admin', action: 'removeJumpHost', node: null, target: 'bastion', result: 'OK' },
        ],
      )
    })

    it('a token limited to some nodes sees only its nodes behind a jump host', async (t) => {
      const { app, as } = await setup(t)
      const input = { name: 'bastion', host: '10.0.0.1', user: 'jump', hostKeyFingerprint: FINGERPRINT }
      assert.deepEqual((await as(TOKENS.admin, PUT, { input })).data.putJumpHost.userErrors, [])
      for (const name of ['cp-1', 'edge-1']) {
        await app.app.services.store.createNode({
          name,
          kind: 'ssh',
          ssh: { host: '10.0.0.9', port: 22, user: 'root', privilege: 'NONE', sftpServer: null, via: 'bastion', hostKeyFingerprint: FINGERPRINT, observedHostKeyFingerprint: null },
          staticPodPath: '/etc/kubernetes/manifests',
          staticPodPathFrom: 'given',
          labels: [],
          createdAt: new Date().toISOString(),
          updatedAt: new Date().toISOString(),
        })
      }
      assert.deepEqual((await as(TOKENS.admin, `{ jumpHosts { nodes } }`)).data.jumpHosts, [{ nodes: ['cp-1', 'edge-1'] }])
      assert.deepEqual((await as(TOKENS.cpAdmin, `{ jumpHosts { nodes } }`)).data.jumpHosts, [{ nodes: ['cp-1'] }])
    })
  })
})
