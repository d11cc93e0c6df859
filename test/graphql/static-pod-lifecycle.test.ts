// The whole static pod lifecycle through GraphQL and the real SQLite store, on
// each kind of node: the local node (a real directory) and an SSH node (a real
// sshd on 127.0.0.1, reached over SFTP).

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { build, kubeletVisibleFiles, NODE_KINDS, podYaml, stopSharedSshd, type GqlResponse, type TestApp } from '../helper.ts'

after(stopSharedSshd)

/** The errors of a response, but API_SERVER_UNAVAILABLE: no API server runs in these tests, and static pods do not need one. */
const nodeErrors = (res: GqlResponse<unknown>) => (res.errors ?? []).filter((e) => e.extensions?.code !== 'API_SERVER_UNAVAILABLE')

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex')

const POD_FIELDS = 'id nodeName namespace name mirrorPodName fileName path hash revision manifest managed stale sync containers { name image init }'
const PAYLOAD = `staticPod { ${POD_FIELDS} } previousHash dryRun changed diff rolledBack userErrors { code message field }`

async function create(t: TestApp, manifest: string, extra: Record<string, unknown> = {}) {
  const res = await t.gql(`mutation($input: CreateStaticPodInput!) { createStaticPod(input: $input) { ${PAYLOAD} } }`, {
    input: { node: t.nodeName, manifest, ...extra },
  })
  assert.deepEqual(nodeErrors(res), [], JSON.stringify(res.errors))
  return res.data.createStaticPod
}

async function update(t: TestApp, input: Record<string, unknown>) {
  const res = await t.gql(`mutation($input: UpdateStaticPodInput!) { updateStaticPod(input: $input) { ${PAYLOAD} } }`, {
    input: { node: t.nodeName, ...input },
  })
  assert.deepEqual(nodeErrors(res), [], JSON.stringify(res.errors))
  return res.data.updateStaticPod
}

async function history(t: TestApp, name: string, namespace = 'default') {
  const res = await t.gql(
    `query($node: String!, $name: String!, $ns: String) { staticPod(node: $node, namespace: $ns, name: $name, maxAgeSeconds: 0) { managed revision history { revision action actor hash manifest } } }`,
    { node: t.nodeName, name, ns: namespace },
  )
  assert.deepEqual(nodeErrors(res), [], JSON.stringify(res.errors))
  return res.data.staticPod
}

