// Roles × operation classes, and node-glob restrictions, through GraphQL and REST.

import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { describe, it, type TestContext } from 'node:test'
import { build, podYaml } from '../helper.ts'
import { TOKENS, TOKENS_DOCUMENT, bearer } from './tokens.ts'

async function setup(t: TestContext) {
  const app = await build(t, { env: { AUTH_TOKENS: TOKENS_DOCUMENT, LOCAL_NODE_NAME: 'cp-1' } })
  const gql = async (token: string | null, query: string, variables?: Record<string, unknown>) => {
    const res = await app.app.inject({ method: 'POST', url: '/graphql', headers: token ? bearer(token) : {}, payload: { query, variables } })
    return { status: res.statusCode, ...(res.json() as { data: any; errors?: Array<{ message: string; extensions: { code: string } }> }) }
  }
  // A second node, never contacted (unverified): enough to see what lists show.
  await gql(TOKENS.admin, 'mutation { registerNode(input: {name: "edge-1", host: "127.0.0.7"}) { userErrors { code } } }')
  return { ...app, gqlAs: gql }
}

const CREATE = (name: string) => `mutation { createStaticPod(input: {node: "cp-1", manifest: ${JSON.stringify(podYaml(name))}}) { staticPod { name } userErrors { code message } } }`
const REGISTER = (name: string) => `mutation { registerNode(input: {name: "${name}", host: "127.0.0.9"}) { node { name } userErrors { code } } }`

