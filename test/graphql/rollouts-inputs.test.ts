// applyStaticPodToNodes: what is refused before anything is written (inputs,
// roles, node globs), and a rollout on the local node without any readiness
// signal. The rollouts on real sshd nodes with stand-in runtimes are in rollouts.test.ts.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { build, kubeletVisibleFiles, podYaml } from '../helper.ts'
import { TOKENS, TOKENS_DOCUMENT, bearer } from '../http/tokens.ts'

const APPLY = `mutation($input: ApplyToNodesInput!) { applyStaticPodToNodes(input: $input) {
  rolloutId results { node status error { code message } } userErrors { code message field } } }`

async function setup(t: TestContext, env: Record<string, string> = {}) {
  const app = await build(t, { env: { LOCAL_NODE_NAME: 'cp-1', ...env } })
  const gqlAs = async (token: string | null, query: string, variables?: Record<string, unknown>) => {
    const res = await app.app.inject({ method: 'POST', url: '/graphql', headers: token ? bearer(token) : {}, payload: { query, variables } })
    return res.json() as { data: any; errors?: Array<{ message: string; extensions: { code: string } }> }
  }
  return { ...app, gqlAs }
}

describe('applyStaticPodToNodes: refused before anything is written', () => {
  const refused: Array<[string, Record<string, unknown>, { code: string; field: string[] | null; message?: RegExp }]> = [
    ['both nodes and labelSelector', { nodes: ['cp-1'], labelSelector: 'a=b' }, { code: 'VALIDATION_FAILED', field: ['labelSelector'] }],
    ['neither nodes nor labelSelector', {}, { code: 'VALIDATION_FAILED', field: ['nodes'] }],
    ['an empty node list', { nodes: [] }, { code: 'VALIDATION_FAILED', field: ['nodes'] }],
    ['a node listed twice', { nodes: ['cp-1', 'cp-1'] }, { code: 'VALIDATION_FAILED', field: ['nodes', '1'] }],
    ['an unknown node', { nodes: ['cp-1', 'cp-9'] }, { code: 'NOT_FOUND', field: ['nodes', '1'], message: /cp-9/ }],
    ['a selector matching no node', { labelSelector: 'tier=nowhere' }, { code: 'NOT_FOUND', field: ['labelSelector'] }],
    ['a malformed selector', { labelSelector: 'tier in (a' }, { code: 'VALIDATION_FAILED', field: ['labelSelector'] }],
    ['maxUnavailable 0', { nodes: ['cp-1'], maxUnavailable: 0 }, { code: 'VALIDATION_FAILED', field: ['maxUnavailable'] }],
    ['a negative readyTimeoutSeconds', { nodes: ['cp-1'], readyTimeoutSeconds: -1 }, { code: 'VALIDATION_FAILED', field: ['readyTimeoutSeconds'] }],
    ['an invalid manifest', { nodes: ['cp-1'], manifest: podYaml('web', '') }, { code: 'VALIDATION_FAILED', field: ['manifest', 'spec', 'containers', '0', 'image'] }],
    [
      'a name whose mirror pod name is too long on one of the nodes',
      { nodes: ['cp-1'], manifest: podYaml('w'.repeat(250)) },
      { code: 'VALIDATION_FAILED', field: ['manifest', 'metadata', 'name'], message: /-cp-1/ },
    ],
  ]
  for (const [what, input, expected] of refused) {
    it(what, async (t) => {
      const { gqlAs, manifests } = await setup(t)
      const res = await gqlAs(null, APPLY, { input: { manifest: podYaml('web'), ...input } })
      assert.equal(res.errors, undefined, JSON.stringify(res.errors))
      const payload = res.data.applyStaticPodToNodes
      assert.deepEqual([payload.rolloutId, payload.results], [null, []])
      assert.deepEqual([payload.userErrors[0].code, payload.userErrors[0].field], [expected.code, expected.field])
      if (expected.message) assert.match(payload.userErrors[0].message, expected.message)
      assert.deepEqual(await kubeletVisibleFiles(manifests), [])
    })
  }

  it('roles and node globs: a viewer, and an operator limited to other nodes, are FORBIDDEN; the refusal is audited', async (t) => {
    const { gqlAs, manifests } = await setup(t, { AUTH_TOKENS: TOKENS_DOCUMENT, LOCAL_NODE_NAME: 'edge-1' })
    const viewer = await gqlAs(TOKENS.viewer, APPLY, { input: { nodes: ['edge-1'], manifest: podYaml('web') } })
    assert.equal(viewer.data.applyStaticPodToNodes.userErrors[0].code, 'FORBIDDEN')
    const limited = await gqlAs(TOKENS.cpOperator, APPLY, { input: { nodes: ['edge-1'], manifest: podYaml('web') } })
    assert.deepEqual(limited.data.applyStaticPodToNodes.userErrors, [
      { code: 'FORBIDDEN', message: 'chatops-bot may not use nodes edge-1; nothing was changed', field: ['nodes'] },
    ])
    // By selector, the nodes it may not use are not there for it at all.
    const bySelector = await gqlAs(TOKENS.cpOperator, APPLY, { input: { labelSelector: '', manifest: podYaml('web') } })
    assert.equal(bySelector.data.applyStaticPodToNodes.userErrors[0].code, 'NOT_FOUND')
    assert.deepEqual(await kubeletVisibleFiles(manifests), [])
    const audit = await gqlAs(TOKENS.admin, '{ auditEvents(limit: 3) { actor action result } }')
    assert.deepEqual(audit.data.auditEvents[1], { actor: 'chatops-bot', action: 'applyStaticPodToNodes', result: 'FORBIDDEN' })
    // Rollouts of nodes a token may not see are not listed for it.
    const ok = await gqlAs(TOKENS.operator, APPLY, { input: { nodes: ['edge-1'], manifest: podYaml('web'), readyTimeoutSeconds: 0 } })
    assert.equal(ok.data.applyStaticPodToNodes.results[0].status, 'APPLIED')
    const seen = await gqlAs(TOKENS.cpOperator, `{ rollouts { id } rollout(id: "${ok.data.applyStaticPodToNodes.rolloutId}") { id } }`)
    assert.deepEqual(seen.data, { rollouts: [], rollout: null })
  })
})