for (const kind of NODE_KINDS) describe(`static pod lifecycle (${kind} node)`, () => {
  it('creates exactly the given bytes under the kubelet names', async (t) => {
    const app = await build(t, { node: kind })
    // Odd but valid formatting and a comment: the file must be these bytes, not a re-serialisation.
    const manifest = `# managed by the platform team\napiVersion: v1\nkind: Pod\nmetadata: {name: Web-Cache-1, labels: {tier: "cache"}}\nspec:\n  containers:\n    - name: redis\n      image: "redis:7"   # pinned\n`.replace(
      'Web-Cache-1',
      'web-cache-1',
    )
    const created = await create(app, manifest)
    assert.deepEqual(created.userErrors, [])
    const pod = created.staticPod
    assert.equal(pod.fileName, 'web-cache-1.yaml')
    assert.equal(pod.path, join(app.manifests, 'web-cache-1.yaml'))
    assert.equal(pod.namespace, 'default', 'the kubelet puts a pod without namespace in default')
    assert.equal(pod.mirrorPodName, `web-cache-1-${app.nodeName}`)
    assert.equal(pod.id, `${app.nodeName}/default/web-cache-1`)
    assert.equal(pod.revision, 1)
    assert.equal(pod.managed, true)
    assert.equal(pod.sync, 'API_SERVER_UNAVAILABLE')
    assert.deepEqual(pod.containers, [{ name: 'redis', image: 'redis:7', init: false }])
    const onDisk = await readFile(join(app.manifests, 'web-cache-1.yaml'))
    assert.equal(onDisk.toString('utf8'), manifest)
    assert.equal(pod.hash, sha256(onDisk))
    assert.equal(pod.manifest, manifest)
    assert.match(created.diff, /\+# managed by the platform team/)
    assert.deepEqual(await kubeletVisibleFiles(app.manifests), ['web-cache-1.yaml'])
  })

  it('mirror pod names use the lowercased node name, and a user fileName is kept', async (t) => {
    const app = await build(t, { node: kind, nodeName: 'cp-1.example.com' })
    const res = await app.gql(`mutation($m: String!) { createStaticPod(input: {node: "cp-1.example.com", manifest: $m, fileName: "web.manifest"}) { ${PAYLOAD} } }`, {
      m: podYaml('web', 'nginx:1.27', '  namespace: kube-system\n'),
    })
    const pod = res.data.createStaticPod.staticPod
    assert.equal(pod.mirrorPodName, 'web-cp-1.example.com')
    assert.equal(pod.namespace, 'kube-system')
    assert.equal(pod.fileName, 'web.manifest')
    assert.deepEqual(await kubeletVisibleFiles(app.manifests), ['web.manifest'])
  })

  it('refuses to create a pod that exists, or over a file of that name', async (t) => {
    const app = await build(t, { node: kind })
    await create(app, podYaml('web'))
    const again = await create(app, podYaml('web', 'nginx:2'), { fileName: 'other.yaml' })
    assert.equal(again.userErrors[0].code, 'ALREADY_EXISTS')
    await writeFile(join(app.manifests, 'notes.txt'), 'not a pod\n')
    const overFile = await create(app, podYaml('api'), { fileName: 'notes.txt' })
    assert.equal(overFile.userErrors[0].code, 'ALREADY_EXISTS')
    assert.deepEqual(overFile.userErrors[0].field, ['fileName'])
    assert.equal(await readFile(join(app.manifests, 'notes.txt'), 'utf8'), 'not a pod\n')
    assert.deepEqual(await kubeletVisibleFiles(app.manifests), ['notes.txt', 'web.yaml'])
  })

  it('a dry run validates and reports, and writes nothing', async (t) => {
    const app = await build(t, { node: kind })
    const dry = await create(app, podYaml('web'), { dryRun: true })
    assert.equal(dry.dryRun, true)
    assert.equal(dry.changed, true)
    assert.equal(dry.staticPod.revision, 1)
    assert.equal(dry.staticPod.hash, sha256(podYaml('web')))
    assert.deepEqual(await kubeletVisibleFiles(app.manifests), [])
    const audit = await app.gql('{ auditEvents { action result dryRun toHash } }')
    assert.deepEqual(audit.data.auditEvents, [{ action: 'createStaticPod', result: 'OK', dryRun: true, toHash: sha256(podYaml('web')) }])
  })

  it('update: stale expectedHash is CONFLICT and leaves the file byte-identical; equal bytes are UNCHANGED', async (t) => {
    const app = await build(t, { node: kind })
    const v1 = (await create(app, podYaml('web', 'nginx:1'))).staticPod
    const v2 = await update(app, { name: 'web', manifest: podYaml('web', 'nginx:2'), expectedHash: v1.hash })
    assert.deepEqual(v2.userErrors, [])
    assert.equal(v2.previousHash, v1.hash)
    assert.equal(v2.staticPod.revision, 2)
    const before = await readFile(join(app.manifests, 'web.yaml'))

    const stale = await update(app, { name: 'web', manifest: podYaml('web', 'nginx:3'), expectedHash: v1.hash })
    assert.equal(stale.staticPod, null)
    assert.equal(stale.userErrors[0].code, 'CONFLICT')
    assert.deepEqual(stale.userErrors[0].field, ['expectedHash'])
    assert.deepEqual(await readFile(join(app.manifests, 'web.yaml')), before)

    const same = await update(app, { name: 'web', manifest: podYaml('web', 'nginx:2') })
    assert.equal(same.changed, false)
    assert.equal(same.staticPod.revision, 2, 'UNCHANGED records no revision')
    assert.deepEqual(await kubeletVisibleFiles(app.manifests), ['web.yaml'])
  })

  it('of 20 concurrent updates with the same expectedHash exactly one succeeds', async (t) => {
    const app = await build(t, { node: kind })
    const v1 = (await create(app, podYaml('web', 'nginx:1'))).staticPod
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => update(app, { name: 'web', manifest: podYaml('web', `nginx:1.${i + 1}`), expectedHash: v1.hash })),
    )
    const winners = results.filter((r) => r.userErrors.length === 0)
    assert.equal(winners.length, 1)
    assert.deepEqual(
      results.filter((r) => r.userErrors.length > 0).map((r) => r.userErrors[0].code),
      Array(19).fill('CONFLICT'),
    )
    const onDisk = await readFile(join(app.manifests, 'web.yaml'), 'utf8')
    assert.equal(onDisk, winners[0].staticPod.manifest)
    const h = await history(app, 'web')
    assert.deepEqual(
      h.history.map((r: { action: string }) => r.action),
      ['UPDATE', 'CREATE'],
    )
  })

  it('an update may not rename the pod or point at a mirror pod', async (t) => {
    const app = await build(t, { node: kind })
    await create(app, podYaml('web'))
    const renamed = await update(app, { name: 'web', manifest: podYaml('api') })
    assert.equal(renamed.userErrors[0].code, 'VALIDATION_FAILED')
    assert.deepEqual(renamed.userErrors[0].field, ['manifest', 'metadata', 'name'])
    const mirror = await update(app, { name: `web-${app.nodeName}`, manifest: podYaml(`web-${app.nodeName}`) })
    assert.equal(mirror.userErrors[0].code, 'NOT_FOUND')
    assert.match(mirror.userErrors[0].message, /mirror pod of static pod default\/web/)
    const query = await app.gql(`{ staticPod(node: "${app.nodeName}", name: "web-${app.nodeName}") { name } }`)
    assert.equal(query.errors?.[0]?.extensions?.code, 'NOT_FOUND')
    assert.match(query.errors?.[0]?.message ?? '', /name: "web"/)
  })

  it('restart changes only the restart annotation, keeping comments and formatting', async (t) => {
    const clock = () => new Date('2026-11-24T10:00:00.000Z')
    const app = await build(t, { node: kind, clock })
    const manifest = `apiVersion: v1
kind: Pod
metadata:
  # the scheduler of the control plane
  name: kube-scheduler
  namespace: kube-system
  labels:
    component: kube-scheduler
spec:
  containers:
  - command:
    - kube-scheduler
    - --leader-elect=true   # keep
    image: registry.k8s.io/kube-scheduler:v1.31.0
    name: kube-scheduler
`
    await create(app, manifest)
    const res = await app.gql(`mutation { restartStaticPod(input: {node: "${app.nodeName}", name: "kube-scheduler"}) { ${PAYLOAD} } }`)
    const restarted = res.data.restartStaticPod
    assert.deepEqual(restarted.userErrors, [])
    const onDisk = await readFile(join(app.manifests, 'kube-scheduler.yaml'), 'utf8')
    const expected = manifest.replace(
      '    component: kube-scheduler\n',
      '    component: kube-scheduler\n  annotations:\n    staticpod-api/restartedAt: "2026-11-24T10:00:00.000Z"\n',
    )
    assert.equal(onDisk, expected)
    assert.equal(restarted.staticPod.revision, 2)
    const h = await history(app, 'kube-scheduler', 'kube-system')
    assert.equal(h.history[0].action, 'RESTART')
  })

  it('rollback writes the exact bytes of the chosen revision back as a new revision', async (t) => {
    const app = await build(t, { node: kind })
    const v1Text = podYaml('web', 'nginx:1', '  labels: {a: "1"}   # original\n')
    await create(app, v1Text)
    await update(app, { name: 'web', manifest: podYaml('web', 'nginx:broken') })
    const res = await app.gql(`mutation { rollbackStaticPod(input: {node: "${app.nodeName}", name: "web", revision: 1}) { ${PAYLOAD} } }`)
    const rolled = res.data.rollbackStaticPod
    assert.deepEqual(rolled.userErrors, [])
    assert.equal(rolled.staticPod.revision, 3)
    assert.equal(await readFile(join(app.manifests, 'web.yaml'), 'utf8'), v1Text)
    const h = await history(app, 'web')
    assert.deepEqual(
      h.history.map((r: { revision: number; action: string }) => [r.revision, r.action]),
      [
        [3, 'ROLLBACK'],
        [2, 'UPDATE'],
        [1, 'CREATE'],
      ],
    )
    assert.equal(h.history[0].manifest, v1Text)
    const missing = await app.gql(`mutation { rollbackStaticPod(input: {node: "${app.nodeName}", name: "web", revision: 9}) { userErrors { code field } } }`)
    assert.deepEqual(missing.data.rollbackStaticPod.userErrors, [{ code: 'NOT_FOUND', field: ['revision'] }])
  })

  it('delete removes the file, keeps its bytes, and a rollback brings it back', async (t) => {
    const app = await build(t, { node: kind })
    const created = (await create(app, podYaml('web'))).staticPod
    const stale = await app.gql(`mutation { deleteStaticPod(input: {node: "${app.nodeName}", name: "web", expectedHash: "${'0'.repeat(64)}"}) { deleted userErrors { code } } }`)
    assert.deepEqual(stale.data.deleteStaticPod, { deleted: false, userErrors: [{ code: 'CONFLICT' }] })
    const del = await app.gql(`mutation { deleteStaticPod(input: {node: "${app.nodeName}", name: "web", expectedHash: "${created.hash}"}) { deleted previousHash userErrors { code } } }`)
    assert.deepEqual(del.data.deleteStaticPod, { deleted: true, previousHash: created.hash, userErrors: [] })
    assert.deepEqual(await kubeletVisibleFiles(app.manifests), [])
    const backups = await readdir(join(app.stateDir, 'backups'), { recursive: true })
    assert.ok(backups.some((b) => b.endsWith('.yaml')), 'a backup outside staticPodPath')
    const list = await app.gql('{ staticPods(maxAgeSeconds: 0) { name } }')
    assert.deepEqual(list.data.staticPods, [])
    const back = await app.gql(`mutation { rollbackStaticPod(input: {node: "${app.nodeName}", namespace: "default", name: "web", revision: 1}) { staticPod { revision hash } userErrors { code } } }`)
    assert.deepEqual(back.data.rollbackStaticPod, { staticPod: { revision: 3, hash: created.hash }, userErrors: [] })
    assert.deepEqual(await kubeletVisibleFiles(app.manifests), ['web.yaml'])
  })

  it('a file changed by hand shows up as an OBSERVED revision with managed: false', async (t) => {
    const app = await build(t, { node: kind })
    await create(app, podYaml('web', 'nginx:1'))
    const handEdit = podYaml('web', 'nginx:hotfix')
    await writeFile(join(app.manifests, 'web.yaml'), handEdit)
    const h = await history(app, 'web')
    assert.equal(h.managed, false)
    assert.equal(h.revision, 2)
    assert.deepEqual(
      h.history.map((r: { action: string; actor: string | null }) => [r.action, r.actor]),
      [
        ['OBSERVED', null],
        ['CREATE', 'anonymous'],
      ],
    )
    assert.equal(h.history[0].manifest, handEdit)
    // Reading again records nothing new.
    assert.equal((await history(app, 'web')).history.length, 2)
  })

  it('lists kubeadm-style manifests found on disk', async (t) => {
    const app = await build(t, { node: kind })
    const { kubeApiserverYaml, etcdYaml } = await import('../manifest/fixtures.ts')
    await writeFile(join(app.manifests, 'kube-apiserver.yaml'), kubeApiserverYaml)
    await writeFile(join(app.manifests, 'etcd.yaml'), etcdYaml)
    const res = await app.gql(`{ staticPods(node: "${app.nodeName}", maxAgeSeconds: 0) { ${POD_FIELDS} history { action actor } } }`)
    assert.deepEqual(nodeErrors(res), [])
    const pods = res.data.staticPods
    assert.deepEqual(
      pods.map((p: { namespace: string; name: string; fileName: string; managed: boolean; revision: number }) => [p.namespace, p.name, p.fileName, p.managed, p.revision]),
      [
        ['kube-system', 'etcd', 'etcd.yaml', false, 1],
        ['kube-system', 'kube-apiserver', 'kube-apiserver.yaml', false, 1],
      ],
    )
    const apiserver = pods[1]
    assert.equal(apiserver.mirrorPodName, `kube-apiserver-${app.nodeName}`)
    assert.equal(apiserver.hash, sha256(kubeApiserverYaml))
    assert.equal(apiserver.manifest, kubeApiserverYaml)
    assert.ok(apiserver.containers.some((c: { name: string }) => c.name === 'kube-apiserver'))
    assert.deepEqual(apiserver.history, [{ action: 'OBSERVED', actor: null }])
  })

  it('every mutation is audited, failures and dry runs too', async (t) => {
    const app = await build(t, { node: kind })
    await create(app, podYaml('web'))
    await update(app, { name: 'web', manifest: podYaml('web', 'x:1'), expectedHash: 'f'.repeat(64) })
    await update(app, { name: 'web', manifest: podYaml('web', 'x:2'), dryRun: true })
    const res = await app.gql(`{ auditEvents(node: "${app.nodeName}") { actor action node target result dryRun fromHash toHash message } }`)
    const events = res.data.auditEvents
    assert.deepEqual(
      events.map((e: { action: string; result: string; dryRun: boolean; target: string }) => [e.action, e.result, e.dryRun, e.target]),
      [
        ['updateStaticPod', 'OK', true, 'default/web'],
        ['updateStaticPod', 'CONFLICT', false, 'default/web'],
        ['createStaticPod', 'OK', false, 'default/web'],
      ],
    )
    assert.equal(events[2].toHash, sha256(podYaml('web')))
    assert.equal(events[1].fromHash, sha256(podYaml('web')))
    assert.ok(events.every((e: { actor: string }) => e.actor === 'anonymous'))
  })
})