describe('authorization', () => {
  it('no token and an unknown token are 401 UNAUTHENTICATED on GraphQL and REST', async (t) => {
    const { app, gqlAs } = await setup(t)
    const none = await gqlAs(null, '{ nodes { name } }')
    assert.equal(none.status, 401)
    assert.equal(none.errors?.[0]?.extensions.code, 'UNAUTHENTICATED')
    const wrong = await gqlAs('not-a-token', '{ nodes { name } }')
    assert.equal(wrong.status, 401)
    const rest = await app.inject({ method: 'GET', url: '/api/v1/nodes', headers: bearer('nope') })
    assert.equal(rest.statusCode, 401)
    assert.deepEqual(rest.json().error.code, 'UNAUTHENTICATED')
    assert.equal(rest.headers['www-authenticate'], 'Bearer realm="staticpod-api"')
    // Public endpoints need no token.
    assert.equal((await app.inject('/healthz')).statusCode, 200)
    assert.equal((await app.inject('/graphiql')).statusCode, 200)
  })

  const matrix: Array<['viewer' | 'operator' | 'admin', { query: boolean; staticPodMutation: boolean; nodeMutation: boolean }]> = [
    ['viewer', { query: true, staticPodMutation: false, nodeMutation: false }],
    ['operator', { query: true, staticPodMutation: true, nodeMutation: false }],
    ['admin', { query: true, staticPodMutation: true, nodeMutation: true }],
  ]
  for (const [role, allowed] of matrix) {
    it(`${role}: queries ${allowed.query}, static pod mutations ${allowed.staticPodMutation}, node mutations ${allowed.nodeMutation}`, async (t) => {
      const { gqlAs, manifests } = await setup(t)
      const token = TOKENS[role]
      const q = await gqlAs(token, '{ nodes { name } staticPods(node: "cp-1") { name } auditEvents { action } }')
      assert.equal(q.errors, undefined)
      assert.deepEqual(q.data.nodes.map((n: { name: string }) => n.name), ['cp-1', 'edge-1'])

      const create = await gqlAs(token, CREATE(`web-${role}`))
      const createErrors = create.data.createStaticPod.userErrors
      assert.deepEqual(createErrors.map((e: { code: string }) => e.code), allowed.staticPodMutation ? [] : ['FORBIDDEN'])
      assert.deepEqual(await readdir(manifests), allowed.staticPodMutation ? [`web-${role}.yaml`] : [], 'nothing written when forbidden')

      const reg = await gqlAs(token, REGISTER(`cp-${role}`))
      assert.deepEqual(reg.data.registerNode.userErrors.map((e: { code: string }) => e.code), allowed.nodeMutation ? [] : ['FORBIDDEN'])

      const audit = await gqlAs(TOKENS.admin, '{ auditEvents { actor action result } }')
      // Newest first; the oldest event is the setup's registration of edge-1.
      const mine = audit.data.auditEvents.slice(0, -1)
      assert.ok(mine.every((e: { actor: string }) => e.actor === { viewer: 'alice-viewer', operator: 'ci-operator', admin: 'root-admin' }[role]))
      assert.deepEqual(
        mine.map((e: { action: string; result: string }) => `${e.action}:${e.result}`),
        [`registerNode:${allowed.nodeMutation ? 'OK' : 'FORBIDDEN'}`, `createStaticPod:${allowed.staticPodMutation ? 'OK' : 'FORBIDDEN'}`],
        'denied mutations are audited too',
      )
    })
  }

  it('a token limited to cp-* sees only those nodes, in lists too, and is FORBIDDEN elsewhere', async (t) => {
    const { gqlAs, app } = await setup(t)
    await gqlAs(TOKENS.admin, 'mutation { registerNode(input: {name: "cp-2", host: "127.0.0.8"}) { userErrors { code } } }')
    const lists = await gqlAs(TOKENS.cpOperator, '{ nodes { name } cluster { nodeCount } }')
    assert.deepEqual(lists.data.nodes.map((n: { name: string }) => n.name), ['cp-1', 'cp-2'])
    assert.equal(lists.data.cluster.nodeCount, 2)

    const direct = await gqlAs(TOKENS.cpOperator, '{ node(name: "edge-1") { name } }')
    assert.equal(direct.errors?.[0]?.extensions.code, 'FORBIDDEN')
    const pods = await gqlAs(TOKENS.cpOperator, '{ staticPods(node: "edge-1") { name } }')
    assert.equal(pods.errors?.[0]?.extensions.code, 'FORBIDDEN')
    const write = await gqlAs(TOKENS.cpOperator, 'mutation { deleteStaticPod(input: {node: "edge-1", name: "x"}) { deleted userErrors { code } } }')
    assert.deepEqual(write.data.deleteStaticPod, { deleted: false, userErrors: [{ code: 'FORBIDDEN' }] })
    const ok = await gqlAs(TOKENS.cpOperator, CREATE('bot-made'))
    assert.deepEqual(ok.data.createStaticPod.userErrors, [])

    const edge = await gqlAs(TOKENS.edgeViewer, '{ nodes { name } staticPods { name } auditEvents { node action } }')
    assert.deepEqual(edge.data.nodes.map((n: { name: string }) => n.name), ['edge-1'])
    assert.deepEqual(edge.data.staticPods, [], 'no pods of cp-1 leak through the all-nodes list')
    assert.ok(edge.data.auditEvents.every((e: { node: string }) => e.node === 'edge-1'), JSON.stringify(edge.data.auditEvents))
    const adminAudit = await gqlAs(TOKENS.admin, '{ auditEvents(node: "edge-1") { actor result } }')
    assert.deepEqual(adminAudit.data.auditEvents[0], { actor: 'chatops-bot', result: 'FORBIDDEN' })

    const rest = await app.inject({ method: 'GET', url: '/api/v1/nodes', headers: bearer(TOKENS.cpOperator) })
    assert.deepEqual(rest.json().map((n: { name: string }) => n.name), ['cp-1', 'cp-2'])
    const restDirect = await app.inject({ method: 'GET', url: '/api/v1/nodes/edge-1/staticpods', headers: bearer(TOKENS.cpOperator) })
    assert.equal(restDirect.statusCode, 403)
    assert.equal(restDirect.json().error.code, 'FORBIDDEN')
  })
})
