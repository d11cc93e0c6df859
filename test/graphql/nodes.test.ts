// The node registry over GraphQL, and per-node failures as data.

import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { build, podYaml } from '../helper.ts'

const FP = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s'
const NODE = 'node { name host port user staticPodPath hostKeyFingerprint kind labels { key value } }'

describe('nodes', () => {
  it('the built-in local node is there from the start', async (t) => {
    const app = await build(t)
    const res = await app.gql('{ nodes { name kind staticPodPath host agent { reachable } findings { code } } }')
    assert.deepEqual(res.data.nodes, [{ name: 'local', kind: 'LOCAL', staticPodPath: app.manifests, host: 'localhost', agent: { reachable: true }, findings: [] }])
  })

  it('registers, updates, selects by label and removes SSH nodes; changes nothing on them', async (t) => {
    const { gql } = await build(t)
    const reg = await gql(`mutation { registerNode(input: {name: "cp-1", host: "10.0.0.11", labels: [{key: "role", value: "control-plane"}]}) { ${NODE} userErrors { code } } }`)
    assert.deepEqual(reg.data.registerNode, {
      node: { name: 'cp-1', host: '10.0.0.11', port: 22, user: 'root', staticPodPath: '/etc/kubernetes/manifests', hostKeyFingerprint: null, kind: 'SSH', labels: [{ key: 'role', value: 'control-plane' }] },
      userErrors: [],
    })
    await gql(`mutation { registerNode(input: {name: "edge-7", host: "edge-7.example.com", port: 2222, user: "ops"}) { userErrors { code } } }`)
    const dup = await gql(`mutation { registerNode(input: {name: "cp-1", host: "10.0.0.12"}) { userErrors { code } } }`)
    assert.deepEqual(dup.data.registerNode.userErrors, [{ code: 'ALREADY_EXISTS' }])
    const upd = await gql(`mutation { updateNode(input: {name: "cp-1", hostKeyFingerprint: "${FP}"}) { node { hostKeyFingerprint host } userErrors { code } } }`)
    assert.deepEqual(upd.data.updateNode, { node: { hostKeyFingerprint: FP, host: '10.0.0.11' }, userErrors: [] })

    const cp = await gql('{ nodes(labelSelector: "role=control-plane") { name } }')
    assert.deepEqual(cp.data.nodes, [{ name: 'cp-1' }])
    const notCp = await gql('{ nodes(labelSelector: "role notin (control-plane)") { name } }')
    assert.deepEqual(notCp.data.nodes, [{ name: 'edge-7' }, { name: 'local' }])
    const badSel = await gql('{ nodes(labelSelector: "role=(") { name } }')
    assert.equal(badSel.errors?.[0]?.extensions?.code, 'VALIDATION_FAILED')

    const rm = await gql('mutation { removeNode(name: "edge-7") { removed userErrors { code } } }')
    assert.deepEqual(rm.data.removeNode, { removed: true, userErrors: [] })
    const rmLocal = await gql('mutation { removeNode(name: "local") { removed userErrors { code field } } }')
    assert.deepEqual(rmLocal.data.removeNode, { removed: false, userErrors: [{ code: 'VALIDATION_FAILED', field: ['name'] }] })
    const audit = await gql('{ auditEvents { action node result } }')
    assert.deepEqual(
      audit.data.auditEvents.map((e: { action: string; result: string }) => `${e.action}:${e.result}`),
      ['removeNode:VALIDATION_FAILED', 'removeNode:OK', 'updateNode:OK', 'registerNode:ALREADY_EXISTS', 'registerNode:OK', 'registerNode:OK'],
    )
  })

  it('refuses bad node input naming the field, shell metacharacters included', async (t) => {
    const { gql } = await build(t)
    const cases: Array<[string, string[]]> = [
      ['{name: "cp;rm -rf /", host: "h"}', ['name']],
      ['{name: "cp-2", host: "h$(id)"}', ['host']],
      ['{name: "cp-2", host: "h", port: 70000}', ['port']],
      ['{name: "cp-2", host: "h", user: "root; id"}', ['user']],
      ['{name: "cp-2", host: "h", staticPodPath: "etc/kubernetes"}', ['staticPodPath']],
      ['{name: "cp-2", host: "h", staticPodPath: "/etc/../root"}', ['staticPodPath']],
      ['{name: "cp-2", host: "h", hostKeyFingerprint: "MD5:aa:bb"}', ['hostKeyFingerprint']],
      ['{name: "cp-2", host: "h", labels: [{key: "a b", value: "x"}]}', ['labels', '0', 'key']],
    ]
    for (const [input, field] of cases) {
      const res = await gql(`mutation { registerNode(input: ${input}) { node { name } userErrors { code field message } } }`)
      const [err] = res.data.registerNode.userErrors
      assert.equal(err?.code, 'VALIDATION_FAILED', input)
      assert.deepEqual(err.field, field, input)
    }
    const nodes = await gql('{ nodes { name } }')
    assert.deepEqual(nodes.data.nodes, [{ name: 'local' }])
  })

  it('a node that cannot be read is data: the others answer, it gets one error', async (t) => {
    const app = await build(t)
    await writeFile(join(app.manifests, 'web.yaml'), podYaml('web'))
    // Unpinned, so only its host key would be asked for; on loopback, where nothing listens on port 9.
    await app.gql('mutation { registerNode(input: {name: "cp-1", host: "127.0.0.1", port: 9}) { userErrors { code } } }')
    const res = await app.gql('{ staticPods(maxAgeSeconds: 0) { id stale } nodes { name agent { reachable lastError } } }')
    assert.deepEqual(res.data.staticPods, [{ id: 'local/default/web', stale: false }])
    assert.deepEqual(res.errors?.map((e) => [e.extensions?.code, e.extensions?.node]), [['NODE_UNVERIFIED', 'cp-1']])
    const cp1 = res.data.nodes.find((n: { name: string }) => n.name === 'cp-1')
    assert.equal(cp1.agent.reachable, false)
    assert.match(cp1.agent.lastError, /NODE_UNVERIFIED/)
    const direct = await app.gql('mutation { createStaticPod(input: {node: "cp-1", manifest: "apiVersion: v1\\nkind: Pod\\nmetadata: {name: a}\\nspec: {containers: [{name: a, image: b}]}\\n"}) { userErrors { code } } }')
    assert.deepEqual(direct.data.createStaticPod.userErrors, [{ code: 'NODE_UNVERIFIED' }])
  })

  it('one query shows one state per node: a field content with stored state gets the live read another field asked for', async (t) => {
    const app = await build(t, { env: { STATIC_PODS_MAX_AGE_SECONDS: '600' } })
    await writeFile(join(app.manifests, 'web.yaml'), podYaml('web'))
    assert.deepEqual((await app.gql('{ staticPods(maxAgeSeconds: 0) { name } }')).data.staticPods, [{ name: 'web' }])
    // Changed behind the service's back: the stored state (10 minutes fresh by the setting) no longer matches the node.
    await writeFile(join(app.manifests, 'db.yaml'), podYaml('db'))
    const stored = await app.gql('{ nodes { staticPods { name } } }')
    assert.deepEqual(stored.data.nodes[0].staticPods, [{ name: 'web' }], 'the stored state, as the setting allows')
    const both = await app.gql('{ staticPods(maxAgeSeconds: 0) { name } nodes { staticPods { name } } }')
    assert.deepEqual(both.data.staticPods.map((p: { name: string }) => p.name).sort(), ['db', 'web'])
    assert.deepEqual(both.data.nodes[0].staticPods.map((p: { name: string }) => p.name).sort(), ['db', 'web'], 'the same state as the live field')
  })

  it('the directory lint is served as findings', async (t) => {
    const app = await build(t)
    await writeFile(join(app.manifests, 'web.yaml.bak'), podYaml('web'))
    const res = await app.gql('{ node(name: "local") { findings { code fileName message } } }')
    const codes = res.data.node.findings.map((f: { code: string; fileName: string }) => `${f.code}:${f.fileName}`)
    assert.ok(codes.includes('STRAY_FILE:web.yaml.bak'), codes.join())
  })
})
