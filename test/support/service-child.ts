// A whole service instance in its own process (own SQLite store), for tests of
// several instances writing to one SSH node. It registers the node, prints
// READY, waits until the go file appears, then sends `count` concurrent
// compare-and-swap updates and prints one RESULT line with each outcome.
// It exits by itself after a minute, so nothing is left running.
//
//   service-child.ts <nodeJson> <goFile> <expectedHash> <count> <instance>
//     nodeJson: {"name","port","user","staticPodPath","hostKeyFingerprint","keyFile","stateDir","dir"}
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { testResolver } from './resolver.ts'

const SELF_DESTRUCT_MS = 60_000
setTimeout(() => process.exit(3), SELF_DESTRUCT_MS).unref()

const [nodeJson, goFile, expectedHash, count, instance] = process.argv.slice(2)
if (!nodeJson || !goFile || !expectedHash || !count || !instance) throw new Error('usage: service-child.ts <nodeJson> <goFile> <expectedHash> <count> <instance>')
const node = JSON.parse(nodeJson) as {
  name: string
  port: number
  user: string
  staticPodPath: string
  hostKeyFingerprint: string
  keyFile: string
  stateDir: string
  dir: string
}

const app = await buildApp(
  loadConfig({
    STORE_URL: `sqlite:${join(node.dir, `store-${instance}.db`)}`,
    LOCAL_NODE_PATH: 'off',
    SSH_PRIVATE_KEY_FILE: node.keyFile,
    SSH_STATE_DIR: node.stateDir,
    SSH_KUBELET_HEALTHZ_PORT: '9',
    LOCK_WAIT_MS: '30000',
  }),
  { logger: false, resolveHost: testResolver },
)
const gql = async (query: string, variables: Record<string, unknown>) =>
  (await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })).json()

const registered = await gql(
  `mutation($input: RegisterNodeInput!) { registerNode(input: $input) { userErrors { code message } } }`,
  { input: { name: node.name, host: '127.0.0.1', port: node.port, user: node.user, staticPodPath: node.staticPodPath, hostKeyFingerprint: node.hostKeyFingerprint } },
)
if (registered.data?.registerNode?.userErrors?.length) throw new Error(JSON.stringify(registered))
// Warm: the connection is open before the race starts, as in a long-running instance.
await gql(`query($n: String!) { staticPods(node: $n, maxAgeSeconds: 0) { name } }`, { n: node.name })
process.stdout.write('READY\n')
for (let i = 0; i < 6000 && !existsSync(goFile); i++) await sleep(10)

const manifest = (i: number) => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: main\n    image: nginx:${instance}.${i}\n`
const results = await Promise.all(
  Array.from({ length: Number(count) }, async (_, i) => {
    const res = await gql(
      `mutation($input: UpdateStaticPodInput!) { updateStaticPod(input: $input) { staticPod { hash } userErrors { code message } } }`,
      { input: { node: node.name, name: 'web', manifest: manifest(i), expectedHash } },
    )
    const payload = res.data?.updateStaticPod
    return payload?.userErrors?.length ? (payload.userErrors[0].code === 'CONFLICT' || payload.userErrors[0].code === 'OK' ? payload.userErrors[0].code : `${payload.userErrors[0].code}: ${payload.userErrors[0].message}`) : payload?.staticPod ? 'OK' : `ERROR ${JSON.stringify(res.errors)}`
  }),
)
process.stdout.write(`RESULT ${JSON.stringify(results)}\n`)
await app.close()
process.exit(0)
