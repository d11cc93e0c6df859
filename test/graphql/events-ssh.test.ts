// Events that are about a state, over real SSH nodes (sshd on 127.0.0.1, the
// crictl stand-in fed by the fake runtime, openssl-made certificates): a crash
// loop starting, a certificate entering its warning window, a node becoming
// unreachable and reachable again each produce their event once, not on every
// observation round.

import assert from 'node:assert/strict'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { makeTempDir, podYaml } from '../helper.ts'
import { makeCertificates } from '../diagnosis/openssl-certs.ts'
import { FakeRuntime } from '../support/fake-runtime.ts'
import { kubeApiserverYaml } from '../support/kubeadm-manifests.ts'
import { sshFleetApp, type SshTestApp } from '../support/ssh-app.ts'
import { startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'

const DAY = 86_400_000

let fleet: SshdFleet
let pki: string

before(async () => {
  fleet = await startSshdFleet(3, { prefix: 'ev', node: () => ({ crictl: { state: { sandboxes: [], containers: [] } } }) })
  pki = await makeTempDir('staticpod-events-pki-')
  const now = Date.now()
  const made = await makeCertificates(
    { subject: '/CN=kubernetes', notBefore: new Date(now - 400 * DAY), notAfter: new Date(now + 3000 * DAY) },
    { apiserver: { subject: '/CN=kube-apiserver', notBefore: new Date(now - 355 * DAY), notAfter: new Date(now + 10 * DAY) } },
  )
  await writeFile(join(pki, 'ca.crt'), made.ca.pem)
  await writeFile(join(pki, 'apiserver.crt'), made.certs.apiserver.pem)
  await writeFile(join(pki, 'apiserver.key'), made.certs.apiserver.key, { mode: 0o600 })
})
after(async () => {
  await fleet.stop()
  await rm(pki, { recursive: true, force: true })
})

const node = (i: number): SshdNode => fleet.nodes[i - 1] as SshdNode

async function appOver(t: { after(fn: () => Promise<void>): unknown }, nodes: SshdNode[], env: Record<string, string> = {}): Promise<SshTestApp> {
  const app = await sshFleetApp(t, fleet, { OBSERVE_INTERVAL_SECONDS: '0', SSH_CONNECT_TIMEOUT_MS: '1500', CERT_EXPIRY_WARNING_DAYS: '30', ...env })
  for (const n of nodes) await app.addNode(n)
  return app
}

async function rounds(app: SshTestApp, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await app.app.services.observer.round()
}

async function eventsOf(app: SshTestApp, node: string): Promise<Array<{ type: string; name: string | null; message: string }>> {
  const res = await app.gql(`{ events(node: "${node}", limit: 1000) { type name message } }`)
  assert.equal(res.errors, undefined, JSON.stringify(res.errors))
  return (res.data.events as Array<{ type: string; name: string | null; message: string }>).reverse()
}

describe('state events, once each', () => {
  it('a crash loop starting is CRASH_LOOP once, however many rounds see it', async (t) => {
    const n = node(1)
    const app = await appOver(t, [n])
    const runtime = new FakeRuntime([{ name: n.name, staticPodPath: n.manifests, crictlStatePath: join(n.dir, 'crictl.json') }], { crashEveryMs: 200 })
    runtime.behave(n.name, 'crash-loop')
    t.after(() => runtime.stop())
    await writeFile(join(n.manifests, 'web.yaml'), podYaml('web'))
    await runtime.sync()
    await rounds(app, 1) // the baseline
    runtime.start(100)
    const deadline = Date.now() + 20_000
    while (!(await eventsOf(app, n.name)).some((e) => e.type === 'CRASH_LOOP')) {
      assert.ok(Date.now() < deadline, 'a CRASH_LOOP event within 20 s')
      await rounds(app, 1)
    }
    await rounds(app, 4)
    const crashes = (await eventsOf(app, n.name)).filter((e) => e.type === 'CRASH_LOOP')
    assert.equal(crashes.length, 1, JSON.stringify(crashes))
    assert.equal(crashes[0]?.name, 'web')
    assert.match(crashes[0]?.message ?? '', /restart/)
    await rm(join(n.manifests, 'web.yaml'))
  })

  it('a certificate entering the warning window is CERTIFICATE_EXPIRES_SOON once', async (t) => {
    const n = node(2)
    const app = await appOver(t, [n])
    await writeFile(join(n.manifests, 'kube-apiserver.yaml'), kubeApiserverYaml({ name: n.name, ip: '127.0.0.1' }).replaceAll('/etc/kubernetes/pki', pki))
    await rounds(app, 3)
    const soon = (await eventsOf(app, n.name)).filter((e) => e.type === 'CERTIFICATE_EXPIRES_SOON')
    assert.equal(soon.length, 1, JSON.stringify(soon))
    assert.equal(soon[0]?.name, 'kube-apiserver')
    assert.match(soon[0]?.message ?? '', /apiserver\.crt/)
    // A second instance on the same store (its own memory of what it checked) announces nothing new.
    const again = await sshFleetApp(t, fleet, { STORE_URL: `sqlite:${join(app.dir, 'staticpod-api.db')}`, OBSERVE_INTERVAL_SECONDS: '0', CERT_EXPIRY_WARNING_DAYS: '30' })
    await again.app.services.observer.round()
    assert.equal((await eventsOf(app, n.name)).filter((e) => e.type === 'CERTIFICATE_EXPIRES_SOON').length, 1)
    // Outside the window (warning 5 days): nothing.
    const narrow = await appOver(t, [], { CERT_EXPIRY_WARNING_DAYS: '5' })
    const other = node(3)
    await narrow.addNode(other)
    await writeFile(join(other.manifests, 'kube-apiserver.yaml'), kubeApiserverYaml({ name: other.name, ip: '127.0.0.1' }).replaceAll('/etc/kubernetes/pki', pki))
    await rounds(narrow, 2)
    assert.deepEqual((await eventsOf(narrow, other.name)).filter((e) => e.type === 'CERTIFICATE_EXPIRES_SOON'), [])
    await rm(join(n.manifests, 'kube-apiserver.yaml'))
    await rm(join(other.manifests, 'kube-apiserver.yaml'))
  })

  it('a node becoming unreachable and reachable again is NODE_UNREACHABLE once and NODE_REACHABLE once', async (t) => {
    const n = node(3)
    const app = await appOver(t, [n])
    await rounds(app, 1)
    await n.kill()
    let restarted = false
    t.after(async () => {
      if (!restarted) await n.start()
    })
    await rounds(app, 3)
    await n.start()
    restarted = true
    await rounds(app, 3)
    const types = (await eventsOf(app, n.name)).map((e) => e.type).filter((type) => type.startsWith('NODE_'))
    assert.deepEqual(types, ['NODE_UNREACHABLE', 'NODE_REACHABLE'])
  })
})
