// The stand-in API server and kubelet of test/support are stand-ins because no
// API server or kubelet can run here. These tests hold them to the real
// thing: the real kubectl and the real @kubernetes/client-node must read them
// as they read a real cluster, and the objects must have the fields a real
// API server fills in.

import assert from 'node:assert/strict'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { lazyKubeApi } from '../../src/cluster/kube.ts'
import { makeTempDir, podYaml } from '../helper.ts'
import { FakeApiServer } from '../support/fake-apiserver.ts'
import { FakeKubelet } from '../support/fake-kubelet.ts'
import { kubectl } from '../support/kubectl.ts'

async function standIns(t: TestContext) {
  const dir = await makeTempDir('staticpod-api-fake-k8s-')
  const api = new FakeApiServer()
  await api.start()
  t.after(async () => {
    await api.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const manifests = join(dir, 'manifests')
  await mkdir(manifests)
  await writeFile(join(manifests, 'etcd.yaml'), podYaml('etcd', 'registry.k8s.io/etcd:3.5.15-0', '  namespace: kube-system\n  labels:\n    component: etcd\n'))
  await writeFile(join(manifests, 'web.yaml'), podYaml('web'))
  await writeFile(join(manifests, '.hidden.yaml'), podYaml('hidden'))
  api.addNode({ name: 'CP-1'.toLowerCase(), internalIP: '10.0.0.11' })
  api.addNode({ name: 'worker-1', internalIP: '10.0.0.21', unschedulable: true })
  const kubelet = new FakeKubelet(api, [{ name: 'cp-1', staticPodPath: manifests }])
  await kubelet.sync()
  const kubeconfig = await api.writeKubeconfig(join(dir, 'kubeconfig'))
  return { api, kubelet, manifests, kubeconfig }
}

describe('the API server stand-in', () => {
  it('kubectl get pods -A -o json and get nodes read it like a real API server', async (t) => {
    const { kubeconfig } = await standIns(t)
    const pods = JSON.parse(await kubectl(kubeconfig, 'get', 'pods', '-A', '-o', 'json'))
    assert.equal(pods.kind, 'List')
    assert.deepEqual(pods.items.map((p: { metadata: { namespace: string; name: string } }) => `${p.metadata.namespace}/${p.metadata.name}`), ['default/web-cp-1', 'kube-system/etcd-cp-1'])
    const etcd = pods.items[1]
    assert.equal(etcd.kind, 'Pod')
    assert.match(etcd.metadata.uid, /^[0-9a-f-]{36}$/)
    assert.match(etcd.metadata.resourceVersion, /^\d+$/)
    assert.match(etcd.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    assert.equal(etcd.metadata.annotations['kubernetes.io/config.source'], 'file')
    assert.match(etcd.metadata.annotations['kubernetes.io/config.hash'], /^[0-9a-f]{32}$/)
    assert.equal(etcd.metadata.annotations['kubernetes.io/config.mirror'], etcd.metadata.annotations['kubernetes.io/config.hash'])
    assert.ok(etcd.metadata.annotations['kubernetes.io/config.seen'])
    assert.deepEqual(
      etcd.metadata.ownerReferences.map((o: Record<string, unknown>) => ({ ...o, uid: typeof o.uid })),
      [{ apiVersion: 'v1', kind: 'Node', name: 'cp-1', uid: 'string', controller: true }],
    )
    assert.equal(etcd.spec.nodeName, 'cp-1')
    assert.equal(etcd.status.phase, 'Running')
    assert.ok(etcd.status.conditions.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'))
    assert.ok(etcd.status.containerStatuses[0].state.running.startedAt)

    const wide = await kubectl(kubeconfig, 'get', 'pods', '-A')
    assert.match(wide, /kube-system\s+etcd-cp-1/)
    const nodes = await kubectl(kubeconfig, 'get', 'nodes')
    assert.match(nodes, /^NAME\s/)
    assert.match(nodes, /\ncp-1\s/)
    assert.match(nodes, /\nworker-1\s/)
    const node = JSON.parse(await kubectl(kubeconfig, 'get', 'node', 'worker-1', '-o', 'json'))
    assert.equal(node.kind, 'Node')
    assert.equal(node.spec.unschedulable, true)
    assert.deepEqual(node.status.addresses[0], { type: 'InternalIP', address: '10.0.0.21' })
  })

  it('field and label selectors, get and delete, as kubectl sends them', async (t) => {
    const { api, kubeconfig } = await standIns(t)
    api.resetCounts()
    const onNode = JSON.parse(await kubectl(kubeconfig, 'get', 'pods', '-A', '--field-selector', 'spec.nodeName=cp-1', '-l', 'component=etcd', '-o', 'json'))
    assert.deepEqual(onNode.items.map((p: { metadata: { name: string } }) => p.metadata.name), ['etcd-cp-1'])
    const elsewhere = JSON.parse(await kubectl(kubeconfig, 'get', 'pods', '-A', '--field-selector', 'spec.nodeName=worker-1', '-o', 'json'))
    assert.deepEqual(elsewhere.items, [])
    await assert.rejects(kubectl(kubeconfig, 'get', 'pods', '-A', '--field-selector', 'spec.bogus=1'), /field label not supported/)
    const one = JSON.parse(await kubectl(kubeconfig, 'get', 'pod', '-n', 'kube-system', 'etcd-cp-1', '-o', 'json'))
    assert.equal(one.metadata.name, 'etcd-cp-1')
    await assert.rejects(kubectl(kubeconfig, 'get', 'pod', '-n', 'kube-system', 'nope'), /pods "nope" not found/)
    await kubectl(kubeconfig, 'delete', 'pod', '-n', 'kube-system', 'etcd-cp-1', '--wait=false')
    assert.equal(api.getPod('kube-system', 'etcd-cp-1'), undefined)
    assert.ok(api.requests.some((r) => r.path === '/api/v1/pods' && r.query.fieldSelector === 'spec.nodeName=cp-1' && r.query.labelSelector === 'component=etcd'))
  })

  it('the kubelet stand-in posts again a deleted mirror pod (new uid) and removes the mirror of a deleted manifest', async (t) => {
    const { api, kubelet, manifests } = await standIns(t)
    const first = api.getPod('kube-system', 'etcd-cp-1')
    api.deletePod('kube-system', 'etcd-cp-1')
    await kubelet.sync()
    const again = api.getPod('kube-system', 'etcd-cp-1')
    assert.ok(again && again.metadata.uid !== first?.metadata.uid)
    assert.equal(again.metadata.annotations['kubernetes.io/config.hash'], first?.metadata.annotations['kubernetes.io/config.hash'])
    await rm(join(manifests, 'web.yaml'))
    await kubelet.sync()
    assert.equal(api.getPod('default', 'web-cp-1'), undefined)
    assert.equal(api.getPod('default', 'hidden-cp-1'), undefined, 'dotfiles are not run')
  })

  it('the real client-node reads it over plain HTTP with a kubeconfig file that has no TLS field, and refuses a wrong token', async (t) => {
    const { kubeconfig } = await standIns(t)
    const client = lazyKubeApi({ kind: 'kubeconfig', path: kubeconfig }, 2000)
    assert.equal(await client.version(), 'v1.31.4')
    const pods = await client.listPods({ fieldSelector: 'spec.nodeName=cp-1' })
    assert.deepEqual(pods.map((p) => p.metadata?.name).sort(), ['etcd-cp-1', 'web-cp-1'])
    assert.ok(pods.every((p) => p.metadata?.creationTimestamp instanceof Date))
    assert.deepEqual((await client.listNodes({})).map((n) => n.metadata?.name), ['cp-1', 'worker-1'])
    await assert.rejects(client.readPod('kube-system', 'nope'), { name: 'KubeStatusError', status: 404 })

    const wrongKubeconfig = `${kubeconfig}-wrong-token`
    await writeFile(wrongKubeconfig, (await readFile(kubeconfig, 'utf8')).replace(/token: .*/, 'token: not-the-token'))
    const wrong = lazyKubeApi({ kind: 'kubeconfig', path: wrongKubeconfig }, 2000)
    await assert.rejects(wrong.version(), { name: 'KubeStatusError', status: 401 })
  })
})
