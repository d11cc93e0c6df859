// The REST surface, on the same services as GraphQL: ETag = hash, If-Match
// compare-and-swap (412), YAML bytes on Accept, typed JSON errors.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { build, podYaml } from '../helper.ts'

const sha = (s: string) => createHash('sha256').update(s).digest('hex')
const URL = '/api/v1/nodes/local/staticpods/kube-system/web'
const yaml = (image: string) => podYaml('web', image, '  namespace: kube-system\n')

describe('REST', () => {
  it('round trip: PUT creates, GET JSON and YAML, PUT with the ETag, PUT with the old ETag is 412, DELETE', async (t) => {
    const { app, manifests } = await build(t)
    const v1 = yaml('nginx:1')
    const created = await app.inject({ method: 'PUT', url: URL, headers: { 'content-type': 'application/yaml' }, payload: v1 })
    assert.equal(created.statusCode, 201, created.body)
    assert.equal(created.headers.etag, `"${sha(v1)}"`)
    assert.equal(await readFile(join(manifests, 'web.yaml'), 'utf8'), v1)

    const json = await app.inject({ method: 'GET', url: URL })
    assert.equal(json.statusCode, 200)
    assert.equal(json.headers.etag, `"${sha(v1)}"`)
    const body = json.json()
    assert.equal(body.id, 'local/kube-system/web')
    assert.equal(body.mirrorPodName, 'web-local')
    assert.equal(body.revision, 1)
    assert.deepEqual(body.containers, [{ name: 'main', image: 'nginx:1', init: false }])

    const asYaml = await app.inject({ method: 'GET', url: URL, headers: { accept: 'application/yaml' } })
    assert.equal(asYaml.statusCode, 200)
    assert.match(String(asYaml.headers['content-type']), /^application\/yaml/)
    assert.equal(asYaml.body, v1)

    const v2 = yaml('nginx:2')
    const updated = await app.inject({ method: 'PUT', url: URL, headers: { 'if-match': json.headers.etag as string, 'content-type': 'text/plain' }, payload: v2 })
    assert.equal(updated.statusCode, 200, updated.body)
    assert.equal(updated.json().revision, 2)
    assert.equal(updated.json().previousHash, sha(v1))

    const stale = await app.inject({ method: 'PUT', url: URL, headers: { 'if-match': json.headers.etag as string }, payload: yaml('nginx:3') })
    assert.equal(stale.statusCode, 412)
    assert.equal(stale.json().error.code, 'CONFLICT')
    assert.equal(await readFile(join(manifests, 'web.yaml'), 'utf8'), v2, 'nothing changed')

    const staleDelete = await app.inject({ method: 'DELETE', url: URL, headers: { 'if-match': json.headers.etag as string } })
    assert.equal(staleDelete.statusCode, 412)
    const deleted = await app.inject({ method: 'DELETE', url: URL, headers: { 'if-match': `"${sha(v2)}"` } })
    assert.equal(deleted.statusCode, 204)
    assert.deepEqual(await readdir(manifests), [])
    assert.equal((await app.inject({ method: 'GET', url: URL })).statusCode, 404)
  })

  it('a JSON manifest keeps its exact bytes', async (t) => {
    const { app, manifests } = await build(t)
    const manifest = '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"kube-system"},\n "spec":{"containers":[{"name":"a","image":"b"}]}}'
    const res = await app.inject({ method: 'PUT', url: URL, headers: { 'content-type': 'application/json' }, payload: manifest })
    assert.equal(res.statusCode, 201, res.body)
    assert.equal(await readFile(join(manifests, 'web.yaml'), 'utf8'), manifest)
  })

  it('refuses a manifest for another pod than the path, and bad input, with typed errors', async (t) => {
    const { app, manifests } = await build(t)
    const other = await app.inject({ method: 'PUT', url: URL, payload: podYaml('api', 'x', '  namespace: kube-system\n') })
    assert.equal(other.statusCode, 400)
    assert.deepEqual(other.json().error.field, ['manifest', 'metadata', 'name'])
    const otherNs = await app.inject({ method: 'PUT', url: URL, payload: podYaml('web') })
    assert.equal(otherNs.statusCode, 400)
    assert.deepEqual(otherNs.json().error.field, ['manifest', 'metadata', 'namespace'])
    const secret = await app.inject({ method: 'PUT', url: URL, payload: yaml('x') + '  volumes:\n  - name: s\n    secret: {secretName: s}\n' })
    assert.equal(secret.statusCode, 400)
    assert.equal(secret.json().error.code, 'VALIDATION_FAILED')
    const notUtf8 = await app.inject({ method: 'PUT', url: URL, payload: Buffer.from([0x61, 0xff, 0xfe]) })
    assert.equal(notUtf8.statusCode, 400)
    const badIfMatch = await app.inject({ method: 'PUT', url: URL, headers: { 'if-match': 'yesterday' }, payload: yaml('x') })
    assert.equal(badIfMatch.statusCode, 400)
    const ifMatchMissing = await app.inject({ method: 'PUT', url: URL, headers: { 'if-match': '*' }, payload: yaml('x') })
    assert.equal(ifMatchMissing.statusCode, 412)
    assert.deepEqual(await readdir(manifests), [])
    const noNode = await app.inject({ method: 'GET', url: '/api/v1/nodes/nope/staticpods' })
    assert.equal(noNode.statusCode, 404)
    assert.equal(noNode.json().error.code, 'NOT_FOUND')
    const noRoute = await app.inject({ method: 'GET', url: '/api/v1/nothing' })
    assert.equal(noRoute.statusCode, 404)
    assert.equal(noRoute.json().error.code, 'NOT_FOUND')
  })

  it('If-None-Match: * only creates: 409 when the pod exists', async (t) => {
    const { app } = await build(t)
    assert.equal((await app.inject({ method: 'PUT', url: URL, headers: { 'if-none-match': '*' }, payload: yaml('a') })).statusCode, 201)
    const again = await app.inject({ method: 'PUT', url: URL, headers: { 'if-none-match': '*' }, payload: yaml('b') })
    assert.equal(again.statusCode, 409)
    assert.equal(again.json().error.code, 'ALREADY_EXISTS')
  })

  it('lists nodes and static pods, and serves an OpenAPI document', async (t) => {
    const { app, gql } = await build(t)
    await app.inject({ method: 'PUT', url: URL, payload: yaml('a') })
    await gql('mutation { registerNode(input: {name: "cp-1", host: "10.0.0.11"}) { userErrors { code } } }')
    const nodes = await app.inject('/api/v1/nodes')
    assert.deepEqual(
      nodes.json().map((n: { name: string; kind: string }) => [n.name, n.kind]),
      [
        ['cp-1', 'SSH'],
        ['local', 'LOCAL'],
      ],
    )
    const pods = await app.inject('/api/v1/nodes/local/staticpods?maxAgeSeconds=0')
    assert.deepEqual(pods.json().map((p: { id: string }) => p.id), ['local/kube-system/web'])
    const doc = await app.inject('/docs/json')
    assert.equal(doc.statusCode, 200)
    const openapi = doc.json()
    assert.match(openapi.openapi, /^3\./)
    assert.ok(openapi.paths['/api/v1/nodes/{node}/staticpods/{namespace}/{name}'].put)
    assert.equal(openapi.paths['/graphiql'], undefined, 'only the REST API is documented there')
  })
})
