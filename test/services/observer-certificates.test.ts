// A certificate moving into its warning window, as the observer sees it: the
// local node runs kube-apiserver.yaml naming an openssl-made certificate that
// expires in 40 days, CERT_EXPIRY_WARNING_DAYS is 30, and the app's clock (the
// one the observer and diagnosis read) is moved on between rounds. Outside the
// window: no event; once inside: CERTIFICATE_EXPIRES_SOON exactly once; every
// round after that, the certificate read again: no repeat.

import assert from 'node:assert/strict'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { makeTempDir, build } from '../helper.ts'
import { makeCertificates } from '../diagnosis/openssl-certs.ts'
import { kubeApiserverYaml } from '../support/kubeadm-manifests.ts'

const HOUR = 3_600_000
const DAY = 24 * HOUR

describe('a certificate entering the warning window', () => {
  it('is no event while outside, CERTIFICATE_EXPIRES_SOON once when a later round finds it inside, and never again', async (t) => {
    const start = Date.now()
    const pki = await makeTempDir('staticpod-cert-window-pki-')
    t.after(() => rm(pki, { recursive: true, force: true }))
    const made = await makeCertificates(
      { subject: '/CN=kubernetes', notBefore: new Date(start - 400 * DAY), notAfter: new Date(start + 3000 * DAY) },
      { apiserver: { subject: '/CN=kube-apiserver', notBefore: new Date(start - 325 * DAY), notAfter: new Date(start + 40 * DAY) } },
    )
    await writeFile(join(pki, 'ca.crt'), made.ca.pem)
    await writeFile(join(pki, 'apiserver.crt'), made.certs.apiserver.pem)
    await writeFile(join(pki, 'apiserver.key'), made.certs.apiserver.key, { mode: 0o600 })

    const clock = { ms: start }
    const ta = await build(t, { clock: () => new Date(clock.ms), env: { OBSERVE_INTERVAL_SECONDS: '0', CERT_EXPIRY_WARNING_DAYS: '30' } })
    await mkdir(ta.manifests, { recursive: true })
    await writeFile(join(ta.manifests, 'kube-apiserver.yaml'), kubeApiserverYaml({ name: ta.nodeName, ip: '127.0.0.1' }).replaceAll('/etc/kubernetes/pki', pki))
    const { observer, store } = ta.app.services
    const soon = async () => store.listEvents({ types: ['CERTIFICATE_EXPIRES_SOON'], limit: 100, order: 'oldest' })
    const roundAt = async (offsetMs: number) => {
      clock.ms = start + offsetMs
      const round = await observer.round()
      assert.equal(round.observed, 1, `the node was read at +${offsetMs / DAY} days: ${JSON.stringify(round.failed)}`)
    }

    // Outside the window: 40 days left, then 35 (read again: the clock moved on by more than the hourly recheck).
    await roundAt(0)
    assert.deepEqual(await soon(), [], '40 days left: outside the 30-day window')
    await roundAt(5 * DAY)
    assert.deepEqual(await soon(), [], '35 days left: still outside')

    // 15 days on, 25 days left: inside.
    await roundAt(15 * DAY)
    const inside = await soon()
    assert.equal(inside.length, 1, JSON.stringify(inside))
    const [event] = inside
    assert.equal(event?.node, ta.nodeName)
    assert.equal(event?.namespace, 'kube-system')
    assert.equal(event?.name, 'kube-apiserver')
    assert.equal(event?.actor, null)
    assert.match(event?.message ?? '', /apiserver\.crt/)
    assert.match(event?.message ?? '', /in 2[45] days/)

    // Further rounds: the same round time (not read again), two hours and a day later, and ten days later (read again each time): no repeat.
    for (const offset of [15 * DAY, 15 * DAY + 2 * HOUR, 16 * DAY, 25 * DAY]) {
      await roundAt(offset)
      assert.deepEqual((await soon()).map((e) => e.id), [event?.id], `no repeat at +${offset / DAY} days`)
    }
    const all = await store.listEvents({ limit: 100, order: 'oldest' })
    assert.deepEqual(all.map((e) => e.type), ['CERTIFICATE_EXPIRES_SOON'], 'and no other event: the pod itself did not change')
  })
})
