// Reads of static pods through GraphQL: the arguments the SDL gives (staticPod's
// maxAgeSeconds), the fields the service's view carries (id, pod, containers),
// and the history of many pods batched by limit.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { build, podYaml } from '../helper.ts'

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')

describe('static pod reads', () => {
  it('staticPod(maxAgeSeconds: 0) reads the node now; without it, the stored state is served as the setting allows', async (t) => {
    const app = await build(t, { env: { STATIC_PODS_MAX_AGE_SECONDS: '600' } })
    const v1 = podYaml('web', 'nginx:1')
    await writeFile(join(app.manifests, 'web.yaml'), v1)
    const first = await app.gql('{ staticPod(node: "local", name: "web", maxAgeSeconds: 0) { hash revision } }')
    assert.deepEqual(first.data.staticPod, { hash: sha256(v1), revision: 1 })

    // Changed behind the service's back: the stored state (10 minutes fresh by the setting) no longer matches the node.
    const v2 = podYaml('web', 'nginx:2')
    await writeFile(join(app.manifests, 'web.yaml'), v2)
    const stored = await app.gql('{ staticPod(node: "local", name: "web") { hash } }')
    assert.equal(stored.data.staticPod.hash, sha256(v1), 'the stored state')

    const live = await app.gql('{ staticPod(node: "local", name: "web", maxAgeSeconds: 0) { hash revision managed containers { image } } }')
    assert.deepEqual(live.errors, undefined)
    assert.deepEqual(live.data.staticPod, { hash: sha256(v2), revision: 2, managed: false, containers: [{ image: 'nginx:2' }] })
  })

  it('id, pod and containers come from the service view of the manifest', async (t) => {
    const app = await build(t)
    const manifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: edge
spec:
  initContainers:
  - name: setup
    image: busybox:1
  containers:
  - name: main
    image: nginx:1
  - name: sidecar
    image: envoy:1
`
    await writeFile(join(app.manifests, 'web.yaml'), manifest)
    const res = await app.gql('{ staticPods(maxAgeSeconds: 0) { id pod containers { name image init } node { name kind } } }')
    assert.deepEqual(res.errors, undefined)
    const [pod] = res.data.staticPods
    assert.equal(pod.id, 'local/edge/web')
    assert.deepEqual(pod.pod.metadata, { name: 'web', namespace: 'edge' })
    assert.deepEqual(pod.pod.spec.containers.map((c: { name: string }) => c.name), ['main', 'sidecar'])
    assert.deepEqual(pod.containers, [
      { name: 'main', image: 'nginx:1', init: false },
      { name: 'sidecar', image: 'envoy:1', init: false },
      { name: 'setup', image: 'busybox:1', init: true },
    ])
    assert.deepEqual(pod.node, { name: 'local', kind: 'LOCAL' })
  })

  it('histories of every pod in a query: one store call per limit, each pod its own revisions', async (t) => {
    const app = await build(t, { env: { STATIC_PODS_MAX_AGE_SECONDS: '600' } })
    for (const image of ['nginx:1', 'nginx:2', 'nginx:3']) {
      await writeFile(join(app.manifests, 'web.yaml'), podYaml('web', image))
      await writeFile(join(app.manifests, 'db.yaml'), podYaml('db', image.replace('nginx', 'postgres')))
      await app.gql('{ staticPods(maxAgeSeconds: 0) { name } }')
    }
    const store = app.app.services.store
    const listRevisions = store.listRevisions.bind(store)
    const limits: number[] = []
    store.listRevisions = (keys, limit) => {
      limits.push(limit)
      return listRevisions(keys, limit)
    }

    const res = await app.gql(`{
      one: staticPods { name history(limit: 1) { revision } }
      two: staticPods { name history(limit: 2) { revision } }
      again: node(name: "local") { staticPods { name history(limit: 1) { revision } } }
    }`)
    assert.deepEqual(res.errors, undefined)
    const revisions = (pods: Array<{ name: string; history: Array<{ revision: number }> }>) =>
      Object.fromEntries(pods.map((p) => [p.name, p.history.map((h) => h.revision)]))
    assert.deepEqual(revisions(res.data.one), { db: [3], web: [3] })
    assert.deepEqual(revisions(res.data.two), { db: [3, 2], web: [3, 2] })
    assert.deepEqual(revisions(res.data.again.staticPods), { db: [3], web: [3] })
    assert.deepEqual(limits.sort(), [1, 2], 'one store call per limit; the same pods at the same limit again: none')
  })
})