describe('applyStaticPodToNodes on the local node', () => {
  it('readyTimeoutSeconds 0: written and APPLIED at once, audited for the node and for the rollout', async (t) => {
    const { gqlAs, manifests } = await setup(t)
    const res = await gqlAs(null, APPLY, { input: { nodes: ['cp-1'], manifest: podYaml('web'), readyTimeoutSeconds: 0 } })
    assert.deepEqual(res.data.applyStaticPodToNodes.results, [{ node: 'cp-1', status: 'APPLIED', error: null }])
    assert.equal(await readFile(join(manifests, 'web.yaml'), 'utf8'), podYaml('web'))
    const audit = await gqlAs(null, '{ auditEvents(limit: 5) { action node target result message } }')
    assert.deepEqual(
      audit.data.auditEvents.map((e: { action: string; node: string | null; result: string }) => [e.action, e.node, e.result]),
      [
        ['applyStaticPodToNodes', null, 'OK'],
        ['applyStaticPodToNodes', 'cp-1', 'OK'],
      ],
    )
    assert.match(audit.data.auditEvents[0].message, /^rollout [0-9a-f-]{36} SUCCEEDED: 1 APPLIED$/)
  })

  it('with no runtime and no API server to ask, the wait cannot succeed: the node fails after the timeout, saying why, and is rolled back', async (t) => {
    const { gqlAs, manifests } = await setup(t)
    const res = await gqlAs(null, APPLY, { input: { nodes: ['cp-1'], manifest: podYaml('web'), readyTimeoutSeconds: 1 } })
    const [result] = res.data.applyStaticPodToNodes.results
    assert.equal(result.status, 'ROLLED_BACK')
    assert.match(result.error.message, /not ready within 1 s: container runtime: crictl not found on this machine; API server: not configured/)
    assert.deepEqual(await kubeletVisibleFiles(manifests), [])
  })
})
