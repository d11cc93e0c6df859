// Top-level errors: every one has extensions.code, none has a stack, and
// capabilities of later releases answer with a typed error, never a crash.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { build } from '../helper.ts'

function assertNoStack(body: string): void {
  assert.doesNotMatch(body, /at .+\.(ts|js):\d+/, 'no stack frames')
  assert.doesNotMatch(body, /"stack"/)
}

describe('GraphQL errors', () => {
  it('a syntax error is GRAPHQL_PARSE_FAILED with status 400', async (t) => {
    const { app } = await build(t)
    const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ nodes { name ' } })
    assert.equal(res.statusCode, 400)
    assert.equal(res.json().errors[0].extensions.code, 'GRAPHQL_PARSE_FAILED')
    assertNoStack(res.body)
  })

  it('an unknown field is GRAPHQL_VALIDATION_FAILED', async (t) => {
    const { app } = await build(t)
    const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ nodes { name password } }' } })
    assert.equal(res.statusCode, 400)
    assert.equal(res.json().errors[0].extensions.code, 'GRAPHQL_VALIDATION_FAILED')
  })

  it('a bad variable is GRAPHQL_VALIDATION_FAILED', async (t) => {
    const { app } = await build(t)
    const res = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: { query: 'query($l: Int) { auditEvents(limit: $l) { id } }', variables: { l: 'many' } },
    })
    assert.equal(res.json().errors[0].extensions.code, 'GRAPHQL_VALIDATION_FAILED')
  })

  it('an unknown node is NOT_FOUND naming it', async (t) => {
    const { gql } = await build(t)
    const res = await gql('{ staticPods(node: "nope") { name } }')
    assert.equal(res.errors?.[0]?.extensions?.code, 'NOT_FOUND')
    assert.match(res.errors?.[0]?.message ?? '', /nope/)
  })

  it('a bad DateTime is refused with a code', async (t) => {
    const { gql } = await build(t)
    const res = await gql('{ auditEvents(before: "yesterday") { id } }')
    assert.ok(res.errors?.[0]?.extensions?.code)
  })

  it('mutations that cannot proceed answer with typed errors and write nothing', async (t) => {
    const { gql } = await build(t)
    const apply = await gql('mutation { applyStaticPodToNodes(input: {nodes: ["local"], manifest: "x"}) { results { node } userErrors { code message } } }')
    assert.equal(apply.errors, undefined)
    assert.deepEqual(apply.data.applyStaticPodToNodes.results, [])
    assert.equal(apply.data.applyStaticPodToNodes.userErrors[0].code, 'VALIDATION_FAILED')
    const wait = await gql(
      'mutation { updateStaticPod(input: {node: "local", name: "x", manifest: "x", waitForReady: true}) { userErrors { code field } } }',
    )
    assert.equal(wait.data.updateStaticPod.userErrors[0].code, 'VALIDATION_FAILED')
    const mirror = await gql('mutation { recreateMirrorPod(input: {namespace: "kube-system", name: "etcd-cp1"}) { deleted userErrors { code } } }')
    assert.deepEqual(mirror.data.recreateMirrorPod, { deleted: false, userErrors: [{ code: 'API_SERVER_UNAVAILABLE' }] })
    const imported = await gql('mutation { importNodesFromCluster { imported { name } skipped userErrors { code } } }')
    assert.deepEqual(imported.data.importNodesFromCluster.userErrors, [{ code: 'API_SERVER_UNAVAILABLE' }])
    const mirrors = await gql('{ mirrorPods { name } nodes { name mirrorPods { name } kubernetes { ready } } }')
    assert.equal(mirrors.data.mirrorPods, null)
    assert.deepEqual(mirrors.data.nodes, [{ name: 'local', mirrorPods: null, kubernetes: null }])
    assert.deepEqual(
      mirrors.errors?.map((e) => e.extensions?.code),
      ['API_SERVER_UNAVAILABLE'],
      'one API_SERVER_UNAVAILABLE error for the whole response',
    )
    const cluster = await gql('{ cluster { apiServer { configured reachable error } nodeCount } }')
    assert.deepEqual(cluster.data.cluster.apiServer.configured, false)
    assert.deepEqual(cluster.data.cluster.nodeCount, 1)
  })
})
