// The alerting gauges of /metrics (docs/alerts.yaml alerts on them), with the
// real app: a local node whose crictl is the stand-in (test/support/fake-crictl.mjs,
// first on PATH), an SSH node nobody answers for, and certificates made by openssl.

import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { NodeObservation } from '../../src/domain.ts'
import { Metrics } from '../../src/http/metrics.ts'
import { makeCertificates } from '../diagnosis/openssl-certs.ts'
import { build, podYaml } from '../helper.ts'
import { container, sandbox } from '../support/crictl-fixture.ts'
import { sshNodeRecord } from '../support/node-record.ts'

const fakeCrictl = fileURLToPath(new URL('../support/fake-crictl.mjs', import.meta.url))
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

let root = ''
let crictlState = ''

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'staticpod-gauges-'))
  const bin = join(root, 'bin')
  await mkdir(bin)
  crictlState = join(root, 'crictl.json')
  await writeFile(join(bin, 'crictl'), `#!/bin/sh\nFAKE_CRICTL_STATE=${quote(crictlState)} exec ${quote(process.execPath)} ${quote(fakeCrictl)} "$@"\n`, { mode: 0o755 })
  // The local agent runs the first crictl on PATH (this test file is a process of its own).
  process.env.PATH = `${bin}:${process.env.PATH ?? ''}`
})
after(() => rm(root, { recursive: true, force: true }))

/** The runtime of node "local": web ready (main restarted twice), db's container exited after 5 restarts. */
async function writeRuntime(): Promise<void> {
  const web = sandbox({ podName: 'web-local', namespace: 'default', id: 'a1', state: 'SANDBOX_READY', createdAt: '2024-06-10T06:00:00Z' })
  const db = sandbox({ podName: 'db-local', namespace: 'default', id: 'b2', state: 'SANDBOX_READY', createdAt: '2024-06-10T06:00:00Z' })
  const state = {
    sandboxes: [web, db],
    containers: [
      container({ name: 'main', sandbox: web, id: 'c3', state: 'CONTAINER_RUNNING', createdAt: '2024-06-10T06:00:01Z', attempt: 2, image: 'nginx:1.27' }),
      container({ name: 'main', sandbox: db, id: 'd4', state: 'CONTAINER_EXITED', createdAt: '2024-06-10T06:00:01Z', attempt: 5, image: 'nginx:1.27', detail: { exitCode: 1, reason: 'Error' } }),
    ],
  }
  await writeFile(crictlState, JSON.stringify(state))
}

