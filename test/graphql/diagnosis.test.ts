// Break-glass diagnosis on real sshd nodes with the API server down: a
// kubeadm-shaped kube-apiserver whose serving certificate expired yesterday
// and whose container exits 1 every few hundred ms (the stand-in runtime of
// test/support/fake-runtime.ts behind the node's crictl), certificates made
// with openssl, the kubelet's journal from the journalctl stand-in, a node
// without crictl whose logs come from the kubelet's files, roles and audit.
import assert from 'node:assert/strict'
import { mkdir, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it, type TestContext } from 'node:test'
import { makeTempDir, podYaml } from '../helper.ts'
import { makeCertificates } from '../diagnosis/openssl-certs.ts'
import { TOKENS, TOKENS_DOCUMENT, bearer } from '../http/tokens.ts'
import { container, criLogRecord, sandbox } from '../support/crictl-fixture.ts'
import { FakeApiServer } from '../support/fake-apiserver.ts'
import { FakeRuntime } from '../support/fake-runtime.ts'
import { kubeApiserverYaml } from '../support/kubeadm-manifests.ts'
import { sshFleetApp, type SshTestApp } from '../support/ssh-app.ts'
import { startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'

const DAY = 86_400_000

let fleet: SshdFleet
let noCrictl: SshdFleet
let pki: string
let podLogs: string
let expiredNotAfter: Date

before(async () => {
  fleet = await startSshdFleet(2, { prefix: 'dg', node: () => ({ crictl: { state: { sandboxes: [], containers: [] } } }) })
  noCrictl = await startSshdFleet(1, { prefix: 'dn', node: () => ({ crictl: 'none' }) })
  pki = await makeTempDir('staticpod-diagnosis-pki-')
  podLogs = await makeTempDir('staticpod-diagnosis-pod-logs-')
  const now = Date.now()
  const made = await makeCertificates(
    { subject: '/CN=kubernetes', notBefore: new Date(now - 400 * DAY), notAfter: new Date(now + 3000 * DAY) },
    {
      apiserver: { subject: '/CN=kube-apiserver', notBefore: new Date(now - 366 * DAY), notAfter: new Date(now - DAY) },
      kubeletClient: { subject: '/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client', notBefore: new Date(now - 300 * DAY), notAfter: new Date(now + 65 * DAY) },
    },
  )
  expiredNotAfter = made.certs.apiserver.notAfter
  await writeFile(join(pki, 'ca.crt'), made.ca.pem)
  await writeFile(join(pki, 'apiserver.crt'), made.certs.apiserver.pem)
  // The key next to the certificate: named by --tls-private-key-file, never to be read or shown.
  await writeFile(join(pki, 'apiserver.key'), made.certs.apiserver.key, { mode: 0o600 })
  await writeFile(join(pki, 'apiserver-kubelet-client.crt'), made.certs.kubeletClient.pem)
})
after(async () => {
  await Promise.all([fleet.stop(), noCrictl.stop()])
  await Promise.all([rm(pki, { recursive: true, force: true }), rm(podLogs, { recursive: true, force: true })])
})

const node = (i: number): SshdNode => fleet.nodes[i - 1] as SshdNode

/** kube-apiserver.yaml as kubeadm writes it, its certificates in this test's pki directory. */
const apiserverManifest = (n: SshdNode) => kubeApiserverYaml({ name: n.name, ip: '127.0.0.1' }).replaceAll('/etc/kubernetes/pki', pki)

/** The app with the API server down (KUBECONFIG names a stand-in that stopped), over the given nodes, their manifests cleared. */
async function appWithApiServerDown(t: TestContext, over: SshdFleet, env: Record<string, string> = {}): Promise<SshTestApp> {
  const api = new FakeApiServer()
  await api.start()
  const kubeconfig = await api.writeKubeconfig(join(over.root, `kubeconfig-${process.pid}-${Math.random().toString(36).slice(2)}`))
  await api.stop()
  const app = await sshFleetApp(t, over, { KUBECONFIG: kubeconfig, KUBE_REQUEST_TIMEOUT_MS: '500', KUBELET_POD_LOGS_DIR: podLogs, ...env })
  for (const n of over.nodes) {
    for (const f of await readdir(n.manifests)) await rm(join(n.manifests, f), { force: true, recursive: true })
    await app.addNode(n)
  }
  return app
}

const POD_QUERY = `query($node: String!, $name: String!, $previous: Boolean!) { staticPod(node: $node, namespace: "kube-system", name: $name, maxAgeSeconds: 0) {
  runtime { containers { name state restartCount exitCode reason containerId lastTermination { exitCode reason } } }
  diagnosis { code severity message evidence }
  certificates { path referencedBy subject notAfter daysLeft }
  logs(previous: $previous) { container previous lines source truncated }
} }`

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await fn()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

describe('diagnosis with the API server down', () => {
  it('an expired serving certificate and the crash loop it causes, in that order; the previous attempt\'s log; every certificate the flags name', async (t) => {
    const app = await appWithApiServerDown(t, fleet)
    const n = node(1)
    await writeFile(join(n.manifests, 'kube-apiserver.yaml'), apiserverManifest(n))
    const runtime = new FakeRuntime([{ name: n.name, staticPodPath: n.manifests, crictlStatePath: join(n.dir, 'crictl.json'), podLogDir: podLogs }], { crashEveryMs: 300 })
    runtime.behave(n.name, 'crash-loop')
    const failure = 'E1202 03:00:00.000000       1 run.go:72] "command failed" err="x509: certificate has expired or is not yet valid: current time 2026-12-02T03:00:00Z is after 2026-12-01T03:00:00Z"'
    runtime.setLogs(n.name, 'kube-apiserver', ['I1202 03:00:00.000000       1 options.go:228] external host was not specified, using 127.0.0.1', failure])
    await runtime.sync()
    runtime.start(100)
    t.after(() => runtime.stop())

    await until('three restarts', async () => {
      const res = await app.gql(`{ staticPod(node: "${n.name}", namespace: "kube-system", name: "kube-apiserver", maxAgeSeconds: 0) { runtime { containers { restartCount } } } }`)
      return (res.data?.staticPod?.runtime?.containers[0]?.restartCount ?? 0) >= 3
    })
    // Held still from here: the stand-in replaces its attempts every few hundred ms, faster than a real
    // kubelet, so a listing and the inspect after it could otherwise be of different attempts.
    await runtime.stop()
    const pod = (await app.gql(POD_QUERY, { node: n.name, name: 'kube-apiserver', previous: true })).data.staticPod
    const [first, second] = pod.diagnosis
    assert.equal(first.code, 'CERTIFICATE_EXPIRED', JSON.stringify(pod.diagnosis, null, 1))
    assert.equal(first.severity, 'CRITICAL')
    assert.deepEqual(first.evidence.map((e: string) => e.split(':')[0]), [join(pki, 'apiserver.crt')])
    assert.ok(first.evidence[0].includes(`notAfter ${expiredNotAfter.toISOString()}`), first.evidence[0])
    assert.equal(second.code, 'CRASH_LOOP')
    assert.match(second.evidence[0], /^exit code 1, reason Error/, JSON.stringify(pod.runtime))
    assert.match(second.evidence.join('\n'), /restart count \d+/)
    assert.match(second.message, /certificate has expired/)

    const container = pod.runtime.containers[0]
    assert.equal(container.exitCode ?? container.lastTermination?.exitCode, 1)
    assert.equal(pod.logs.previous, true)
    assert.equal(pod.logs.source, 'crictl')
    assert.equal(pod.logs.lines.length, 2)
    assert.match(pod.logs.lines[1], /^\S+Z .*certificate has expired/)

    // Every certificate file the flags name, with the right dates; never the key.
    const byPath = new Map(pod.certificates.map((c: { path: string }) => [c.path, c]))
    assert.deepEqual([...byPath.keys()].sort(), [join(pki, 'apiserver-kubelet-client.crt'), join(pki, 'apiserver.crt'), join(pki, 'ca.crt')])
    const expired = byPath.get(join(pki, 'apiserver.crt')) as { notAfter: string; daysLeft: number; referencedBy: string; subject: string }
    assert.equal(expired.notAfter, expiredNotAfter.toISOString())
    // Whole days, rounded down: expired a day and a few seconds ago is -2.
    assert.equal(expired.daysLeft, Math.floor((expiredNotAfter.getTime() - Date.now()) / DAY))
    assert.equal(expired.subject, 'CN=kube-apiserver')
    assert.match(expired.referencedBy, /--tls-cert-file/)
    const response = JSON.stringify(pod)
    assert.ok(!response.includes('PRIVATE KEY') && !response.includes('apiserver.key'), 'no private key material')

    // Node.findings carries the certificate findings too.
    const findings = await app.gql(`{ node(name: "${n.name}") { findings { code fileName message } } }`)
    assert.deepEqual(findings.data.node.findings.map((f: { code: string }) => f.code), ['CERTIFICATE_EXPIRED'])
  })

  it('an image that cannot be pulled gives IMAGE_PULL_FAILED with the kubelet journal line as evidence', async (t) => {
    const app = await appWithApiServerDown(t, fleet)
    const n = node(2)
    await writeFile(join(n.manifests, 'web.yaml'), podYaml('web', 'registry.example:5000/web:9.9', '  namespace: kube-system\n'))
    const runtime = new FakeRuntime([{ name: n.name, staticPodPath: n.manifests, crictlStatePath: join(n.dir, 'crictl.json') }])
    runtime.behave(n.name, 'never-ready')
    await runtime.sync()
    const pull = `E1202 02:59:58.123456    812 log.go:32] "PullImage from image service failed" err="rpc error: code = NotFound desc = failed to pull and unpack image \\"registry.example:5000/web:9.9\\": not found" image="registry.example:5000/web:9.9"`
    const syncing = `E1202 02:59:58.223456    812 pod_workers.go:1301] "Error syncing pod, skipping" err="failed to \\"StartContainer\\" for \\"main\\" with ErrImagePull" pod="kube-system/web-${n.name}"`
    await n.setJournal([
      { at: new Date(Date.now() - 5000).toISOString(), message: pull },
      { at: new Date(Date.now() - 4900).toISOString(), message: syncing },
      { at: new Date(Date.now() - 4800).toISOString(), message: 'I1202 02:59:58.323456    812 kubelet.go:2408] "SyncLoop (PLEG): event for pod" pod="kube-system/other-pod"' },
    ])
    const res = await app.gql(`{ staticPod(node: "${n.name}", namespace: "kube-system", name: "web", maxAgeSeconds: 0) { diagnosis { code evidence } } }`)
    const problem = res.data.staticPod.diagnosis.find((p: { code: string }) => p.code === 'IMAGE_PULL_FAILED')
    assert.ok(problem, JSON.stringify(res.data.staticPod.diagnosis))
    assert.equal(problem.evidence.length, 1, 'only the line that names the pod')
    assert.match(problem.evidence[0], /ErrImagePull" pod="kube-system\/web-/)
  })

  it('a manifest edited 60 s ago while the old sandbox still runs is NOT_PICKED_UP', async (t) => {
    const app = await appWithApiServerDown(t, fleet)
    const n = node(2)
    const file = join(n.manifests, 'web.yaml')
    await writeFile(file, podYaml('web', 'nginx:1.28', '  namespace: kube-system\n'))
    const sixtySecondsAgo = new Date(Date.now() - 60_000)
    await utimes(file, sixtySecondsAgo, sixtySecondsAgo)
    const old = sandbox({ podName: `web-${n.name}`, namespace: 'kube-system', id: 'web-old', state: 'SANDBOX_READY', createdAt: new Date(Date.now() - 3_600_000).toISOString() })
    const main = container({ name: 'main', sandbox: old, id: 'web-main', state: 'CONTAINER_RUNNING', createdAt: new Date(Date.now() - 3_599_000).toISOString(), image: 'nginx:1.27' })
    await n.setCrictlState({ sandboxes: [old], containers: [main] })
    await n.setJournal([])
    const res = await app.gql(`{ staticPod(node: "${n.name}", namespace: "kube-system", name: "web", maxAgeSeconds: 0) { diagnosis { code message evidence } } }`)
    const codes = res.data.staticPod.diagnosis.map((p: { code: string }) => p.code)
    assert.ok(codes.includes('NOT_PICKED_UP'), JSON.stringify(res.data.staticPod.diagnosis))
    assert.ok(!codes.includes('NOT_RUNNING'))
  })
})

describe('logs where crictl is missing, roles and audit', () => {
  it('a node without crictl: the log comes from the kubelet file under /var/log/pods and source says so; also over REST as text/plain', async (t) => {
    const app = await appWithApiServerDown(t, noCrictl)
    const n = noCrictl.nodes[0] as SshdNode
    await writeFile(join(n.manifests, 'web.yaml'), podYaml('web', 'nginx:1.27', '  namespace: kube-system\n'))
    const dir = join(podLogs, `kube-system_web-${n.name}_0123456789abcdef0123456789abcdef`, 'main')
    await mkdir(dir, { recursive: true })
    const now = Date.now()
    const records = ['starting nginx', 'listening on :80', 'GET / 200'].map((text, i) => criLogRecord(new Date(now - 3000 + i).toISOString().replace('Z', '000000Z'), 'stdout', text))
    await writeFile(join(dir, '0.log'), records.map((r) => `${r}\n`).join(''))

    const res = await app.gql(`{ staticPod(node: "${n.name}", namespace: "kube-system", name: "web", maxAgeSeconds: 0) { runtime { state } logs(tailLines: 2) { lines source truncated } } }`)
    assert.equal(res.errors?.length ?? 0, 0, JSON.stringify(res.errors))
    const log = res.data.staticPod.logs
    assert.match(log.source, /\/kube-system_web-[^/]+\/main\/0\.log$/)
    assert.equal(log.truncated, true)
    assert.equal(log.lines.length, 2)
    assert.match(log.lines[1], /GET \/ 200$/)

    const rest = await app.app.inject({ method: 'GET', url: `/api/v1/nodes/${n.name}/staticpods/kube-system/web/log?tailLines=3` })
    assert.equal(rest.statusCode, 200, rest.body)
    assert.match(rest.headers['content-type'] as string, /^text\/plain/)
    assert.equal(rest.body.trimEnd().split('\n').length, 3)
    assert.match(rest.body, /starting nginx\n.*listening on :80\n.*GET \/ 200\n$/)
    const missing = await app.app.inject({ method: 'GET', url: `/api/v1/nodes/${n.name}/staticpods/kube-system/web/log?previous=true` })
    assert.equal(missing.statusCode, 404, missing.body)
  })

  it('a viewer gets FORBIDDEN for logs and kubeletLog; every log read is audited', async (t) => {
    const app = await appWithApiServerDown(t, fleet, { AUTH_TOKENS: TOKENS_DOCUMENT })
    const n = node(2)
    await writeFile(join(n.manifests, 'web.yaml'), podYaml('web', 'nginx:1.27', '  namespace: kube-system\n'))
    await n.setJournal([{ at: new Date(Date.now() - 1000).toISOString(), message: 'I1202 kubelet.go:2408] "SyncLoop ADD" source="file" pods=["kube-system/web-x"]' }])
    const gqlAs = async (token: string, query: string) => (await app.app.inject({ method: 'POST', url: '/graphql', headers: bearer(token), payload: { query } })).json()
    const logs = `{ staticPod(node: "${n.name}", namespace: "kube-system", name: "web") { logs { lines } } }`
    const journal = `{ node(name: "${n.name}") { kubeletLog(sinceSeconds: 60, grep: "SyncLoop") { lines { at message } truncated } } }`
    const viewerLogs = await gqlAs(TOKENS.viewer, logs)
    assert.equal(viewerLogs.errors?.[0]?.extensions?.code, 'FORBIDDEN')
    const viewerJournal = await gqlAs(TOKENS.viewer, journal)
    assert.equal(viewerJournal.errors?.[0]?.extensions?.code, 'FORBIDDEN')
    const operatorJournal = await gqlAs(TOKENS.operator, journal)
    assert.equal(operatorJournal.data.node.kubeletLog.lines.length, 1, JSON.stringify(operatorJournal))
    assert.match(operatorJournal.data.node.kubeletLog.lines[0].message, /SyncLoop ADD/)
    const audit = await gqlAs(TOKENS.admin, '{ auditEvents(limit: 5) { actor action result node } }')
    const reads = audit.data.auditEvents.filter((e: { action: string }) => e.action === 'readContainerLog' || e.action === 'readKubeletLog')
    assert.deepEqual(
      reads.map((e: { action: string; result: string }) => `${e.action} ${e.result}`),
      ['readKubeletLog OK', 'readKubeletLog FORBIDDEN', 'readContainerLog FORBIDDEN'],
    )
  })
})
