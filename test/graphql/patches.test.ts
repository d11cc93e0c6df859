// patchStaticPod and patchStaticPodOnNodes on real sshd nodes that hold
// kubeadm-shaped kube-apiserver.yaml and etcd.yaml differing per node
// (advertise address, etcd --name and peer URLs, a hand-written comment):
// each node's own file is changed in place, exactly the lines the change
// touches; the three patch types on the cases Kubernetes documents; the
// quorum guard on etcd; refusals that write nothing anywhere; REST PATCH.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it, type TestContext } from 'node:test'
import { etcdYaml, kubeApiserverYaml, type ControlPlaneNode } from '../support/kubeadm-manifests.ts'
import { FakeRuntime } from '../support/fake-runtime.ts'
import { sshFleetApp, type SshTestApp } from '../support/ssh-app.ts'
import { startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex')

const PATCH_ON_NODES = `mutation($input: PatchOnNodesInput!) { patchStaticPodOnNodes(input: $input) {
  rolloutId
  results { node status diff staticPod { hash } error { code message field } }
  userErrors { code message field } } }`
const PATCH = `mutation($input: PatchStaticPodInput!) { patchStaticPod(input: $input) {
  staticPod { hash manifest } previousHash changed dryRun diff userErrors { code message field } } }`
const ROLLOUT = `query($id: ID!) { rollout(id: $id) { kind state hash messages nodes { node status startedAt finishedAt } } }`

let fleet: SshdFleet

before(async () => {
  fleet = await startSshdFleet(4, { prefix: 'pt', node: () => ({ crictl: { state: { sandboxes: [], containers: [] } } }) })
})
after(() => fleet.stop())

const sshNode = (i: number): SshdNode => fleet.nodes[i - 1] as SshdNode
/** The control-plane identity of test node i: its own address. */
const cp = (i: number): ControlPlaneNode => ({ name: sshNode(i).name, ip: `10.0.0.${10 + i}` })
const apiserverOf = (i: number) => kubeApiserverYaml(cp(i))
const etcdOf = (i: number) => etcdYaml(cp(i), [1, 2, 3].map(cp))

interface Bed {
  app: SshTestApp
  runtime: FakeRuntime
}

/** Nodes 1-3 each with their own kube-apiserver.yaml and etcd.yaml, run by the stand-in runtime; node 4 (if asked) with neither. */
async function bed(t: TestContext, opts: { withNode4?: boolean } = {}): Promise<Bed> {
  const app = await sshFleetApp(t, fleet, { SSH_CONNECT_TIMEOUT_MS: '1500' })
  const indices = opts.withNode4 ? [1, 2, 3, 4] : [1, 2, 3]
  for (const i of indices) {
    const n = sshNode(i)
    for (const f of await readdir(n.manifests)) await rm(join(n.manifests, f), { force: true, recursive: true })
    if (i <= 3) {
      await writeFile(join(n.manifests, 'kube-apiserver.yaml'), apiserverOf(i))
      await writeFile(join(n.manifests, 'etcd.yaml'), etcdOf(i))
    }
    await app.addNode(n, { labels: [{ key: 'pool', value: 'cp' }, { key: 'node-role.kubernetes.io/control-plane', value: '' }] })
  }
  const runtime = new FakeRuntime(indices.map((i) => ({ name: sshNode(i).name, staticPodPath: sshNode(i).manifests, crictlStatePath: join(sshNode(i).dir, 'crictl.json') })))
  await runtime.sync()
  runtime.start(100)
  t.after(() => runtime.stop())
  return { app, runtime }
}

const nodeNames = (indices: number[]) => indices.map((i) => sshNode(i).name)
const fileOf = (i: number, name: string) => readFile(join(sshNode(i).manifests, name), 'utf8')

/** The - and + lines of a unified diff (not its ---/+++ header). */
function changedLines(diff: string): { removed: string[]; added: string[] } {
  const lines = diff.split('\n')
  return {
    removed: lines.filter((l) => l.startsWith('-') && !l.startsWith('---')).map((l) => l.slice(1)),
    added: lines.filter((l) => l.startsWith('+') && !l.startsWith('+++')).map((l) => l.slice(1)),
  }
}

/** Bytes and modification time of every entry of a directory (dotfiles included). */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir)).sort()
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, `${sha256(await readFile(join(dir, n)))} ${(await stat(join(dir, n))).mtimeMs}`] as const)))
}

