// The Lambda entry point, invoked as API Gateway (HTTP API, payload 2.0)
// invokes it: the app built once from the function's environment, secrets
// read through SSM at cold start, the DynamoDB store (dynalite on 127.0.0.1),
// and a real sshd node whose files are checked after each write.

import assert from 'node:assert/strict'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it, type TestContext } from 'node:test'
import { createLambdaApp, lambdaConfig, lambdaEnvironment, type HttpApiResult, type LambdaApp } from '../src/lambda.ts'
import { SecretLoadError } from '../src/lambda-secrets.ts'
import { ConfigError } from '../src/config.ts'
import { startDynalite, LOCAL_CREDENTIALS, LOCAL_REGION, type LocalDynamo } from './support/dynalite.ts'
import { graphqlEvent, httpApiEvent, startFakeSsm } from './support/lambda-events.ts'
import { startSshdFleet, type SshdFleet } from './support/sshd.ts'

const ADMIN_TOKEN = 'lambda-admin-token-5a1d'
const VIEWER_TOKEN = 'lambda-viewer-token-77e0'
const sha = (t: string) => createHash('sha256').update(t).digest('hex')
const TOKENS_DOCUMENT = JSON.stringify({
  tokens: [
    { name: 'lambda-admin', role: 'admin', sha256: sha(ADMIN_TOKEN) },
    { name: 'lambda-viewer', role: 'viewer', sha256: sha(VIEWER_TOKEN) },
  ],
})
const SSH_KEY_PARAMETER = '/staticpod-api/test/ssh-private-key'
const TOKENS_SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:staticpod-api/tokens-AbCdEf'

const json = (r: HttpApiResult) => JSON.parse(r.body) as Record<string, any>

