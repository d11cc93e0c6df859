// applyStaticPodToNodes and updateStaticPod(waitForReady) on real sshd nodes,
// each with the stand-in runtime of test/support/fake-runtime.ts behind its
// crictl: a rolling change that stops at a node whose pod never becomes ready
// (with no API server, with the API server stand-in up, and with it stopped),
// ALL_AT_ONCE with an unreachable node, crash loops, dry runs with diffs, and
// the rollout's progress read from a second request while it runs.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it, type TestContext } from 'node:test'
import { podYaml } from '../helper.ts'
import { FakeApiServer } from '../support/fake-apiserver.ts'
import { FakeRuntime, type FakeRuntimeOptions } from '../support/fake-runtime.ts'
import { sshFleetApp, type SshTestApp } from '../support/ssh-app.ts'
import { startBlackHole, startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex')

// The old manifest as a person wrote it (comment, odd spacing, no final newline): it must come back byte for byte.
const OLD = `# web, hand-edited on the node\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: edge\nspec:\n  containers:\n  - name: main\n    image:   nginx:1.26\n  - name: sidecar\n    image: busybox:1.36`
const NEW = podYaml('web', 'nginx:1.27', '  namespace: edge\n').replace('    image: nginx:1.27\n', '    image: nginx:1.27\n  - name: sidecar\n    image: busybox:1.36\n')

const APPLY = `mutation($input: ApplyToNodesInput!) { applyStaticPodToNodes(input: $input) {
  rolloutId
  results { node status diff staticPod { hash revision } error { code message field } }
  userErrors { code message field } } }`
const UPDATE = `mutation($input: UpdateStaticPodInput!) { updateStaticPod(input: $input) {
  staticPod { hash } previousHash changed rolledBack userErrors { code message } } }`

let fleet: SshdFleet

before(async () => {
  // Every node's crictl serves the document its stand-in runtime writes.
  fleet = await startSshdFleet(6, { prefix: 'ro', node: () => ({ crictl: { state: { sandboxes: [], containers: [] } } }) })
})
after(() => fleet.stop())

const node = (i: number): SshdNode => fleet.nodes[i - 1] as SshdNode

type ApiMode = 'none' | 'up' | 'stopped'

interface Bed {
  app: SshTestApp
  runtime: FakeRuntime
  api: FakeApiServer | null
}

/**
 * The app over nodes (their staticPodPath emptied, then holding OLD), with the
 * stand-in runtime running them. 'stopped': KUBECONFIG points at an API server
 * stand-in that no longer answers.
 */
async function bed(t: TestContext, nodes: SshdNode[], opts: { apiMode?: ApiMode; runtime?: FakeRuntimeOptions; env?: Record<string, string> } = {}): Promise<Bed> {
  const apiMode = opts.apiMode ?? 'none'
  const api = apiMode === 'none' ? null : new FakeApiServer()
  const env: Record<string, string> = { SSH_CONNECT_TIMEOUT_MS: '1500', KUBE_REQUEST_TIMEOUT_MS: '1000', ...opts.env }
  if (api) {
    await api.start()
    t.after(() => api.stop())
    env.KUBECONFIG = await api.writeKubeconfig(join(fleet.root, `kubeconfig-${process.pid}-${Math.random().toString(36).slice(2)}`))
    for (const n of nodes) api.addNode({ name: n.name, internalIP: '127.0.0.1', labels: {} })
  }
  const app = await sshFleetApp(t, fleet, env)
  for (const n of nodes) {
    for (const f of await readdir(n.manifests)) await rm(join(n.manifests, f), { force: true, recursive: true })
    await writeFile(join(n.manifests, 'web.yaml'), OLD)
    await app.addNode(n, { labels: [{ key: 'tier', value: 'edge' }] })
  }
  const runtime = new FakeRuntime(
    nodes.map((n) => ({ name: n.name, staticPodPath: n.manifests, crictlStatePath: join(n.dir, 'crictl.json') })),
    { api: api ?? undefined, ...opts.runtime },
  )
  await runtime.sync() // the old pod runs, ready, everywhere
  runtime.start(100)
  t.after(() => runtime.stop())
  if (apiMode === 'stopped') await api?.stop()
  return { app, runtime, api }
}

/** Bytes and modification time of every entry of a directory (dotfiles included). */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir)).sort()
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, `${sha256(await readFile(join(dir, n)))} ${(await stat(join(dir, n))).mtimeMs}`] as const)))
}

