// The Lambda bundle itself (scripts/build-lambda.mjs), not the TypeScript
// sources: what it leaves out, and that it serves health, GraphQL and the
// GraphiQL playground with every asset, on a dynalite-backed store.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFile, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { HttpApiEvent, HttpApiResult } from '../src/lambda.ts'
import { LOCAL_CREDENTIALS, LOCAL_REGION, startDynalite, type LocalDynamo } from './support/dynalite.ts'
import { graphqlEvent, httpApiEvent } from './support/lambda-events.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
// Two levels below the root, like dist/lambda/, so the bundle finds schema/ where it will in the zip.
const outRelative = join('.tmp', `lambda-bundle-${process.pid}`)
const outDir = join(root, outRelative)
const TOKEN = 'bundle-test-token'

type Handler = (event: HttpApiEvent, context: object) => Promise<HttpApiResult>

describe('the Lambda bundle', () => {
  let dynamo: LocalDynamo
  let handler: Handler
  const savedEnv = { ...process.env }

  before(async () => {
    const built = spawnSync(process.execPath, ['scripts/build-lambda.mjs', '--out', outRelative], { cwd: root, encoding: 'utf8' })
    assert.equal(built.status, 0, built.stderr)
    dynamo = await startDynalite()
    const table = await dynamo.freshTable('bundle')
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_REGION: LOCAL_REGION,
      STORE_URL: `dynamodb:${table}`,
      DYNAMODB_ENDPOINT: dynamo.endpoint,
      AUTH_TOKENS: JSON.stringify({ tokens: [{ name: 'bundle', role: 'viewer', sha256: createHash('sha256').update(TOKEN).digest('hex') }] }),
      LOG_LEVEL: 'silent',
    })
    delete process.env.LOCAL_NODE_PATH
    handler = ((await import(pathToFileURL(join(outDir, 'lambda.mjs')).href)) as { handler: Handler }).handler
  })

  after(async () => {
    process.env = savedEnv
    await dynamo?.close()
    await rm(outDir, { recursive: true, force: true })
  })

  it('contains no native module and loads neither the Kubernetes client nor a SQLite driver at start', async () => {
    const main = await readFile(join(outDir, 'lambda.mjs'), 'utf8')
    // (cpu-features stays as ssh2's optional require inside a try: absent on Lambda, ssh2 does without.)
    assert.ok(!main.includes('"better-sqlite3"') && !main.includes("'better-sqlite3'"), 'better-sqlite3 is not even referenced')
    const meta = JSON.parse(await readFile(join(outDir, 'meta.json'), 'utf8')) as { outputs: Record<string, { entryPoint?: string; inputs: Record<string, unknown> }> }
    const start = Object.values(meta.outputs).find((o) => o.entryPoint)!
    const loadedAtStart = Object.keys(start.inputs)
    assert.ok(!loadedAtStart.some((p) => p.includes('@kubernetes/client-node')), 'the Kubernetes client is a lazy chunk')
    assert.ok(!loadedAtStart.some((p) => p.includes('@aws-sdk/client-ssm')), 'the SSM client is a lazy chunk')
    assert.ok(!loadedAtStart.some((p) => p.includes('better-sqlite3')))
    assert.ok((await readdir(join(outDir, 'chunks'))).length > 0)
  })

  it('answers GET /healthz and a GraphQL query through the bundled handler', async () => {
    const health = await handler(httpApiEvent('GET', '/healthz'), {})
    assert.equal(health.statusCode, 200, health.body)
    const query = await handler(graphqlEvent('{ nodes { name } }', {}, TOKEN), {})
    assert.equal(query.statusCode, 200, query.body)
    assert.deepEqual(JSON.parse(query.body), { data: { nodes: [] } })
  })

  it('serves the GraphiQL page and every asset it links, from the bundle', async () => {
    const page = await handler(httpApiEvent('GET', '/graphiql'), {})
    assert.equal(page.statusCode, 200, page.body)
    const linked = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    assert.ok(linked.length >= 4, linked.join(' '))
    for (const asset of linked) {
      const response = await handler(httpApiEvent('GET', asset), {})
      assert.equal(response.statusCode, 200, `${asset}: ${response.body.slice(0, 200)}`)
      assert.ok(response.body.length > 1000, asset)
    }
  })
})