async function patchOnNodes(app: SshTestApp, input: Record<string, unknown>) {
  const res = await app.gql(PATCH_ON_NODES, { input: { nodes: nodeNames([1, 2, 3]), namespace: 'kube-system', readyTimeoutSeconds: 10, ...input } })
  assert.equal(res.errors, undefined, JSON.stringify(res.errors))
  return res.data.patchStaticPodOnNodes
}

describe('patchStaticPodOnNodes on kubeadm control-plane nodes', () => {
  it('sets the kube-apiserver image tag on every node: exactly the image line changes, each node keeps its addresses and comment', async (t) => {
    const { app } = await bed(t)
    const payload = await patchOnNodes(app, { name: 'kube-apiserver', change: { images: [{ container: 'kube-apiserver', tag: 'v1.30.3' }] } })
    assert.deepEqual(payload.userErrors, [])
    assert.deepEqual(payload.results.map((r: { status: string }) => r.status), ['APPLIED', 'APPLIED', 'APPLIED'])
    for (const [k, i] of [1, 2, 3].entries()) {
      const expected = apiserverOf(i).replace('image: registry.k8s.io/kube-apiserver:v1.30.2', 'image: registry.k8s.io/kube-apiserver:v1.30.3')
      assert.equal(await fileOf(i, 'kube-apiserver.yaml'), expected, `node ${i}: only the image line changed`)
      assert.ok(expected.includes(`--advertise-address=${cp(i).ip}`) && expected.includes(`# ${cp(i).name}: the advertise address moved`))
      assert.deepEqual(changedLines(payload.results[k].diff), {
        removed: ['    image: registry.k8s.io/kube-apiserver:v1.30.2'],
        added: ['    image: registry.k8s.io/kube-apiserver:v1.30.3'],
      })
      assert.equal(payload.results[k].staticPod.hash, sha256(expected))
      assert.equal(await fileOf(i, 'etcd.yaml'), etcdOf(i), 'the other static pod is not touched')
    }
    const rollout = (await app.gql(ROLLOUT, { id: payload.rolloutId })).data.rollout
    assert.equal(rollout.kind, 'PATCH')
    assert.equal(rollout.state, 'SUCCEEDED')
    assert.ok(rollout.messages.some((m: string) => m.startsWith('control-plane guard: these are control-plane nodes, so at most 1 node(s) at a time')), rollout.messages.join('\n'))
  })

  it('adds a flag, changes one in place and removes one, on each node its own file', async (t) => {
    const { app } = await bed(t)
    const payload = await patchOnNodes(app, {
      name: 'kube-apiserver',
      change: {
        flags: [
          { container: 'kube-apiserver', flag: '--audit-log-maxage', value: '30' },
          { container: 'kube-apiserver', flag: '--authorization-mode', value: 'Node,RBAC,Webhook' },
          { container: 'kube-apiserver', flag: '--enable-bootstrap-token-auth', value: null },
        ],
      },
    })
    assert.deepEqual(payload.userErrors, [])
    for (const [k, i] of [1, 2, 3].entries()) {
      const expected = apiserverOf(i)
        .replace('    - --authorization-mode=Node,RBAC\n', '    - --authorization-mode=Node,RBAC,Webhook\n')
        .replace('    - --enable-bootstrap-token-auth=true\n', '')
        .replace('    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n', '    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n    - --audit-log-maxage=30\n')
      assert.equal(await fileOf(i, 'kube-apiserver.yaml'), expected, `node ${i}`)
      assert.deepEqual(changedLines(payload.results[k].diff), {
        removed: ['    - --authorization-mode=Node,RBAC', '    - --enable-bootstrap-token-auth=true'],
        added: ['    - --authorization-mode=Node,RBAC,Webhook', '    - --audit-log-maxage=30'],
      })
    }
  })

  it('a dry run shows each node its own diff and writes nothing', async (t) => {
    const { app } = await bed(t)
    const before = await Promise.all([1, 2, 3].map((i) => snapshot(sshNode(i).manifests)))
    const payload = await patchOnNodes(app, { name: 'etcd', dryRun: true, change: { flags: [{ container: 'etcd', flag: '--snapshot-count', value: '5000' }] } })
    assert.deepEqual(payload.results.map((r: { status: string }) => r.status), ['WOULD_APPLY', 'WOULD_APPLY', 'WOULD_APPLY'])
    for (const r of payload.results) {
      assert.deepEqual(changedLines(r.diff), { removed: ['    - --snapshot-count=10000'], added: ['    - --snapshot-count=5000'] })
    }
    assert.deepEqual(await Promise.all([1, 2, 3].map((i) => snapshot(sshNode(i).manifests))), before)
  })

  it('an etcd rollout asked ALL_AT_ONCE runs one node at a time; a member that never gets ready stops it there, rolled back byte for byte', async (t) => {
    const { app, runtime } = await bed(t)
    runtime.behave(sshNode(2).name, 'never-ready')
    const untouched = await snapshot(sshNode(3).manifests)
    const payload = await patchOnNodes(app, {
      name: 'etcd',
      strategy: 'ALL_AT_ONCE',
      maxUnavailable: 3,
      readyTimeoutSeconds: 4,
      change: { images: [{ container: 'etcd', tag: '3.5.13-0' }] },
    })
    assert.deepEqual(payload.userErrors, [])
    assert.deepEqual(payload.results.map((r: { node: string; status: string }) => [r.node, r.status]), [
      [sshNode(1).name, 'APPLIED'],
      [sshNode(2).name, 'ROLLED_BACK'],
      [sshNode(3).name, 'SKIPPED'],
    ])
    assert.equal(payload.results[1].error.code, 'TIMEOUT')
    assert.equal(await fileOf(1, 'etcd.yaml'), etcdOf(1).replace('registry.k8s.io/etcd:3.5.12-0', 'registry.k8s.io/etcd:3.5.13-0'))
    assert.deepEqual(await readFile(join(sshNode(2).manifests, 'etcd.yaml')), Buffer.from(etcdOf(2)), 'node 2 rolled back byte for byte')
    assert.deepEqual(await snapshot(sshNode(3).manifests), untouched, 'node 3 never touched')

    const rollout = (await app.gql(ROLLOUT, { id: payload.rolloutId })).data.rollout
    assert.equal(rollout.state, 'FAILED')
    assert.ok(rollout.messages.some((m: string) => m.startsWith('quorum guard: this changes etcd members, so one node at a time')), rollout.messages.join('\n'))
    const [first, second] = rollout.nodes as Array<{ startedAt: string; finishedAt: string }>
    assert.ok(first && second && Date.parse(second.startedAt) >= Date.parse(first.finishedAt), 'node 2 started only after node 1 ran ready')
  })

  it('a change whose result is not a valid static pod is refused with the field path, and nothing is written on any node', async (t) => {
    const { app } = await bed(t)
    const before = await Promise.all([1, 2, 3].map((i) => snapshot(sshNode(i).manifests)))
    const patch = JSON.stringify({ spec: { volumes: [{ name: 'token', secret: { secretName: 'apiserver-token' } }] } })
    const payload = await patchOnNodes(app, { name: 'kube-apiserver', change: { patch, patchType: 'STRATEGIC' } })
    assert.equal(payload.rolloutId, null)
    assert.equal(payload.userErrors[0]?.code, 'VALIDATION_FAILED')
    // Strategic merge puts list items new to the server first (apimachinery's normalizeElementOrder).
    assert.deepEqual(payload.userErrors[0].field, ['manifest', 'spec', 'volumes', '0', 'secret'], JSON.stringify(payload.userErrors))
    assert.match(payload.userErrors[0].message, /nothing was written on any node/)
    assert.deepEqual(await Promise.all([1, 2, 3].map((i) => snapshot(sshNode(i).manifests))), before)
  })

  it('a node without the static pod is FAILED with NOT_FOUND, the others are patched', async (t) => {
    const { app } = await bed(t, { withNode4: true })
    const res = await app.gql(PATCH_ON_NODES, {
      input: { labelSelector: 'pool=cp', name: 'kube-apiserver', readyTimeoutSeconds: 10, change: { images: [{ container: 'kube-apiserver', tag: 'v1.30.3' }] } },
    })
    const results = res.data.patchStaticPodOnNodes.results as Array<{ node: string; status: string; error: { code: string } | null }>
    assert.deepEqual(results.map((r) => r.status).sort(), ['APPLIED', 'APPLIED', 'APPLIED', 'FAILED'])
    assert.equal(results.find((r) => r.node === sshNode(4).name)?.error?.code, 'NOT_FOUND')
    assert.deepEqual(await readdir(sshNode(4).manifests), [])
  })
})

