// patchStaticPod / patchStaticPodOnNodes: what is refused before anything is
// written (the change's own shape, roles), on the local node. The fleet cases
// on real sshd nodes are in patches.test.ts.
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { build, podYaml } from '../helper.ts'
import { TOKENS, TOKENS_DOCUMENT, bearer } from '../http/tokens.ts'

const PATCH = `mutation($input: PatchStaticPodInput!) { patchStaticPod(input: $input) { changed diff userErrors { code message field } } }`
const PATCH_ON_NODES = `mutation($input: PatchOnNodesInput!) { patchStaticPodOnNodes(input: $input) {
  rolloutId results { node status } userErrors { code message field } } }`

async function setup(t: TestContext, env: Record<string, string> = {}) {
  const app = await build(t, { env: { LOCAL_NODE_NAME: 'cp-1', ...env } })
  await writeFile(join(app.manifests, 'web.yaml'), podYaml('web'))
  const gqlAs = async (token: string | null, query: string, variables?: Record<string, unknown>) => {
    const res = await app.app.inject({ method: 'POST', url: '/graphql', headers: token ? bearer(token) : {}, payload: { query, variables } })
    return res.json() as { data: any; errors?: Array<{ message: string }> }
  }
  return { ...app, gqlAs }
}

describe('patchStaticPod: refused before anything is written', () => {
  const refused: Array<[string, Record<string, unknown>, { code: string; field: string[] }]> = [
    ['an empty change', {}, { code: 'VALIDATION_FAILED', field: ['change'] }],
    ['both image and tag', { images: [{ container: 'main', image: 'nginx:1.27', tag: '1.27' }] }, { code: 'VALIDATION_FAILED', field: ['change', 'images', '0'] }],
    ['a tag that is not a tag', { images: [{ container: 'main', tag: 'v1 beta' }] }, { code: 'VALIDATION_FAILED', field: ['change', 'images', '0', 'tag'] }],
    ['a container the pod does not have', { images: [{ container: 'nope', tag: '1.27' }] }, { code: 'VALIDATION_FAILED', field: ['change', 'images', '0', 'container'] }],
    ['a flag without dashes', { flags: [{ container: 'main', flag: 'v', value: '4' }] }, { code: 'VALIDATION_FAILED', field: ['change', 'flags', '0', 'flag'] }],
    ['a patch that is not YAML or JSON', { patch: '{"spec": [', patchType: 'MERGE' }, { code: 'VALIDATION_FAILED', field: ['change', 'patch'] }],
    ['a JSON patch that is not a list of operations', { patch: '{"op": "add"}', patchType: 'JSON' }, { code: 'VALIDATION_FAILED', field: ['change', 'patch'] }],
    ['a patch that renames the pod', { patch: 'metadata:\n  name: other\n', patchType: 'MERGE' }, { code: 'VALIDATION_FAILED', field: ['manifest', 'metadata', 'name'] }],
  ]
  for (const [what, change, expected] of refused) {
    it(what, async (t) => {
      const { gqlAs, manifests } = await setup(t)
      const res = await gqlAs(null, PATCH, { input: { node: 'cp-1', name: 'web', change } })
      assert.equal(res.errors, undefined, JSON.stringify(res.errors))
      const error = res.data.patchStaticPod.userErrors[0]
      assert.deepEqual([error?.code, error?.field?.slice(0, expected.field.length)], [expected.code, expected.field], JSON.stringify(error))
      assert.equal(await readFile(join(manifests, 'web.yaml'), 'utf8'), podYaml('web'))
    })
  }

  it('a viewer is FORBIDDEN to patch one node or many, and the refusals are audited', async (t) => {
    const { gqlAs, manifests } = await setup(t, { AUTH_TOKENS: TOKENS_DOCUMENT })
    const change = { images: [{ container: 'main', tag: '1.27' }] }
    const one = await gqlAs(TOKENS.viewer, PATCH, { input: { node: 'cp-1', name: 'web', change } })
    assert.equal(one.data.patchStaticPod.userErrors[0].code, 'FORBIDDEN')
    const many = await gqlAs(TOKENS.viewer, PATCH_ON_NODES, { input: { nodes: ['cp-1'], name: 'web', change } })
    assert.deepEqual([many.data.patchStaticPodOnNodes.rolloutId, many.data.patchStaticPodOnNodes.userErrors[0].code], [null, 'FORBIDDEN'])
    assert.equal(await readFile(join(manifests, 'web.yaml'), 'utf8'), podYaml('web'))
    const audit = await gqlAs(TOKENS.admin, '{ auditEvents(limit: 2) { action result } }')
    assert.deepEqual(audit.data.auditEvents, [
      { action: 'patchStaticPodOnNodes', result: 'FORBIDDEN' },
      { action: 'patchStaticPod', result: 'FORBIDDEN' },
    ])
  })

  it('on the local node, a tag change writes just the image tag', async (t) => {
    const { gqlAs, manifests } = await setup(t)
    const res = await gqlAs(null, PATCH, { input: { node: 'cp-1', name: 'web', change: { images: [{ container: 'main', tag: '1.27' }] } } })
    assert.deepEqual(res.data.patchStaticPod.userErrors, [])
    assert.equal(await readFile(join(manifests, 'web.yaml'), 'utf8'), podYaml('web').replace(/image: (\S+):[^\s]+/, 'image: $1:1.27'))
  })
})