async function scrape(app: { inject(url: string): Promise<{ body: string }> }): Promise<Map<string, number>> {
  const samples = new Map<string, number>()
  for (const line of (await app.inject('/metrics')).body.split('\n')) {
    const m = /^(staticpod_(?:node_reachable|static_pod_ready|static_pod_container_restarts|node_findings|certificate_expiry_seconds)(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (m) samples.set(m[1] as string, Number(m[2]))
  }
  return samples
}

describe('/metrics alerting gauges', () => {
  it('after a query reads the node: reachable, ready, restarts and findings by code, with node/namespace/name/container labels', async (t) => {
    await writeRuntime()
    const { app, gql, manifests } = await build(t)
    assert.deepEqual([...(await scrape(app)).keys()], [], 'nothing observed yet: no series')
    await writeFile(join(manifests, 'web.yaml'), podYaml('web'))
    await writeFile(join(manifests, 'db.yaml'), podYaml('db'))
    await mkdir(join(manifests, 'old'))
    const res = await gql('{ staticPods(maxAgeSeconds: 0) { name runtime { state } } }')
    assert.equal(res.errors, undefined)

    assert.deepEqual(
      Object.fromEntries(await scrape(app)),
      {
        'staticpod_node_reachable{node="local"}': 1,
        'staticpod_static_pod_ready{node="local",namespace="default",name="db"}': 0,
        'staticpod_static_pod_ready{node="local",namespace="default",name="web"}': 1,
        'staticpod_static_pod_container_restarts{node="local",namespace="default",name="db",container="main"}': 5,
        'staticpod_static_pod_container_restarts{node="local",namespace="default",name="web",container="main"}': 2,
        'staticpod_node_findings{node="local",code="SUBDIRECTORY"}': 1,
      },
    )

    // What vanished from the node vanishes from the gauges at the next read.
    await rm(join(manifests, 'db.yaml'))
    await rm(join(manifests, 'old'), { recursive: true })
    await gql('{ staticPods(maxAgeSeconds: 0) { name } }')
    const after = await scrape(app)
    assert.equal(after.get('staticpod_static_pod_ready{node="local",namespace="default",name="web"}'), 1)
    assert.equal([...after.keys()].some((k) => k.includes('name="db"') || k.startsWith('staticpod_node_findings')), false, [...after.keys()].join('\n'))
  })

  it('a node that cannot be read shows reachable 0, and no pod series', async (t) => {
    const { app, gql, manifests } = await build(t)
    // Port 9 (discard): nothing listens, the connection is refused at once.
    await app.services.store.createNode(sshNodeRecord({ name: 'down', host: '127.0.0.1', port: 9, user: 'root', staticPodPath: manifests, hostKeyFingerprint: null }))
    const res = await gql('{ staticPods(node: "down", maxAgeSeconds: 0) { name } }')
    assert.ok(res.errors?.length, 'the read failed')
    const samples = await scrape(app)
    assert.equal(samples.get('staticpod_node_reachable{node="down"}'), 0)
    assert.equal([...samples.keys()].some((k) => k.startsWith('staticpod_static_pod_') && k.includes('node="down"')), false)
  })

  it('certificate seconds left appear after a certificates query on a pod whose flag names a real certificate', async (t) => {
    const now = Date.now()
    const day = 86_400_000
    const made = await makeCertificates(
      { subject: '/CN=kubernetes', notBefore: new Date(now - 30 * day), notAfter: new Date(now + 3650 * day) },
      {
        serving: { subject: '/CN=kube-apiserver', notBefore: new Date(now - 30 * day), notAfter: new Date(now + 10 * day) },
        client: { subject: '/CN=kube-apiserver-kubelet-client', notBefore: new Date(now - 30 * day), notAfter: new Date(now + 200 * day) },
      },
    )
    const pki = join(root, 'pki')
    await mkdir(pki, { recursive: true })
    await writeFile(join(pki, 'apiserver.crt'), made.certs.serving.pem)
    await writeFile(join(pki, 'client.crt'), made.certs.client.pem)
    const { app, gql, manifests } = await build(t)
    await writeFile(
      join(manifests, 'kube-apiserver.yaml'),
      `apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - name: kube-apiserver
    image: registry.k8s.io/kube-apiserver:v1.30.0
    command:
    - kube-apiserver
    - --tls-cert-file=${join(pki, 'apiserver.crt')}
    - --kubelet-client-certificate=${join(pki, 'client.crt')}
`,
    )
    await gql('{ staticPods(maxAgeSeconds: 0) { name } }')
    const key = 'staticpod_certificate_expiry_seconds{node="local",namespace="kube-system",name="kube-apiserver"}'
    assert.equal((await scrape(app)).has(key), false, 'no certificates read yet')

    const res = await gql('{ staticPods(maxAgeSeconds: 0) { name certificates { path daysLeft } } }')
    assert.equal(res.errors, undefined)
    assert.equal(res.data.staticPods[0].certificates.length, 2)
    const left = (await scrape(app)).get(key)
    assert.ok(left !== undefined, 'the gauge is there')
    // The soonest of the two (the serving certificate's, 10 days), counted from the scrape.
    const expected = (made.certs.serving.notAfter.getTime() - Date.now()) / 1000
    assert.ok(Math.abs(left - expected) < 60, `${left} s left, expected about ${expected}`)
  })
})

describe('alerting gauges are bounded', () => {
  const observation = (node: string, pods: number): NodeObservation => ({
    node,
    observedAt: new Date().toISOString(),
    pods: Array.from({ length: pods }, (_, i) => ({ namespace: 'default', name: `p${String(i).padStart(3, '0')}`, fileName: `p${i}.yaml`, hash: 'h', revision: 1, managed: false, manifest: '' })),
    findings: [],
    agent: { reachable: true, lastContactAt: null, lastError: null, latencyMs: 1 },
    kubelet: null,
    kubeletUnavailableReason: 'none',
    runtime: [],
    runtimeUnavailableReason: null,
  })
  const series = async (metrics: Metrics, name: string): Promise<string[]> =>
    (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith(`${name}{`)).map((l) => l.slice(0, l.lastIndexOf(' ')))

  it('forgets the least recently observed node beyond the cap, and any not observed within the TTL', async () => {
    let now = 0
    const metrics = new Metrics({}, { maxNodes: 2, nodeTtlMs: 1000, clock: () => now })
    metrics.observed(observation('a', 0))
    metrics.observed(observation('b', 0))
    metrics.observed(observation('a', 0))
    metrics.observed(observation('c', 0))
    assert.deepEqual(await series(metrics, 'staticpod_node_reachable'), ['staticpod_node_reachable{node="a"}', 'staticpod_node_reachable{node="c"}'])
    now = 600
    metrics.observed(observation('c', 0))
    now = 1200
    assert.deepEqual(await series(metrics, 'staticpod_node_reachable'), ['staticpod_node_reachable{node="c"}'])
  })

  it('exports at most 100 pods of a node', async () => {
    const metrics = new Metrics()
    metrics.observed(observation('a', 150))
    const ready = await series(metrics, 'staticpod_static_pod_ready')
    assert.equal(ready.length, 100)
    assert.equal(ready.at(-1), 'staticpod_static_pod_ready{node="a",namespace="default",name="p099"}')
  })
})