describe('patchStaticPod: the three patch types on the cases Kubernetes documents', () => {
  const patchOne = async (app: SshTestApp, input: Record<string, unknown>) => {
    const res = await app.gql(PATCH, { input: { node: sshNode(1).name, namespace: 'kube-system', name: 'kube-apiserver', ...input } })
    assert.equal(res.errors, undefined, JSON.stringify(res.errors))
    return res.data.patchStaticPod
  }

  it('STRATEGIC: a container merged by name gets an env var; a volume and its mount deleted with $patch: delete', async (t) => {
    const { app } = await bed(t)
    const patch = `spec:
  containers:
  - name: kube-apiserver
    env:
    - name: GOMAXPROCS
      value: "4"
    volumeMounts:
    - mountPath: /etc/ca-certificates
      $patch: delete
  volumes:
  - name: etc-ca-certificates
    $patch: delete
`
    const result = await patchOne(app, { change: { patch, patchType: 'STRATEGIC' } })
    assert.deepEqual(result.userErrors, [])
    const text = await fileOf(1, 'kube-apiserver.yaml')
    const expected = apiserverOf(1)
      // A key new to the container goes after its last one, as Kubernetes appends it.
      .replace('  hostNetwork: true\n', '    env:\n    - name: GOMAXPROCS\n      value: "4"\n  hostNetwork: true\n')
      .replace('    - mountPath: /etc/ca-certificates\n      name: etc-ca-certificates\n      readOnly: true\n', '')
      .replace('  - hostPath:\n      path: /etc/ca-certificates\n      type: DirectoryOrCreate\n    name: etc-ca-certificates\n', '')
    assert.equal(text, expected)
    assert.equal(result.staticPod.hash, sha256(expected))
  })

  it('MERGE: null removes a field', async (t) => {
    const { app } = await bed(t)
    const result = await patchOne(app, { change: { patch: '{"spec":{"priorityClassName":null}}', patchType: 'MERGE' } })
    assert.deepEqual(result.userErrors, [])
    assert.deepEqual(changedLines(result.diff), { removed: ['  priorityClassName: system-node-critical'], added: [] })
    assert.equal(await fileOf(1, 'kube-apiserver.yaml'), apiserverOf(1).replace('  priorityClassName: system-node-critical\n', ''))
  })

  it('JSON: test then replace; a failing test is CONFLICT with the path, and nothing is written', async (t) => {
    const { app } = await bed(t)
    const ok = JSON.stringify([
      { op: 'test', path: '/spec/containers/0/image', value: 'registry.k8s.io/kube-apiserver:v1.30.2' },
      { op: 'replace', path: '/spec/containers/0/image', value: 'registry.k8s.io/kube-apiserver:v1.30.3' },
    ])
    const applied = await patchOne(app, { change: { patch: ok, patchType: 'JSON' } })
    assert.deepEqual(applied.userErrors, [])
    assert.equal(await fileOf(1, 'kube-apiserver.yaml'), apiserverOf(1).replace(':v1.30.2', ':v1.30.3'))

    const before = await snapshot(sshNode(1).manifests)
    const failing = await patchOne(app, { change: { patch: ok, patchType: 'JSON' } }) // the test now fails: the image is v1.30.3
    assert.equal(failing.userErrors[0]?.code, 'CONFLICT')
    assert.deepEqual(failing.userErrors[0].field, ['change', 'patch', '0'])
    assert.match(failing.userErrors[0].message, /\/spec\/containers\/0\/image/)
    assert.equal(failing.changed, false)
    assert.deepEqual(await snapshot(sshNode(1).manifests), before)
  })

  it('a stale expectedHash is CONFLICT; a change that yields the same bytes is unchanged; a dry run writes nothing', async (t) => {
    const { app } = await bed(t)
    const stale = await patchOne(app, { expectedHash: 'a'.repeat(64), change: { images: [{ container: 'kube-apiserver', tag: 'v1.30.3' }] } })
    assert.equal(stale.userErrors[0]?.code, 'CONFLICT')
    const same = await patchOne(app, { expectedHash: sha256(apiserverOf(1)), change: { images: [{ container: 'kube-apiserver', tag: 'v1.30.2' }] } })
    assert.deepEqual(same.userErrors, [])
    assert.equal(same.changed, false)
    assert.equal(same.diff, '')
    const dry = await patchOne(app, { dryRun: true, change: { flags: [{ container: 'kube-apiserver', flag: '--v', value: '4' }] } })
    assert.equal(dry.changed, true)
    assert.deepEqual(changedLines(dry.diff).added, ['    - --v=4'])
    assert.equal(await fileOf(1, 'kube-apiserver.yaml'), apiserverOf(1))
  })
})

