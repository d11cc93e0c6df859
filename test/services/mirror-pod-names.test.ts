// Every static pod mutation addressed by the name `kubectl get pods` shows
// (the mirror pod <name>-<node>) answers NOT_FOUND naming the static pod it
// mirrors, before any manifest is compared, and changes nothing.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { it } from 'node:test'
import { build, podYaml } from '../helper.ts'

const etcd = (image: string) => podYaml('etcd', image, '  namespace: kube-system\n')

it('updateStaticPod, restartStaticPod, rollbackStaticPod, deleteStaticPod and REST PUT name kube-system/etcd for etcd-cp-1', async (t) => {
  const app = await build(t, { nodeName: 'cp-1' })
  const created = await app.gql(`mutation($input: CreateStaticPodInput!) { createStaticPod(input: $input) { staticPod { namespace name hash } userErrors { code message } } }`, {
    input: { node: 'cp-1', manifest: etcd('registry.k8s.io/etcd:3.5.15-0') },
  })
  assert.deepEqual(created.data.createStaticPod.userErrors, [])
  assert.equal(created.data.createStaticPod.staticPod.namespace, 'kube-system', 'the test manifest is in kube-system')
  const before = await readFile(join(app.manifests, 'etcd.yaml'))
  const ref = { node: 'cp-1', name: 'etcd-cp-1' }
  const next = etcd('registry.k8s.io/etcd:3.5.16-0')
  const payload = '{ userErrors { code message field } }'
  const mutations: Array<[string, string, Record<string, unknown>]> = [
    ['updateStaticPod', 'UpdateStaticPodInput', { ...ref, manifest: next }],
    ['updateStaticPod', 'UpdateStaticPodInput', { ...ref, namespace: 'kube-system', manifest: next, waitForReady: true }],
    ['restartStaticPod', 'StaticPodRefInput', ref],
    ['rollbackStaticPod', 'RollbackStaticPodInput', { ...ref, revision: 1 }],
    ['rollbackStaticPod', 'RollbackStaticPodInput', { ...ref, namespace: 'kube-system', revision: 1 }],
    ['deleteStaticPod', 'StaticPodRefInput', ref],
  ]
  for (const [name, type, input] of mutations) {
    const res = await app.gql(`mutation($input: ${type}!) { ${name}(input: $input) ${payload} }`, { input })
    const errors = res.data[name].userErrors
    assert.equal(errors.length, 1, `${name}: ${JSON.stringify(res)}`)
    assert.equal(errors[0].code, 'NOT_FOUND', `${name}: ${errors[0].message}`)
    assert.match(errors[0].message, /etcd-cp-1 is the mirror pod of static pod kube-system\/etcd on node cp-1/, name)
    assert.deepEqual(errors[0].field, ['name'])
  }

  const put = await app.app.inject({ method: 'PUT', url: '/api/v1/nodes/cp-1/staticpods/kube-system/etcd-cp-1', headers: { 'content-type': 'application/yaml' }, payload: next })
  assert.equal(put.statusCode, 404, put.body)
  assert.match(put.json().error.message, /mirror pod of static pod kube-system\/etcd/)

  assert.deepEqual(await readFile(join(app.manifests, 'etcd.yaml')), before, 'nothing was written')
})
