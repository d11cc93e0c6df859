// certificateEvents: a static pod's certificates entering their warning
// window (or expired) as CERTIFICATE_EXPIRES_SOON, each with an onceKey so
// one file's one expiry is announced once ever.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { CertificateInfo } from '../../src/diagnosis/certificates.ts'
import { certificateEvents } from '../../src/events/derive.ts'

const AT = '2026-03-01T00:00:00.000Z'
const apiserver = { namespace: 'kube-system', name: 'kube-apiserver' }

function cert(daysLeft: number, overrides: Partial<CertificateInfo> = {}): CertificateInfo {
  const notAfter = new Date(Date.parse(AT) + (daysLeft + 0.5) * 86_400_000).toISOString()
  return {
    path: '/etc/kubernetes/pki/apiserver.crt',
    referencedBy: '--tls-cert-file',
    subject: 'CN=kube-apiserver',
    issuer: 'CN=kubernetes',
    notBefore: '2025-03-01T00:00:00.000Z',
    notAfter,
    daysLeft,
    ...overrides,
  }
}

describe('certificateEvents', () => {
  it('one CERTIFICATE_EXPIRES_SOON for a certificate inside the window, about the pod, with an onceKey', () => {
    const c = cert(12)
    const events = certificateEvents('cp-1', apiserver, [c], 30, AT)
    assert.equal(events.length, 1)
    const [event] = events
    assert.deepEqual({ ...event, onceKey: undefined }, {
      at: AT,
      type: 'CERTIFICATE_EXPIRES_SOON',
      node: 'cp-1',
      namespace: 'kube-system',
      name: 'kube-apiserver',
      message: `kube-system/kube-apiserver: The certificate CN=kube-apiserver in /etc/kubernetes/pki/apiserver.crt (--tls-cert-file) expires on ${c.notAfter}, in 12 days.`,
      fromHash: null,
      toHash: null,
      actor: null,
      onceKey: undefined,
    })
    assert.match(event!.onceKey!, /^cert:[0-9a-f]{64}$/)
  })

  it('an expired certificate too, and the message says it expired', () => {
    const [event] = certificateEvents('cp-1', apiserver, [cert(-3)], 30, AT)
    assert.match(event!.message, /expired on /)
    assert.doesNotMatch(event!.message, /expires on/)
  })

  it('nothing for certificates outside the window; warnDays 0 leaves only the expired ones', () => {
    assert.deepEqual(certificateEvents('cp-1', apiserver, [cert(30), cert(365)], 30, AT), [])
    assert.equal(certificateEvents('cp-1', apiserver, [cert(0), cert(-1, { path: '/a.crt' })], 0, AT).length, 1)
    assert.deepEqual(certificateEvents('cp-1', apiserver, [], 30, AT), [])
  })

  it('the same file and expiry always has the same onceKey: announced once, whatever day it is read, whichever pod names it', () => {
    const first = certificateEvents('cp-1', apiserver, [cert(29)], 30, AT)[0]!
    const later = certificateEvents('cp-1', apiserver, [{ ...cert(29), daysLeft: 3, referencedBy: '--kubelet-client-certificate' }], 30, '2026-03-27T00:00:00.000Z')[0]!
    const otherPod = certificateEvents('cp-1', { namespace: 'kube-system', name: 'kube-controller-manager' }, [cert(29)], 30, AT)[0]!
    assert.equal(later.onceKey, first.onceKey)
    assert.equal(otherPod.onceKey, first.onceKey)
  })

  it('a renewed certificate (another notAfter), another file or another node is another key', () => {
    const key = (node: string, c: CertificateInfo): string => certificateEvents(node, apiserver, [c], 30, AT)[0]!.onceKey!
    const keys = [
      key('cp-1', cert(10)),
      key('cp-1', cert(10, { notAfter: '2027-03-10T00:00:00.000Z' })),
      key('cp-1', cert(10, { path: '/etc/kubernetes/pki/front-proxy-client.crt' })),
      key('cp-2', cert(10)),
    ]
    assert.equal(new Set(keys).size, 4)
  })

  it('one event per file and expiry within one call, expired first, then soonest', () => {
    const events = certificateEvents(
      'cp-1',
      apiserver,
      [cert(20, { path: '/b.crt' }), cert(5, { path: '/a.crt' }), cert(5, { path: '/a.crt', subject: 'CN=copy' }), cert(-2, { path: '/c.crt' })],
      30,
      AT,
    )
    assert.deepEqual(
      events.map((e) => /in (\/[a-z]\.crt)/.exec(e.message)![1]),
      ['/c.crt', '/a.crt', '/b.crt'],
    )
  })

  it('keys and messages stay bounded whatever the path and subject', () => {
    const long = cert(1, { path: `/${'p'.repeat(5000)}.crt`, subject: `CN=${'s\n'.repeat(2000)}` })
    const [event] = certificateEvents('cp-1', apiserver, [long], 30, AT)
    assert.equal(event!.onceKey!.length, 'cert:'.length + 64)
    assert.ok(event!.message.length <= 300)
    assert.doesNotMatch(event!.message, /\n/)
  })
})