describe('REST PATCH /api/v1/nodes/{node}/staticpods/{namespace}/{name}', () => {
  const url = () => `/api/v1/nodes/${sshNode(1).name}/staticpods/kube-system/kube-apiserver`
  const send = (app: SshTestApp, contentType: string, payload: string, headers: Record<string, string> = {}, query = '') =>
    app.app.inject({ method: 'PATCH', url: `${url()}${query}`, headers: { 'content-type': contentType, ...headers }, payload })

  it('takes each of the three patch content types, honours If-Match (412 when stale) and dryRun, and refuses others (415)', async (t) => {
    const { app } = await bed(t)
    const strategic = await send(app, 'application/strategic-merge-patch+json', JSON.stringify({ spec: { containers: [{ name: 'kube-apiserver', image: 'registry.k8s.io/kube-apiserver:v1.30.3' }] } }))
    assert.equal(strategic.statusCode, 200, strategic.body)
    const afterStrategic = apiserverOf(1).replace(':v1.30.2', ':v1.30.3')
    assert.equal(strategic.headers.etag, `"${sha256(afterStrategic)}"`)
    assert.equal(strategic.json().changed, true)

    const stale = await send(app, 'application/merge-patch+json', '{"spec":{"priorityClassName":null}}', { 'if-match': `"${sha256(apiserverOf(1))}"` })
    assert.equal(stale.statusCode, 412, stale.body)
    assert.equal(stale.json().error.code, 'CONFLICT')

    const merge = await send(app, 'application/merge-patch+json; charset=utf-8', 'spec:\n  priorityClassName: null\n', { 'if-match': `"${sha256(afterStrategic)}"` })
    assert.equal(merge.statusCode, 200, merge.body)
    const afterMerge = afterStrategic.replace('  priorityClassName: system-node-critical\n', '')

    const dry = await send(app, 'application/json-patch+json', JSON.stringify([{ op: 'replace', path: '/spec/hostNetwork', value: false }]), {}, '?dryRun=true')
    assert.equal(dry.statusCode, 200, dry.body)
    assert.equal(dry.json().dryRun, true)
    assert.deepEqual(changedLines(dry.json().diff), { removed: ['  hostNetwork: true'], added: ['  hostNetwork: false'] })
    assert.equal(await fileOf(1, 'kube-apiserver.yaml'), afterMerge)

    const unsupported = await send(app, 'application/json', '{}')
    assert.equal(unsupported.statusCode, 415)
    assert.deepEqual(unsupported.json().error.field, ['Content-Type'])
    assert.equal(await fileOf(1, 'kube-apiserver.yaml'), afterMerge)
  })
})