/** A webhook receiver on 127.0.0.1 that answers 200 and keeps every POST (headers and the raw body). */
async function webhookReceiver(t: TestContext): Promise<{ url: string; deliveries: Array<{ headers: IncomingHttpHeaders; body: string }> }> {
  const deliveries: Array<{ headers: IncomingHttpHeaders; body: string }> = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      deliveries.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })
      res.writeHead(200).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, deliveries }
}
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` }
const lambdaContext = { awsRequestId: 'test', callbackWaitsForEmptyEventLoop: true }

function web(image: string): string {
  return `apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\nspec:\n  containers:\n  - name: web\n    image: ${image}\n`
}

describe('Lambda handler over API Gateway v2 events', () => {
  let dynamo: LocalDynamo
  let fleet: SshdFleet
  let ssm: Awaited<ReturnType<typeof startFakeSsm>>
  let lambda: LambdaApp
  let table: string
  const savedEnv = { ...process.env }

  before(async () => {
    dynamo = await startDynalite()
    table = await dynamo.freshTable('lambda')
    fleet = await startSshdFleet(1, { prefix: 'lambda' })
    ssm = await startFakeSsm({
      [SSH_KEY_PARAMETER]: await readFile(fleet.clientKeyFile, 'utf8'),
      [`/aws/reference/secretsmanager/${TOKENS_SECRET_ARN}`]: TOKENS_DOCUMENT,
    })
    // What the Lambda runtime and serverless.yml give the function; the SDK reads these from process.env.
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_REGION: LOCAL_REGION,
      AWS_ENDPOINT_URL_SSM: ssm.endpoint,
    })
    const { SSH_PRIVATE_KEY_FILE: _fromFile, ...sshEnv } = fleet.env
    lambda = await createLambdaApp({
      ...process.env,
      ...sshEnv,
      STORE_URL: `dynamodb:${table}`,
      DYNAMODB_ENDPOINT: dynamo.endpoint,
      SSH_PRIVATE_KEY_SSM_PARAMETER: SSH_KEY_PARAMETER,
      AUTH_TOKENS_SECRET_ARN: TOKENS_SECRET_ARN,
      // With DynamoDB, webhooks need a key to seal their secrets with (no key file beside a database).
      WEBHOOK_SECRET_KEY: randomBytes(32).toString('hex'),
      LOG_LEVEL: 'silent',
    })
  })

  after(async () => {
    await lambda?.app.close()
    await fleet?.stop()
    await ssm?.close()
    await dynamo?.close()
    process.env = savedEnv
  })

  it('read both secrets through SSM at cold start, decrypted', () => {
    assert.deepEqual([...ssm.requests].sort(), [
      `AmazonSSM.GetParameter ${SSH_KEY_PARAMETER} decrypt=true`,
      `AmazonSSM.GetParameter /aws/reference/secretsmanager/${TOKENS_SECRET_ARN} decrypt=true`,
    ].sort())
  })

  it('GET /healthz and /readyz answer 200 (readyz asks DynamoDB)', async () => {
    const health = await lambda.http(httpApiEvent('GET', '/healthz'), lambdaContext)
    assert.equal(health.statusCode, 200)
    assert.deepEqual(json(health), { status: 'ok' })
    const ready = await lambda.http(httpApiEvent('GET', '/readyz'), lambdaContext)
    assert.equal(ready.statusCode, 200, ready.body)
  })

  it('refuses a request without a token (no anonymous admin on Lambda)', async () => {
    const response = await lambda.http(graphqlEvent('{ nodes { name } }'), lambdaContext)
    assert.equal(response.statusCode, 401, response.body)
  })

  it('has no local node: LOCAL_NODE_PATH defaults to off', async () => {
    const response = await lambda.http(graphqlEvent('{ nodes { name } }', {}, ADMIN_TOKEN), lambdaContext)
    assert.equal(response.statusCode, 200, response.body)
    assert.deepEqual(json(response).data.nodes, [])
  })

  describe('with an SSH node', () => {
    let hashAfterCreate: string

    it('POST /graphql mutation: registers the sshd node and creates a static pod on it', async () => {
      const node = fleet.nodes[0]!
      const register = await lambda.http(
        graphqlEvent(
          `mutation ($input: RegisterNodeInput!) { registerNode(input: $input) { node { name kind } userErrors { code message } } }`,
          { input: { name: node.name, host: '127.0.0.1', port: node.port, user: fleet.user, staticPodPath: node.manifests, hostKeyFingerprint: node.fingerprint } },
          ADMIN_TOKEN,
        ),
        lambdaContext,
      )
      assert.equal(register.statusCode, 200, register.body)
      assert.deepEqual(json(register).data.registerNode, { node: { name: node.name, kind: 'SSH' }, userErrors: [] })

      const create = await lambda.http(
        graphqlEvent(
          `mutation ($input: CreateStaticPodInput!) { createStaticPod(input: $input) { staticPod { name hash revision } userErrors { code message } } }`,
          { input: { node: node.name, manifest: web('nginx:1.27') } },
          ADMIN_TOKEN,
        ),
        lambdaContext,
      )
      assert.equal(create.statusCode, 200, create.body)
      const payload = json(create).data.createStaticPod
      assert.deepEqual(payload.userErrors, [], create.body)
      assert.equal(payload.staticPod.revision, 1)
      hashAfterCreate = payload.staticPod.hash
      assert.equal(await readFile(join(node.manifests, 'web.yaml'), 'utf8'), web('nginx:1.27'))
    })

    it('POST /graphql query: reads the node live over SSH, answered from DynamoDB afterwards', async () => {
      const response = await lambda.http(
        graphqlEvent('{ nodes { name agent { reachable } staticPods(maxAgeSeconds: 0) { name namespace hash } } }', {}, VIEWER_TOKEN),
        lambdaContext,
      )
      assert.equal(response.statusCode, 200, response.body)
      const [node] = json(response).data.nodes
      assert.equal(node.agent.reachable, true)
      assert.deepEqual(node.staticPods, [{ name: 'web', namespace: 'default', hash: hashAfterCreate }])
    })

    it('REST PUT with If-Match: 200 with the current hash, 412 with a stale one; the node file follows', async () => {
      const node = fleet.nodes[0]!
      const path = `/api/v1/nodes/${node.name}/staticpods/default/web`
      const updated = await lambda.http(
        httpApiEvent('PUT', path, { headers: { ...auth, 'content-type': 'application/yaml', 'if-match': `"${hashAfterCreate}"` }, body: web('nginx:1.28') }),
        lambdaContext,
      )
      assert.equal(updated.statusCode, 200, updated.body)
      assert.equal(await readFile(join(node.manifests, 'web.yaml'), 'utf8'), web('nginx:1.28'))

      const stale = await lambda.http(
        httpApiEvent('PUT', path, { headers: { ...auth, 'content-type': 'application/yaml', 'if-match': `"${hashAfterCreate}"` }, body: web('nginx:9.9') }),
        lambdaContext,
      )
      assert.equal(stale.statusCode, 412, stale.body)
      assert.equal(json(stale).error.code, 'CONFLICT')
      assert.equal(await readFile(join(node.manifests, 'web.yaml'), 'utf8'), web('nginx:1.28'), 'a refused write leaves the file alone')
    })

    it('the scheduled refresh reads every node and records a hand edit as an OBSERVED revision', async () => {
      const node = fleet.nodes[0]!
      await writeFile(join(node.manifests, 'web.yaml'), web('nginx:hand-edited'))
      const summary = await lambda.refresh()
      assert.deepEqual(summary, { nodes: 1, refreshed: 1, failed: [] })
      const revisions = await lambda.app.services.store.listRevisions([{ node: node.name, namespace: 'default', name: 'web' }], 10)
      const newest = [...revisions.values()][0]?.[0]
      assert.equal(newest?.action, 'OBSERVED')
      assert.equal(newest?.manifest, web('nginx:hand-edited'))
    })

    it('a hand edit between two scheduled rounds is STATIC_POD_CHANGED in DynamoDB, and a signed POST delivered before the round returns', async (t) => {
      const node = fleet.nodes[0]!
      const { store } = lambda.app.services
      const hook = await webhookReceiver(t)
      const secret = 'lambda-webhook-secret-for-tests'
      const created = await lambda.http(
        graphqlEvent(
          'mutation ($input: WebhookInput!) { createWebhook(input: $input) { webhook { id } userErrors { code message } } }',
          { input: { url: hook.url, secret, types: ['STATIC_POD_CHANGED'] } },
          ADMIN_TOKEN,
        ),
        lambdaContext,
      )
      assert.equal(created.statusCode, 200, created.body)
      assert.deepEqual(json(created).data.createWebhook.userErrors, [], created.body)

      // Round one: the node as the last round left it, so nothing new.
      const before = await readFile(join(node.manifests, 'web.yaml'), 'utf8')
      assert.deepEqual(await lambda.refresh(), { nodes: 1, refreshed: 1, failed: [] })
      const last = (await store.listEvents({ limit: 1, order: 'newest' }))[0]?.id
      assert.equal(hook.deliveries.length, 0, 'round one found nothing to post')

      // The hand edit, then round two.
      const edited = web('nginx:edited-between-rounds')
      await writeFile(join(node.manifests, 'web.yaml'), edited)
      assert.deepEqual(await lambda.refresh(), { nodes: 1, refreshed: 1, failed: [] })
      const events = await store.listEvents({ after: last, limit: 100, order: 'oldest' })
      const changed = events.filter((e) => e.type === 'STATIC_POD_CHANGED')
      assert.equal(changed.length, 1, JSON.stringify(events))
      const event = changed[0]!
      assert.deepEqual(
        { node: event.node, namespace: event.namespace, name: event.name, actor: event.actor, fromHash: event.fromHash, toHash: event.toHash },
        { node: node.name, namespace: 'default', name: 'web', actor: null, fromHash: sha(before), toHash: sha(edited) },
      )

      // The scheduled function waited for the delivery: it is there when the round returns.
      assert.equal(hook.deliveries.length, 1, 'one POST, before refresh() returned')
      const delivery = hook.deliveries[0]!
      assert.equal(delivery.headers['x-staticpod-signature'], `sha256=${createHmac('sha256', secret).update(delivery.body).digest('hex')}`)
      assert.equal(delivery.headers['x-staticpod-event'], 'STATIC_POD_CHANGED')
      assert.match(String(delivery.headers['x-staticpod-delivery']), /\S/)
      const body = JSON.parse(delivery.body) as Record<string, unknown>
      assert.equal(body.id, event.id)
      assert.equal(body.toHash, sha(edited))
      assert.match(String(body.text), /default\/web/)

      // Round three: nothing changed since, so nothing new and nothing posted.
      await lambda.refresh()
      assert.deepEqual((await store.listEvents({ after: event.id, limit: 100, order: 'oldest' })).filter((e) => e.type === 'STATIC_POD_CHANGED'), [])
      assert.equal(hook.deliveries.length, 1, 'no second POST')
    })
  })
})

describe('Lambda configuration', () => {
  it('refuses to start without tokens', () => {
    assert.throws(() => lambdaConfig({ STORE_URL: 'dynamodb:t-able', LOCAL_NODE_PATH: 'off' }), (err) => err instanceof ConfigError && /tokens are required/.test(err.message))
  })

  it('LOCAL_NODE_PATH defaults to off, and an explicit value is kept', async () => {
    assert.equal((await lambdaEnvironment({})).LOCAL_NODE_PATH, 'off')
    assert.equal((await lambdaEnvironment({ LOCAL_NODE_PATH: '/mnt/efs/manifests' })).LOCAL_NODE_PATH, '/mnt/efs/manifests')
  })

  it('a secret named twice, or missing, stops the cold start with a message naming it', async () => {
    await assert.rejects(
      lambdaEnvironment({ AUTH_TOKENS: '{}', AUTH_TOKENS_SECRET_ARN: 'arn:x' }),
      (err) => err instanceof SecretLoadError && /AUTH_TOKENS_SECRET_ARN, AUTH_TOKENS/.test(err.message),
    )
    await assert.rejects(
      lambdaEnvironment({ SSH_PRIVATE_KEY_SSM_PARAMETER: '/nope' }, async () => {
        throw new Error('ParameterNotFound')
      }),
      (err) => err instanceof SecretLoadError && err.message.includes('/nope') && err.message.includes('SSH_PRIVATE_KEY_SSM_PARAMETER'),
    )
  })
})