async function rollingWhereNode3NeverGetsReady(t: TestContext, apiMode: ApiMode): Promise<void> {
  const nodes = [1, 2, 3, 4, 5].map(node)
  const { app, runtime } = await bed(t, nodes, { apiMode })
  runtime.behave(node(3).name, 'never-ready')
  const untouched = [await snapshot(node(4).manifests), await snapshot(node(5).manifests)]

  const started = performance.now()
  const res = await app.gql(APPLY, {
    input: { labelSelector: 'tier=edge', manifest: NEW, strategy: 'ROLLING', maxUnavailable: 1, readyTimeoutSeconds: 5, autoRollback: true },
  })
  const elapsed = performance.now() - started
  assert.equal(res.errors, undefined, JSON.stringify(res.errors))
  const payload = res.data.applyStaticPodToNodes
  assert.deepEqual(payload.userErrors, [])
  assert.deepEqual(
    payload.results.map((r: { node: string; status: string }) => [r.node, r.status]),
    [
      [node(1).name, 'APPLIED'],
      [node(2).name, 'APPLIED'],
      [node(3).name, 'ROLLED_BACK'],
      [node(4).name, 'SKIPPED'],
      [node(5).name, 'SKIPPED'],
    ],
  )
  const [, , third, fourth] = payload.results
  assert.equal(third.error.code, 'TIMEOUT')
  assert.match(third.error.message, new RegExp(`node ${node(3).name}: the new pod was not ready within 5 s: container runtime: container main CREATED.*the previous manifest \\(sha256 ${sha256(OLD)}\\) was written back`))
  assert.equal(third.staticPod.hash, sha256(OLD), 'the pod on node 3 now is the old one')
  assert.equal(fourth.error, null)
  // Bounded by the one timeout it waited out, plus the writes and polls (generous: a loaded 2-core machine).
  assert.ok(elapsed < 30_000, `took ${Math.round(elapsed)} ms`)

  // The files: new bytes on 1-2, the old bytes back on 3 byte for byte, 4-5 not touched at all.
  for (const i of [1, 2]) assert.equal(await readFile(join(node(i).manifests, 'web.yaml'), 'utf8'), NEW)
  assert.deepEqual(await readFile(join(node(3).manifests, 'web.yaml')), Buffer.from(OLD))
  assert.deepEqual([await snapshot(node(4).manifests), await snapshot(node(5).manifests)], untouched)
  for (const i of [1, 2, 3]) assert.deepEqual((await readdir(node(i).manifests)).filter((f) => !f.startsWith('.')), ['web.yaml'])

  // The record: node 3's history is OLD (observed), NEW (applied), OLD (rollback); every step audited.
  const history = await app.gql(`{ staticPod(node: "${node(3).name}", namespace: "edge", name: "web", maxAgeSeconds: 0) { hash history { action hash actor } } }`)
  assert.deepEqual(
    history.data.staticPod.history.map((h: { action: string; hash: string }) => [h.action, h.hash]),
    [['ROLLBACK', sha256(OLD)], ['UPDATE', sha256(NEW)], ['OBSERVED', sha256(OLD)]],
  )
  const audit = await app.gql(`{ auditEvents(limit: 50) { action node result message toHash } }`)
  const events = audit.data.auditEvents as Array<{ action: string; node: string | null; result: string; message: string | null }>
  const onNode = (n: SshdNode) => events.filter((e) => e.node === n.name).map((e) => `${e.action} ${e.result}`).reverse()
  assert.deepEqual(onNode(node(1)), ['applyStaticPodToNodes OK', 'applyStaticPodToNodes OK'], 'write, then ready')
  assert.deepEqual(onNode(node(3)), ['applyStaticPodToNodes OK', 'applyStaticPodToNodes TIMEOUT', 'rollbackStaticPod OK'])
  assert.deepEqual(onNode(node(4)), [])
  // Which signal said ready: the mirror pod when the API server answers, else the runtime alone.
  const ready = events.find((e) => e.node === node(1).name && e.message?.includes('ready after'))
  assert.match(ready?.message ?? '', apiMode === 'up' ? /\(API server: mirror pod Ready\)$/ : /\(container runtime: new sandbox READY, every container RUNNING\)$/)
  const whole = events.find((e) => e.node === null && e.action === 'applyStaticPodToNodes')
  assert.match(whole?.message ?? '', new RegExp(`^rollout ${payload.rolloutId} FAILED: 2 APPLIED, 1 ROLLED_BACK, 2 SKIPPED$`))

  const rollout = await app.gql(`query($id: ID!) { rollout(id: $id) { state finishedAt nodes { node phase status message } } }`, { id: payload.rolloutId })
  assert.equal(rollout.data.rollout.state, 'FAILED')
  assert.deepEqual(rollout.data.rollout.nodes.map((n: { phase: string; status: string }) => `${n.phase} ${n.status}`), ['DONE APPLIED', 'DONE APPLIED', 'DONE ROLLED_BACK', 'DONE SKIPPED', 'DONE SKIPPED'])
  assert.equal(rollout.data.rollout.nodes[3].message, `skipped: the rollout stopped at node ${node(3).name}`)
}

