// Attacks against a running server over real HTTP on 127.0.0.1: each is
// refused with the right code, nothing changes on the node (the directory is
// compared byte for byte), and no token or key material reaches the logs.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { streamLogger } from '../../src/logging.ts'
import { makeTempDir, podYaml } from '../helper.ts'
import { TOKENS, TOKENS_DOCUMENT, bearer } from './tokens.ts'
import { testResolver } from '../support/resolver.ts'


let app: FastifyInstance
let base: string
let dir: string
let manifests: string
const logLines: string[] = []

async function snapshot(): Promise<Record<string, string>> {
  const names = (await readdir(manifests)).sort()
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await readFile(join(manifests, n), 'utf8')] as const)))
}

async function post(body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, json: text ? JSON.parse(text) : null }
}

describe('security', () => {
  let initial: Record<string, string>

  let privateKey: string

  before(async () => {
    dir = await makeTempDir()
    // A real key, so that the configuration accepts it; the test then looks for it in the logs.
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'security-test', '-f', join(dir, 'id_ed25519')])
    privateKey = await readFile(join(dir, 'id_ed25519'), 'utf8')
    manifests = join(dir, 'manifests')
    const config = loadConfig({
      STORE_URL: `sqlite:${join(dir, 'db.sqlite')}`,
      LOCAL_NODE_PATH: manifests,
      LOCAL_NODE_STATE_DIR: join(dir, 'state'),
      LOCAL_KUBELET_HEALTHZ_URL: 'http://127.0.0.1:9/healthz',
      AUTH_TOKENS: TOKENS_DOCUMENT,
      SSH_PRIVATE_KEY: privateKey,
      RATE_LIMIT_PER_MINUTE: '40',
      BODY_LIMIT_BYTES: String(64 * 1024),
      LOG_LEVEL: 'debug',
    })
    app = await buildApp(config, { logger: streamLogger('debug', { write: (line: string) => void logLines.push(line) }), resolveHost: testResolver })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
    await writeFile(join(manifests, 'etcd.yaml'), podYaml('etcd', 'registry.k8s.io/etcd:3.5'))
    initial = await snapshot()
  })

  after(async () => {
    await app.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('no token: 401 UNAUTHENTICATED', async () => {
    const res = await post({ query: 'mutation { deleteStaticPod(input: {node: "local", name: "etcd"}) { deleted } }' })
    assert.equal(res.status, 401)
    assert.equal(res.json.errors[0].extensions.code, 'UNAUTHENTICATED')
    assert.deepEqual(await snapshot(), initial)
  })

  it('a wrong token: 401 UNAUTHENTICATED', async () => {
    const res = await post({ query: '{ nodes { name } }' }, bearer(`${TOKENS.admin}x`))
    assert.equal(res.status, 401)
    assert.equal(res.json.errors[0].extensions.code, 'UNAUTHENTICATED')
  })

  it('a viewer mutating: FORBIDDEN, nothing done', async () => {
    const res = await post({ query: 'mutation { deleteStaticPod(input: {node: "local", name: "etcd"}) { deleted userErrors { code } } }' }, bearer(TOKENS.viewer))
    assert.deepEqual(res.json.data.deleteStaticPod, { deleted: false, userErrors: [{ code: 'FORBIDDEN' }] })
    assert.deepEqual(await snapshot(), initial)
  })

  it('a depth-20 query: refused before it runs', async () => {
    // nodes { staticPods { node { staticPods { node { ... name } } } } }: 21 levels.
    let deep = 'name'
    for (let i = 0; i < 10; i++) deep = `staticPods { node { ${deep} } }`
    const res = await post({ query: `{ nodes { ${deep} } }` }, bearer(TOKENS.admin))
    assert.equal(res.status, 400)
    assert.equal(res.json.errors[0].extensions.code, 'QUERY_TOO_DEEP')
    assert.equal(res.json.data ?? null, null)
  })

  it('introspection is not limited: GraphiQL can load the schema', async () => {
    const { getIntrospectionQuery } = await import('graphql')
    const res = await post({ query: getIntrospectionQuery() }, bearer(TOKENS.viewer))
    assert.equal(res.status, 200)
    assert.ok(res.json.data.__schema.types.length > 20)
  })

  it('an oversized body: 413, nothing written', async () => {
    const manifest = podYaml('big') + `# ${'x'.repeat(100 * 1024)}\n`
    const res = await post({ query: 'mutation($m: String!) { createStaticPod(input: {node: "local", manifest: $m}) { userErrors { code } } }', variables: { m: manifest } }, bearer(TOKENS.admin))
    assert.equal(res.status, 413)
    assert.deepEqual(await snapshot(), initial)
  })

  it('a manifest with a Secret volume: VALIDATION_FAILED naming the field', async () => {
    const m = podYaml('leaky') + '  volumes:\n  - name: creds\n    secret:\n      secretName: db-password\n'
    const res = await post({ query: 'mutation($m: String!) { createStaticPod(input: {node: "local", manifest: $m}) { userErrors { code field } } }', variables: { m } }, bearer(TOKENS.operator))
    assert.deepEqual(res.json.data.createStaticPod.userErrors[0], { code: 'VALIDATION_FAILED', field: ['manifest', 'spec', 'volumes', '0', 'secret'] })
    assert.deepEqual(await snapshot(), initial)
  })

  it('a node name with shell metacharacters: VALIDATION_FAILED (register) and NOT_FOUND (use)', async () => {
    const reg = await post({ query: 'mutation { registerNode(input: {name: "n1; rm -rf /", host: "127.0.0.1"}) { userErrors { code field } } }' }, bearer(TOKENS.admin))
    assert.deepEqual(reg.json.data.registerNode.userErrors[0], { code: 'VALIDATION_FAILED', field: ['name'] })
    const use = await post({ query: 'mutation { deleteStaticPod(input: {node: "local$(touch /tmp/pwned)", name: "etcd"}) { userErrors { code } } }' }, bearer(TOKENS.admin))
    assert.equal(use.json.data.deleteStaticPod.userErrors[0].code, 'NOT_FOUND')
    assert.deepEqual(await snapshot(), initial)
  })

  it('a fileName with ../: VALIDATION_FAILED on fileName, nothing written anywhere', async () => {
    const res = await post(
      { query: 'mutation($m: String!) { createStaticPod(input: {node: "local", manifest: $m, fileName: "../escaped.yaml"}) { userErrors { code field } } }', variables: { m: podYaml('escaped') } },
      bearer(TOKENS.admin),
    )
    assert.deepEqual(res.json.data.createStaticPod.userErrors[0], { code: 'VALIDATION_FAILED', field: ['fileName'] })
    assert.deepEqual(await snapshot(), initial)
    assert.deepEqual((await readdir(dir)).filter((n) => n.includes('escaped')), [])
  })

  it('a flood past the rate limit: 429 RATE_LIMITED, bounded and per token', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 60; i++) statuses.push((await post({ query: '{ cluster { nodeCount } }' }, bearer(TOKENS.edgeViewer))).status)
    assert.ok(statuses.includes(429), `no 429 in ${statuses.join(',')}`)
    const limited = await post({ query: '{ cluster { nodeCount } }' }, bearer(TOKENS.edgeViewer))
    assert.equal(limited.status, 429)
    assert.equal(limited.json.errors[0].extensions.code, 'RATE_LIMITED')
    const other = await post({ query: '{ cluster { nodeCount } }' }, bearer(TOKENS.operator))
    assert.equal(other.status, 200, 'another token has its own budget')
  })

  it('nothing changed on the node, and the logs hold no token or key material', async () => {
    assert.deepEqual(await snapshot(), initial)
    const logs = logLines.join('')
    assert.ok(logLines.length > 20, 'the server did log')
    for (const secret of Object.values(TOKENS)) assert.ok(!logs.includes(secret), `token ${secret.slice(0, 6)}… leaked`)
    const keyBody = privateKey.split('\n')[1] as string
    assert.ok(keyBody.length > 40 && !logs.includes(keyBody), 'private key leaked')
    assert.ok(!logs.includes('BEGIN OPENSSH PRIVATE KEY'), 'private key header leaked')
    assert.ok(!logs.includes('db-password'), 'a Secret-looking value from a manifest leaked')
  })
})
