// Every bad input of the corpus, sent through GraphQL to a running app, on a
// local node and on an SSH node: VALIDATION_FAILED naming the field, nothing
// written, nothing lost.

import assert from 'node:assert/strict'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { build, NODE_KINDS, podYaml, stopSharedSshd } from '../helper.ts'
import { badInputs, BAD_INPUT_NODE_NAME } from '../manifest/bad-inputs.ts'

const CREATE = `mutation($input: CreateStaticPodInput!) { createStaticPod(input: $input) { staticPod { name } userErrors { code message field } } }`
const UPDATE = `mutation($input: UpdateStaticPodInput!) { updateStaticPod(input: $input) { staticPod { name } userErrors { code message field } } }`

/** Every entry of the directory (dotfiles too) with its bytes. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir)).sort()
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, (await readFile(join(dir, n))).toString('base64')] as const)))
}

after(stopSharedSshd)

for (const kind of NODE_KINDS) describe(`bad inputs through GraphQL (${kind} node)`, () => {
  it('the corpus has at least 25 entries', () => {
    assert.ok(badInputs.length >= 25, `only ${badInputs.length}`)
  })

  it('each string input is VALIDATION_FAILED with a field path, for create and update, and the directory is unchanged', async (t) => {
    assert.equal(BAD_INPUT_NODE_NAME, 'local')
    const app = await build(t, { node: kind, nodeName: BAD_INPUT_NODE_NAME })
    // An existing pod that updates aim at, so that an update gets as far as validation.
    await writeFile(join(app.manifests, 'existing.yaml'), podYaml('existing'))
    const before = await snapshot(app.manifests)
    let checked = 0
    for (const bad of badInputs) {
      if (typeof bad.manifest !== 'string') continue
      const res = await app.gql(CREATE, { input: { node: app.nodeName, manifest: bad.manifest, ...(bad.fileName ? { fileName: bad.fileName } : {}) } })
      assert.equal(res.errors, undefined, `${bad.label}: ${JSON.stringify(res.errors)}`)
      const [first] = res.data.createStaticPod.userErrors
      assert.equal(first?.code, 'VALIDATION_FAILED', `${bad.label}: ${JSON.stringify(res.data)}`)
      assert.deepEqual(first.field, bad.expectField, bad.label)
      assert.ok(first.message.length > 0)
      assert.equal(res.data.createStaticPod.staticPod, null)
      assert.deepEqual(await snapshot(app.manifests), before, `${bad.label} changed the directory`)

      if (!bad.fileName) {
        const upd = await app.gql(UPDATE, { input: { node: app.nodeName, name: 'existing', manifest: bad.manifest } })
        assert.equal(upd.data.updateStaticPod.userErrors[0]?.code, 'VALIDATION_FAILED', `update ${bad.label}`)
        assert.deepEqual(await snapshot(app.manifests), before, `update ${bad.label} changed the directory`)
      }
      checked++
    }
    assert.ok(checked >= 25, `only ${checked} string inputs`)
    const audit = await app.gql('{ auditEvents(limit: 500) { result } }')
    assert.ok(audit.data.auditEvents.every((e: { result: string }) => e.result === 'VALIDATION_FAILED'), 'every refusal is audited')
  })

  it('bytes that are not UTF-8 are refused before they can become U+FFFD, and nothing is written', async (t) => {
    const app = await build(t, { node: kind, nodeName: BAD_INPUT_NODE_NAME })
    const binary = badInputs.filter((b) => typeof b.manifest !== 'string')
    assert.ok(binary.length > 0)
    for (const bad of binary) {
      const raw = Buffer.concat([
        Buffer.from(JSON.stringify({ query: CREATE, variables: { input: { node: app.nodeName, manifest: '@@' } } }).split('"@@"')[0] as string),
        Buffer.from('"'),
        Buffer.from(bad.manifest as Uint8Array),
        Buffer.from('"}}}'),
      ])
      const res = await app.app.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json' }, payload: raw })
      assert.equal(res.statusCode, 400, bad.label)
      const body = res.json()
      assert.equal(body.errors[0].extensions.code, 'VALIDATION_FAILED', bad.label)
      assert.deepEqual(body.errors[0].extensions.field, ['body'])
      assert.deepEqual(await readdir(app.manifests), [])
    }
  })
})
