// The kubeconfigs people have, read as kubectl reads them: one for
// `kubectl proxy` (plain http://, no TLS field, no user), and one for a real
// API server (https:// with the cluster's own CA in
// certificate-authority-data, a bearer token). The API server is the stand-in
// of test/support/fake-apiserver.ts (no real one can run here), served over
// plain HTTP or over HTTPS with a certificate made by the real openssl; the
// service reaches it through the real @kubernetes/client-node, and the real
// kubectl is given the very same files.

import assert from 'node:assert/strict'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { before, describe, it, type TestContext } from 'node:test'
import { lazyKubeApi } from '../../src/cluster/kube.ts'
import { build, makeTempDir, podYaml } from '../helper.ts'
import { FakeApiServer, KUBE_VERSION, type KubeconfigOptions } from '../support/fake-apiserver.ts'
import { FakeKubelet } from '../support/fake-kubelet.ts'
import { kubectl } from '../support/kubectl.ts'
import { makeTestCa, type TestCa } from '../support/tls-certs.ts'

let pki: TestCa
let otherPki: TestCa

before(async () => {
  ;[pki, otherPki] = await Promise.all([makeTestCa('cluster-ca'), makeTestCa('some-other-ca')])
})

/** The stand-in, started (over HTTPS when tls is given), and a kubeconfig file for it. */
async function apiServer(t: TestContext, tls: TestCa | null, options: KubeconfigOptions = {}) {
  const dir = await makeTempDir('staticpod-api-kubeconfig-')
  const api = new FakeApiServer(tls)
  await api.start()
  t.after(async () => {
    await api.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const kubeconfig = await api.writeKubeconfig(join(dir, 'kubeconfig'), options)
  return { api, kubeconfig, dir }
}

/** The app with KUBECONFIG set, its local node running one static pod that the kubelet stand-in mirrors. */
async function serviceOn(t: TestContext, api: FakeApiServer, kubeconfig: string) {
  const app = await build(t, { env: { KUBECONFIG: kubeconfig } })
  await writeFile(join(app.manifests, 'web.yaml'), podYaml('web'))
  api.addNode({ name: 'local', internalIP: '10.0.0.11' })
  await new FakeKubelet(api, [{ name: 'local', staticPodPath: app.manifests }]).sync()
  return app
}

const STATUS_AND_MIRROR_PODS = '{ cluster { apiServer { configured reachable version error } } mirrorPods { name nodeName staticPod { name } } nodes { name kubernetes { internalIP } } }'

const ANSWERED = {
  cluster: { apiServer: { configured: true, reachable: true, version: KUBE_VERSION, error: null } },
  mirrorPods: [{ name: 'web-local', nodeName: 'local', staticPod: { name: 'web' } }],
  nodes: [{ name: 'local', kubernetes: { internalIP: '10.0.0.11' } }],
}

describe('kubeconfigs as kubectl takes them', () => {
  it('kubectl proxy: http://, no TLS field, no user; the service and kubectl both read the API server through it', async (t) => {
    const { api, kubeconfig } = await apiServer(t, null, { user: 'none' })
    const text = await readFile(kubeconfig, 'utf8')
    assert.match(text, /^ {4}server: http:\/\/127\.0\.0\.1:\d+$/m)
    assert.doesNotMatch(text, /tls|certificate|users:|token/, 'the file is what kubectl proxy users have: a server and nothing else')

    const app = await serviceOn(t, api, kubeconfig)
    const res = await app.gql(STATUS_AND_MIRROR_PODS)
    assert.equal(res.errors, undefined, JSON.stringify(res.errors))
    assert.deepEqual(res.data, ANSWERED)
    assert.ok(api.count('/api/v1/pods') >= 1 && api.count('/version') >= 1, 'the answers came from the API server')

    const pods = JSON.parse(await kubectl(kubeconfig, 'get', 'pods', '-A', '-o', 'json'))
    assert.deepEqual(pods.items.map((p: { metadata: { name: string } }) => p.metadata.name), ['web-local'])
    assert.match(await kubectl(kubeconfig, 'get', 'nodes'), /\nlocal\s/)
  })

  it('https:// with the cluster CA in certificate-authority-data and a token: the service and kubectl verify the server and are answered', async (t) => {
    const { api, kubeconfig } = await apiServer(t, pki)
    assert.match(api.url, /^https:/)
    const text = await readFile(kubeconfig, 'utf8')
    assert.match(text, /^ {4}certificate-authority-data: [A-Za-z0-9+/=]+$/m)
    assert.doesNotMatch(text, /insecure-skip-tls-verify/)

    const app = await serviceOn(t, api, kubeconfig)
    const res = await app.gql(STATUS_AND_MIRROR_PODS)
    assert.equal(res.errors, undefined, JSON.stringify(res.errors))
    assert.deepEqual(res.data, ANSWERED)

    const pods = JSON.parse(await kubectl(kubeconfig, 'get', 'pods', '-A', '-o', 'json'))
    assert.deepEqual(pods.items.map((p: { metadata: { name: string } }) => p.metadata.name), ['web-local'])
    assert.match(await kubectl(kubeconfig, 'version', '-o', 'json'), new RegExp(`"gitVersion": "${KUBE_VERSION}"`))
  })

  it('https:// is still verified: without the CA, or with another CA, neither the service nor kubectl is answered', async (t) => {
    const { api, dir } = await apiServer(t, pki)
    const noCa = await api.writeKubeconfig(join(dir, 'no-ca'), { ca: false })
    const otherCa = await api.writeKubeconfig(join(dir, 'other-ca'), { ca: otherPki.ca })
    for (const kubeconfig of [noCa, otherCa]) {
      const client = lazyKubeApi({ kind: 'kubeconfig', path: kubeconfig }, 2000)
      await assert.rejects(client.version(), (err: Error) => /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify the first certificate/.test(err.message), kubeconfig)
      await assert.rejects(kubectl(kubeconfig, 'get', 'pods', '-A'), /certificate signed by unknown authority/)
    }
    assert.equal(api.count(), 0, 'no request reached the server over an unverified connection')

    // And through the service: the API server is unreachable, saying why.
    const app = await build(t, { env: { KUBECONFIG: otherCa } })
    const res = await app.gql('{ cluster { apiServer { configured reachable error } } }')
    assert.equal(res.data.cluster.apiServer.configured, true)
    assert.equal(res.data.cluster.apiServer.reachable, false)
    assert.match(res.data.cluster.apiServer.error, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify the first certificate/)
    assert.equal(api.count(), 0)
  })
})