describe('applyStaticPodToNodes on sshd nodes with stand-in runtimes', () => {
  it('ROLLING over 5 nodes, node 3 never ready: APPLIED, APPLIED, ROLLED_BACK (byte-exact), SKIPPED, SKIPPED (no API server)', async (t) => {
    await rollingWhereNode3NeverGetsReady(t, 'none')
  })

  it('the same rollout with the API server stand-in up (mirror pods tell the same story)', async (t) => {
    await rollingWhereNode3NeverGetsReady(t, 'up')
  })

  it('the same rollout with the API server stand-in stopped: readiness from the runtime, same outcome', async (t) => {
    await rollingWhereNode3NeverGetsReady(t, 'stopped')
  })

  it('ALL_AT_ONCE with one unreachable node: the others applied, that one FAILED with NODE_UNREACHABLE', async (t) => {
    const nodes = [1, 2, 3, 4].map(node)
    const { app } = await bed(t, nodes)
    const hole = await startBlackHole()
    t.after(() => hole.close())
    await app.addNode({ ...node(6), name: 'ro-unreachable', port: hole.port }, { labels: [{ key: 'tier', value: 'edge' }] })

    const started = performance.now()
    const res = await app.gql(APPLY, { input: { labelSelector: 'tier=edge', manifest: NEW, strategy: 'ALL_AT_ONCE', readyTimeoutSeconds: 5 } })
    const elapsed = performance.now() - started
    const results = res.data.applyStaticPodToNodes.results as Array<{ node: string; status: string; error: { code: string; message: string } | null }>
    assert.deepEqual(
      results.map((r) => [r.node, r.status, r.error?.code ?? null]),
      [...nodes.map((n) => [n.name, 'APPLIED', null]), ['ro-unreachable', 'FAILED', 'NODE_UNREACHABLE']],
    )
    assert.match(results[4]?.error?.message ?? '', /no SSH handshake within 1500 ms/)
    // In parallel: the unreachable node costs its connect timeouts once, not once per node.
    // The baseline read and the write each wait out the connect timeout (1.5 s) once.
    assert.ok(elapsed < 15_000, `took ${Math.round(elapsed)} ms`)
    for (const n of nodes) assert.equal(await readFile(join(n.manifests, 'web.yaml'), 'utf8'), NEW)
  })

  it('dry run: WOULD_APPLY or UNCHANGED per node with a unified diff; nothing written', async (t) => {
    const nodes = [1, 2].map(node)
    const { app } = await bed(t, nodes)
    await writeFile(join(node(2).manifests, 'web.yaml'), NEW)
    const before = await Promise.all(nodes.map((n) => snapshot(n.manifests)))
    const res = await app.gql(APPLY, { input: { nodes: nodes.map((n) => n.name), manifest: NEW, dryRun: true } })
    const [changed, same] = res.data.applyStaticPodToNodes.results
    assert.equal(changed.status, 'WOULD_APPLY')
    assert.match(changed.diff, new RegExp(`^--- ${node(1).manifests}/web.yaml\\t?\\n\\+\\+\\+ ${node(1).manifests}/web.yaml\\t?\\n`, 'm'))
    assert.match(changed.diff, /^-# web, hand-edited on the node$/m)
    assert.match(changed.diff, /^- {4}image: {3}nginx:1.26$/m)
    assert.match(changed.diff, /^\+ {4}image: nginx:1.27$/m)
    assert.equal(changed.staticPod.hash, sha256(NEW))
    assert.deepEqual([same.status, same.diff], ['UNCHANGED', ''])
    assert.deepEqual(await Promise.all(nodes.map((n) => snapshot(n.manifests))), before)
    const rollout = await app.gql(`{ rollouts { id dryRun state } }`)
    assert.deepEqual(rollout.data.rollouts, [{ id: res.data.applyStaticPodToNodes.rolloutId, dryRun: true, state: 'SUCCEEDED' }])
  })

  it('an unchanged node is not touched and not waited for; a new pod is created where there was none', async (t) => {
    const nodes = [1, 2].map(node)
    const { app } = await bed(t, nodes)
    await writeFile(join(node(1).manifests, 'web.yaml'), NEW)
    await rm(join(node(2).manifests, 'web.yaml'))
    const untouched = await snapshot(node(1).manifests)
    const res = await app.gql(APPLY, { input: { nodes: nodes.map((n) => n.name), manifest: NEW, readyTimeoutSeconds: 10 } })
    assert.deepEqual(res.data.applyStaticPodToNodes.results.map((r: { status: string }) => r.status), ['UNCHANGED', 'APPLIED'])
    assert.deepEqual(await snapshot(node(1).manifests), untouched)
    assert.equal(await readFile(join(node(2).manifests, 'web.yaml'), 'utf8'), NEW)
  })

  it('a pod that did not exist before and never gets ready is deleted again (ROLLED_BACK)', async (t) => {
    const { app, runtime } = await bed(t, [node(1)])
    await rm(join(node(1).manifests, 'web.yaml'))
    runtime.behave(node(1).name, 'never-ready')
    const res = await app.gql(APPLY, { input: { nodes: [node(1).name], manifest: NEW, readyTimeoutSeconds: 1 } })
    const [result] = res.data.applyStaticPodToNodes.results
    assert.equal(result.status, 'ROLLED_BACK')
    assert.match(result.error.message, /the new manifest was deleted \(there was none before\)/)
    assert.equal(result.staticPod, null)
    assert.deepEqual((await readdir(node(1).manifests)).filter((f) => !f.startsWith('.')), [])
  })

  it('the rollout is readable from a second request while it runs', async (t) => {
    const nodes = [1, 2, 3].map(node)
    const { app } = await bed(t, nodes, { runtime: { readyAfterMs: 1500 } })
    const running = app.gql(APPLY, { input: { nodes: nodes.map((n) => n.name), manifest: NEW, readyTimeoutSeconds: 20 } })

    let seen: { id: string; state: string; nodes: Array<{ node: string; phase: string; status: string | null; message: string | null }> } | undefined
    for (let i = 0; i < 100 && !seen; i++) {
      const res = await app.gql(`{ rollouts(active: true) { id state nodes { node phase status message } } }`)
      seen = res.data.rollouts.find((r: NonNullable<typeof seen>) => r.nodes.some((n) => n.phase === 'WAITING_FOR_READY'))
      if (!seen) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    assert.ok(seen, 'a running rollout with a node waiting for readiness')
    assert.equal(seen.state, 'RUNNING')
    assert.deepEqual(seen.nodes.map((n) => n.phase), ['WAITING_FOR_READY', 'PENDING', 'PENDING'])
    assert.ok(seen.nodes[0]?.message, 'says what it waits for')

    const done = await running
    assert.equal(done.data.applyStaticPodToNodes.rolloutId, seen.id)
    assert.deepEqual(done.data.applyStaticPodToNodes.results.map((r: { status: string }) => r.status), ['APPLIED', 'APPLIED', 'APPLIED'])
    const after = await app.gql(`query($id: ID!) { rollouts(active: true) { id } rollout(id: $id) { state startedAt finishedAt nodes { phase status } } }`, { id: seen.id })
    assert.deepEqual(after.data.rollouts, [])
    assert.equal(after.data.rollout.state, 'SUCCEEDED')
    assert.ok(Date.parse(after.data.rollout.finishedAt) > Date.parse(after.data.rollout.startedAt))
  })
})

describe('updateStaticPod with waitForReady on an sshd node', () => {
  it('ready: no error, not rolled back', async (t) => {
    const { app } = await bed(t, [node(1)])
    const res = await app.gql(UPDATE, { input: { node: node(1).name, namespace: 'edge', name: 'web', manifest: NEW, waitForReady: true, readyTimeoutSeconds: 10 } })
    assert.deepEqual(res.data.updateStaticPod, { staticPod: { hash: sha256(NEW) }, previousHash: sha256(OLD), changed: true, rolledBack: false, userErrors: [] })
  })

  it('never ready within readyTimeoutSeconds, with autoRollback: TIMEOUT, rolledBack, the old bytes back', async (t) => {
    const { app, runtime } = await bed(t, [node(1)])
    runtime.behave(node(1).name, 'never-ready')
    const res = await app.gql(UPDATE, {
      input: { node: node(1).name, namespace: 'edge', name: 'web', manifest: NEW, waitForReady: true, readyTimeoutSeconds: 2, autoRollback: true },
    })
    const payload = res.data.updateStaticPod
    assert.equal(payload.rolledBack, true)
    assert.equal(payload.staticPod.hash, sha256(OLD))
    assert.equal(payload.userErrors[0].code, 'TIMEOUT')
    assert.match(payload.userErrors[0].message, /not ready within 2 s/)
    assert.deepEqual(await readFile(join(node(1).manifests, 'web.yaml')), Buffer.from(OLD))
    const audit = await app.gql(`{ auditEvents(limit: 5) { action result } }`)
    assert.deepEqual(audit.data.auditEvents.map((e: { action: string; result: string }) => `${e.action} ${e.result}`), [
      'rollbackStaticPod OK',
      'updateStaticPod TIMEOUT',
      'updateStaticPod OK',
    ])
  })

  it('without autoRollback: TIMEOUT, the new manifest left in place', async (t) => {
    const { app, runtime } = await bed(t, [node(1)])
    runtime.behave(node(1).name, 'never-ready')
    const res = await app.gql(UPDATE, { input: { node: node(1).name, namespace: 'edge', name: 'web', manifest: NEW, waitForReady: true, readyTimeoutSeconds: 1 } })
    assert.equal(res.data.updateStaticPod.rolledBack, false)
    assert.match(res.data.updateStaticPod.userErrors[0].message, /left in place \(autoRollback is off\)/)
    assert.equal(await readFile(join(node(1).manifests, 'web.yaml'), 'utf8'), NEW)
  })

  it('crash-looping fails long before the timeout', async (t) => {
    const { app, runtime } = await bed(t, [node(1)], { runtime: { crashEveryMs: 150 } })
    runtime.behave(node(1).name, 'crash-loop')
    const started = performance.now()
    const res = await app.gql(UPDATE, {
      input: { node: node(1).name, namespace: 'edge', name: 'web', manifest: NEW, waitForReady: true, readyTimeoutSeconds: 60, autoRollback: true },
    })
    assert.ok(performance.now() - started < 15_000)
    assert.equal(res.data.updateStaticPod.rolledBack, true)
    assert.match(res.data.updateStaticPod.userErrors[0].message, /crash-loops after [\d.]+ s: container runtime: container (main|sidecar) restarted \d+ times/)
  })
})
