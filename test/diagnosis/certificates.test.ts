import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import {
  certificateFindings,
  certificateRefsOf,
  certificatesInKubeconfig,
  certificatesInPem,
  MAX_CERTIFICATE_FILE_BYTES,
  type CertificateInfo,
  type CertificateRef,
} from '../../src/diagnosis/certificates.ts'
import { parseManifest } from '../../src/manifest/parse.ts'
import { etcdYaml, kubeApiserverYaml } from '../support/kubeadm-manifests.ts'
import { makeCertificates, type MadeCertificate } from './openssl-certs.ts'

const DAY = 24 * 60 * 60 * 1000
/** The moment every test reads its certificates at. */
const NOW = new Date('2026-03-15T12:00:00Z')
const at = (days: number) => new Date(NOW.getTime() + days * DAY)

const node = { name: 'cp-1', ip: '10.0.0.11' }
const pod = (yaml: string) => parseManifest(yaml).object

/** A pod of the given containers (name, command, volumeMounts ...) and hostPath volumes. */
function podOf(containers: Array<Record<string, unknown>>, volumes: Record<string, string> = {}, more: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'kube-system' },
    spec: { containers, volumes: Object.entries(volumes).map(([name, path]) => ({ name, hostPath: { path } })), hostNetwork: true, ...more },
  }
}
const cert = (path: string, referencedBy: string): CertificateRef => ({ path, referencedBy, kind: 'certificate' })
const kubeconfig = (path: string, referencedBy: string): CertificateRef => ({ path, referencedBy, kind: 'kubeconfig' })
const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'))
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')

describe('certificateRefsOf: the files a pod\'s flags name', () => {
  it('kubeadm\'s kube-apiserver: every certificate file, none of its keys (nor sa.pub, named by a key flag)', () => {
    assert.deepEqual(certificateRefsOf(pod(kubeApiserverYaml(node))), [
      cert('/etc/kubernetes/pki/ca.crt', '--client-ca-file'),
      cert('/etc/kubernetes/pki/etcd/ca.crt', '--etcd-cafile'),
      cert('/etc/kubernetes/pki/apiserver-etcd-client.crt', '--etcd-certfile'),
      cert('/etc/kubernetes/pki/apiserver-kubelet-client.crt', '--kubelet-client-certificate'),
      cert('/etc/kubernetes/pki/front-proxy-client.crt', '--proxy-client-cert-file'),
      cert('/etc/kubernetes/pki/front-proxy-ca.crt', '--requestheader-client-ca-file'),
      cert('/etc/kubernetes/pki/apiserver.crt', '--tls-cert-file'),
    ])
  })

  it('kubeadm\'s etcd: one ref per file, the flags that name it joined', () => {
    assert.deepEqual(certificateRefsOf(pod(etcdYaml(node, [node]))), [
      cert('/etc/kubernetes/pki/etcd/server.crt', '--cert-file'),
      cert('/etc/kubernetes/pki/etcd/peer.crt', '--peer-cert-file'),
      cert('/etc/kubernetes/pki/etcd/ca.crt', '--peer-trusted-ca-file, --trusted-ca-file'),
    ])
  })

  it('kubeadm\'s kube-controller-manager and kube-scheduler: their kubeconfigs, the CA named three times, no signing or service account key', () => {
    const kcm = podOf(
      [
        {
          name: 'kube-controller-manager',
          image: 'registry.k8s.io/kube-controller-manager:v1.31.3',
          command: [
            'kube-controller-manager',
            '--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf',
            '--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf',
            '--bind-address=127.0.0.1',
            '--client-ca-file=/etc/kubernetes/pki/ca.crt',
            '--cluster-name=kubernetes',
            '--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt',
            '--cluster-signing-key-file=/etc/kubernetes/pki/ca.key',
            '--controllers=*,bootstrapsigner,tokencleaner',
            '--kubeconfig=/etc/kubernetes/controller-manager.conf',
            '--leader-elect=true',
            '--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt',
            '--root-ca-file=/etc/kubernetes/pki/ca.crt',
            '--service-account-private-key-file=/etc/kubernetes/pki/sa.key',
            '--use-service-account-credentials=true',
          ],
          volumeMounts: [
            { mountPath: '/etc/kubernetes/pki', name: 'k8s-certs', readOnly: true },
            { mountPath: '/etc/kubernetes/controller-manager.conf', name: 'kubeconfig', readOnly: true },
          ],
        },
      ],
      { 'k8s-certs': '/etc/kubernetes/pki', kubeconfig: '/etc/kubernetes/controller-manager.conf' },
    )
    assert.deepEqual(certificateRefsOf(kcm), [
      kubeconfig('/etc/kubernetes/controller-manager.conf', '--authentication-kubeconfig, --authorization-kubeconfig, --kubeconfig'),
      cert('/etc/kubernetes/pki/ca.crt', '--client-ca-file, --cluster-signing-cert-file, --root-ca-file'),
      cert('/etc/kubernetes/pki/front-proxy-ca.crt', '--requestheader-client-ca-file'),
    ])
    const scheduler = podOf([
      {
        name: 'kube-scheduler',
        image: 'registry.k8s.io/kube-scheduler:v1.31.3',
        command: ['kube-scheduler', '--authentication-kubeconfig=/etc/kubernetes/scheduler.conf', '--authorization-kubeconfig=/etc/kubernetes/scheduler.conf', '--bind-address=127.0.0.1', '--kubeconfig=/etc/kubernetes/scheduler.conf', '--leader-elect=true'],
      },
    ])
    assert.deepEqual(certificateRefsOf(scheduler), [kubeconfig('/etc/kubernetes/scheduler.conf', '--authentication-kubeconfig, --authorization-kubeconfig, --kubeconfig')])
  })

  it('maps a container path to the node through its hostPath volumeMount', () => {
    const p = podOf(
      [
        {
          name: 'kube-apiserver',
          image: 'k',
          command: ['kube-apiserver', '--tls-cert-file=/certs/apiserver.crt', '--client-ca-file=/certs/ca.crt', '--etcd-cafile=/certs/etcd/ca.crt'],
          volumeMounts: [
            { name: 'pki', mountPath: '/certs/' },
            // A deeper mount shadows the shallower one.
            { name: 'etcd-pki', mountPath: '/certs/etcd' },
          ],
        },
      ],
      { pki: '/etc/kubernetes/pki', 'etcd-pki': '/srv/etcd-pki' },
    )
    assert.deepEqual(certificateRefsOf(p), [
      cert('/etc/kubernetes/pki/apiserver.crt', '--tls-cert-file'),
      cert('/etc/kubernetes/pki/ca.crt', '--client-ca-file'),
      cert('/srv/etcd-pki/ca.crt', '--etcd-cafile'),
    ])
  })

  it('follows subPath; leaves a path unchanged when no hostPath holds it (not mounted, emptyDir, subPathExpr)', () => {
    const p = podOf(
      [
        {
          name: 'c',
          image: 'i',
          command: ['x', '--tls-cert-file=/tls/tls.crt', '--client-ca-file=/scratch/ca.crt', '--root-ca-file=/opt/ca.crt', '--cert-file=/expr/server.crt'],
          volumeMounts: [
            { name: 'host', mountPath: '/tls', subPath: 'apiserver' },
            { name: 'scratch', mountPath: '/scratch' },
            { name: 'host', mountPath: '/expr', subPathExpr: '$(NODE)' },
          ],
        },
      ],
      { host: '/srv/pki' },
    )
    ;(p['spec'] as { volumes: unknown[] }).volumes.push({ name: 'scratch', emptyDir: {} })
    assert.deepEqual(
      certificateRefsOf(p).map((r) => r.path),
      ['/srv/pki/apiserver/tls.crt', '/scratch/ca.crt', '/opt/ca.crt', '/expr/server.crt'],
    )
  })

  it('names the container when the pod has several (init containers count)', () => {
    const p = podOf(
      [
        { name: 'etcd', image: 'e', command: ['etcd', '--cert-file=/pki/server.crt', '--trusted-ca-file=/pki/ca.crt'] },
        { name: 'sidecar', image: 's', args: ['--client-ca-file', '/pki/ca.crt'] },
      ],
      {},
      { initContainers: [{ name: 'wait', image: 'w', command: ['wait-for', '--tls-cert-file=/pki/init.crt'] }] },
    )
    assert.deepEqual(certificateRefsOf(p), [
      cert('/pki/server.crt', 'etcd --cert-file'),
      cert('/pki/ca.crt', 'etcd --trusted-ca-file, sidecar --client-ca-file'),
      cert('/pki/init.crt', 'wait --tls-cert-file'),
    ])
  })

  it('reads both flag forms, a single dash, --tls-sni-cert-key\'s certificate, $(VAR) from env; stops at --', () => {
    const p = podOf([
      {
        name: 'c',
        image: 'i',
        env: [
          { name: 'PKI', value: '/etc/kubernetes/pki' },
          { name: 'ETCD', value: '$(PKI)/etcd' },
          { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
        ],
        command: ['x', '--tls-cert-file', '$(PKI)/apiserver.crt', '-peer-cert-file=$(ETCD)/peer.crt', '--tls-sni-cert-key=/sni/a.crt,/sni/a.key:*.example.com'],
        args: ['--client-ca-file=$(FROM_SECRET)/ca.crt', '--root-ca-file=$$(PKI)/ca.crt', '--kubeconfig', '/etc/kubernetes/admin.conf', '--', '--cert-file=/after/dashdash.crt'],
      },
    ])
    assert.deepEqual(certificateRefsOf(p), [
      cert('/etc/kubernetes/pki/apiserver.crt', '--tls-cert-file'),
      cert('/etc/kubernetes/pki/etcd/peer.crt', '--peer-cert-file'),
      cert('/sni/a.crt', '--tls-sni-cert-key'),
      kubeconfig('/etc/kubernetes/admin.conf', '--kubeconfig'),
    ])
  })

  it('never names a key: no key flag, and no path ending in .key whatever flag names it', () => {
    const keyFlags = [
      '--tls-private-key-file', '--etcd-keyfile', '--key-file', '--peer-key-file', '--client-key-file', '--peer-client-key-file', '--kubelet-client-key',
      '--proxy-client-key-file', '--service-account-key-file', '--service-account-signing-key-file', '--service-account-private-key-file',
      '--cluster-signing-key-file', '--cluster-signing-kubelet-serving-key-file', '--discovery-key',
    ]
    const p = podOf([
      {
        name: 'c',
        image: 'i',
        command: ['x', ...keyFlags.map((f) => `${f}=/pki/k.pem`), '--tls-cert-file=/pki/server.key', '--client-ca-file=/pki/CA.KEY', '--tls-sni-cert-key=/sni/b.key,/sni/b.crt'],
        volumeMounts: [{ name: 'pki', mountPath: '/pki' }],
      },
    ], { pki: '/etc/kubernetes/pki' })
    assert.deepEqual(certificateRefsOf(p), [])
  })

  it('resolves a relative path against an absolute workingDir, and otherwise leaves it out', () => {
    const p = podOf([
      { name: 'a', image: 'i', workingDir: '/etc/kubernetes', command: ['x', '--tls-cert-file=pki/../pki/apiserver.crt'] },
      { name: 'b', image: 'i', command: ['x', '--tls-cert-file=relative.crt'] },
    ])
    assert.deepEqual(certificateRefsOf(p), [cert('/etc/kubernetes/pki/apiserver.crt', 'a --tls-cert-file')])
  })

  it('is bounded to 64 refs, and shrugs off what is not a pod', () => {
    const many = podOf([{ name: 'c', image: 'i', command: ['x', ...Array.from({ length: 100 }, (_, i) => `--client-ca-file=/pki/ca-${i}.crt`)] }])
    const refs = certificateRefsOf(many)
    assert.equal(refs.length, 64)
    assert.equal(refs[63]!.path, '/pki/ca-63.crt')
    assert.deepEqual(certificateRefsOf({}), [])
    assert.deepEqual(certificateRefsOf({ spec: { containers: 'no', volumes: 7 } }), [])
    assert.deepEqual(certificateRefsOf({ spec: { containers: [null, { command: [1, '--tls-cert-file'] }, { command: ['x', '--tls-cert-file='] }] } }), [])
  })
})

describe('certificates made by openssl', () => {
  let ca: MadeCertificate
  let made: Record<'apiserver' | 'kubeletClient' | 'scheduler' | 'frontProxyCa', MadeCertificate>

  before(async () => {
    const result = await makeCertificates(
      { subject: '/CN=kubernetes', notBefore: at(-400), notAfter: at(3250) },
      {
        // Expired yesterday, a year after it was issued (kubeadm's certificates last one year).
        apiserver: { subject: '/CN=kube-apiserver', notBefore: at(-366), notAfter: at(-1) },
        kubeletClient: { subject: '/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client', notBefore: at(-355), notAfter: at(10) },
        scheduler: { subject: '/CN=system:kube-scheduler', notBefore: at(-1), notAfter: at(364) },
        frontProxyCa: { subject: '/CN=front-proxy-ca', notBefore: at(-30), notAfter: at(3000) },
      },
    )
    ca = result.ca
    made = result.certs
  })

  const info = (c: MadeCertificate, path: string, referencedBy: string, subject: string, daysLeft: number, issuer = 'CN=kubernetes'): CertificateInfo => ({
    path,
    referencedBy,
    subject,
    issuer,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    daysLeft,
  })
  const ref = (path: string, referencedBy = '--tls-cert-file') => ({ path, referencedBy })

  describe('certificatesInPem', () => {
    it('reads an expired, an expiring and a valid certificate, with their dates', () => {
      assert.deepEqual(certificatesInPem(bytes(made.apiserver.pem), ref('/etc/kubernetes/pki/apiserver.crt'), NOW), {
        certificates: [info(made.apiserver, '/etc/kubernetes/pki/apiserver.crt', '--tls-cert-file', 'CN=kube-apiserver', -1)],
        problems: [],
      })
      assert.deepEqual(certificatesInPem(bytes(made.kubeletClient.pem), ref('/k.crt', '--kubelet-client-certificate'), NOW).certificates, [
        info(made.kubeletClient, '/k.crt', '--kubelet-client-certificate', 'O=kubeadm:cluster-admins, CN=kube-apiserver-kubelet-client', 10),
      ])
      assert.equal(certificatesInPem(bytes(made.scheduler.pem), ref('/s.crt'), NOW).certificates[0]!.daysLeft, 364)
      assert.equal(made.apiserver.notAfter.toISOString(), '2026-03-14T12:00:00.000Z')
    })

    it('counts whole days left, rounded down: negative from the moment it expires', () => {
      const daysLeft = (c: MadeCertificate, now: Date) => certificatesInPem(bytes(c.pem), ref('/x.crt'), now).certificates[0]!.daysLeft
      assert.equal(daysLeft(made.kubeletClient, NOW), 10)
      assert.equal(daysLeft(made.kubeletClient, new Date(NOW.getTime() + 1000)), 9)
      assert.equal(daysLeft(made.kubeletClient, new Date(made.kubeletClient.notAfter.getTime() - 1000)), 0)
      assert.equal(daysLeft(made.kubeletClient, made.kubeletClient.notAfter), 0)
      assert.equal(daysLeft(made.kubeletClient, new Date(made.kubeletClient.notAfter.getTime() + 1000)), -1)
      assert.equal(daysLeft(made.apiserver, NOW), -1)
      assert.equal(daysLeft(made.apiserver, at(5)), -6)
    })

    it('reads every certificate of a CA bundle, in order', () => {
      const bundle = `${ca.pem}${made.frontProxyCa.pem}`
      assert.deepEqual(certificatesInPem(bytes(bundle), ref('/etc/kubernetes/pki/ca-bundle.crt', '--client-ca-file'), NOW), {
        certificates: [
          info(ca, '/etc/kubernetes/pki/ca-bundle.crt', '--client-ca-file', 'CN=kubernetes', 3250),
          info(made.frontProxyCa, '/etc/kubernetes/pki/ca-bundle.crt', '--client-ca-file', 'CN=front-proxy-ca', 3000),
        ],
        problems: [],
      })
    })

    it('steps over a private key before the certificate, never decoding it: a corrupt key body changes nothing', () => {
      const expected = { certificates: [info(made.scheduler, '/pki/both.pem', '--tls-cert-file', 'CN=system:kube-scheduler', 364)], problems: [] }
      const real = certificatesInPem(bytes(`${made.scheduler.key}${made.scheduler.pem}`), ref('/pki/both.pem'), NOW)
      assert.deepEqual(real, expected)
      assertHoldsNoKey(real, made.scheduler.key)
      const corrupt = '-----BEGIN EC PRIVATE KEY-----\n!!! not base64, not DER ~~~\n-----END EC PRIVATE KEY-----\n'
      assert.deepEqual(certificatesInPem(bytes(`${corrupt}${made.scheduler.pem}`), ref('/pki/both.pem'), NOW), expected)
      // After the certificate too (kubelet-client-current.pem holds both).
      assert.deepEqual(certificatesInPem(bytes(`${made.scheduler.pem}${made.scheduler.key}`), ref('/pki/both.pem'), NOW), expected)
    })

    it('says so when a file holds a key and no certificate, without reading the key', () => {
      const result = certificatesInPem(bytes(made.apiserver.key), ref('/etc/kubernetes/pki/apiserver.key'), NOW)
      assert.deepEqual(result, { certificates: [], problems: ['/etc/kubernetes/pki/apiserver.key holds no certificate, only PRIVATE KEY blocks (not read).'] })
    })

    it('bad PEM: no certificate and a reason', () => {
      const problems = (input: string | Uint8Array) => {
        const result = certificatesInPem(typeof input === 'string' ? bytes(input) : input, ref('/x.crt'), NOW)
        assert.deepEqual(result.certificates, [])
        return result.problems
      }
      assert.deepEqual(problems(''), ['/x.crt holds no PEM certificate (no -----BEGIN CERTIFICATE----- line).'])
      assert.deepEqual(problems('hello\n'), ['/x.crt holds no PEM certificate (no -----BEGIN CERTIFICATE----- line).'])
      // DER is not what the components read (they take PEM).
      const der = Buffer.from(made.apiserver.pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64')
      assert.deepEqual(problems(new Uint8Array(der)), ['/x.crt holds no PEM certificate (no -----BEGIN CERTIFICATE----- line).'])
      assert.deepEqual(problems(made.apiserver.pem.slice(0, 200)), ['/x.crt: a PEM CERTIFICATE block has no END line.'])
      assert.deepEqual(problems('-----BEGIN CERTIFICATE-----\nnot*base64\n-----END CERTIFICATE-----\n'), ['/x.crt: certificate 1 is not valid base64.'])
      const notX509 = problems(`-----BEGIN CERTIFICATE-----\n${b64('definitely not DER')}\n-----END CERTIFICATE-----\n`)
      assert.equal(notX509.length, 1)
      assert.match(notX509[0]!, /^\/x\.crt: certificate 1 does not parse as X\.509 \(.+\)\.$/)
      assert.deepEqual(problems('-----BEGIN certificate\n'), ['/x.crt has a malformed PEM BEGIN line at byte 0.'])
    })

    it('keeps the good certificates of a file with a bad one', () => {
      const bad = '-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n'
      const result = certificatesInPem(bytes(`${ca.pem}${bad}${made.frontProxyCa.pem}`), ref('/b.crt'), NOW)
      assert.deepEqual(result.certificates.map((c) => c.subject), ['CN=kubernetes', 'CN=front-proxy-ca'])
      assert.deepEqual(result.problems, ['/b.crt: certificate 2 is not valid base64.'])
    })

    it('refuses a file larger than the bound without looking into it', () => {
      const big = new Uint8Array(MAX_CERTIFICATE_FILE_BYTES + 1)
      assert.deepEqual(certificatesInPem(big, ref('/big.crt'), NOW), {
        certificates: [],
        problems: [`/big.crt is ${MAX_CERTIFICATE_FILE_BYTES + 1} bytes; certificates are read from files of at most ${MAX_CERTIFICATE_FILE_BYTES} bytes.`],
      })
    })
  })

  describe('certificatesInKubeconfig', () => {
    /** scheduler.conf as kubeadm writes it (cmd/kubeadm/app/phases/kubeconfig: embedded CA, client certificate and key). */
    const schedulerConf = (keyData: string) => `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${b64(ca.pem)}
    server: https://10.0.0.11:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: system:kube-scheduler
  name: system:kube-scheduler@kubernetes
current-context: system:kube-scheduler@kubernetes
kind: Config
preferences: {}
users:
- name: system:kube-scheduler
  user:
    client-certificate-data: ${b64(made.scheduler.pem)}
    client-key-data: ${keyData}
`
    const path = '/etc/kubernetes/scheduler.conf'

    it('kubeadm\'s scheduler.conf: the embedded client certificate and the CA, and nothing of the key', () => {
      const result = certificatesInKubeconfig(bytes(schedulerConf(b64(made.scheduler.key))), path, NOW)
      assert.deepEqual(result, {
        certificates: [
          info(made.scheduler, path, `${path} user system:kube-scheduler`, 'CN=system:kube-scheduler', 364),
          info(ca, path, `${path} cluster kubernetes`, 'CN=kubernetes', 3250),
        ],
        furtherRefs: [],
        problems: [],
      })
      assertHoldsNoKey(result, made.scheduler.key)
    })

    it('never decodes client-key-data: a corrupt one gives the same answer and no problem', () => {
      const good = certificatesInKubeconfig(bytes(schedulerConf(b64(made.scheduler.key))), path, NOW)
      for (const keyData of ['"!!!not-base64!!!"', 'AAAA====', b64('not a key at all'), '[1, 2]', '""']) {
        assert.deepEqual(certificatesInKubeconfig(bytes(schedulerConf(keyData)), path, NOW), good)
      }
    })

    it('kubelet.conf: client-certificate and client-key name one file (kubelet-client-current.pem), returned to be read; its key block is stepped over', () => {
      const kubeletConf = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${b64(ca.pem)}
    server: https://10.0.0.11:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: system:node:cp-1
  name: system:node:cp-1@kubernetes
current-context: system:node:cp-1@kubernetes
kind: Config
preferences: {}
users:
- name: system:node:cp-1
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
`
      const result = certificatesInKubeconfig(bytes(kubeletConf), '/etc/kubernetes/kubelet.conf', NOW)
      assert.deepEqual(result.furtherRefs, [cert('/var/lib/kubelet/pki/kubelet-client-current.pem', '/etc/kubernetes/kubelet.conf user system:node:cp-1')])
      assert.deepEqual(result.certificates.map((c) => c.referencedBy), ['/etc/kubernetes/kubelet.conf cluster kubernetes'])
      assert.deepEqual(result.problems, [])
      const further = result.furtherRefs[0]!
      const pem = certificatesInPem(bytes(`${made.kubeletClient.pem}${made.kubeletClient.key}`), further, NOW)
      assert.deepEqual(pem.certificates.map((c) => [c.subject, c.daysLeft]), [['O=kubeadm:cluster-admins, CN=kube-apiserver-kubelet-client', 10]])
      assertHoldsNoKey(pem, made.kubeletClient.key)
    })

    it('resolves relative paths against the kubeconfig\'s directory, maps them when asked, and names no .key', () => {
      const conf = JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: 'https://x', 'certificate-authority': 'pki/ca.crt' } }],
        users: [
          { name: 'a', user: { 'client-certificate': '../certs/a.crt', 'client-key': '../certs/a.key' } },
          { name: 'b', user: { 'client-certificate': 'pki/b.key' } },
          { name: 'c', user: { 'client-certificate': '/abs/c.crt' } },
          { name: 'd', user: { 'client-certificate': '/abs/c.crt' } },
        ],
      })
      assert.deepEqual(certificatesInKubeconfig(bytes(conf), '/etc/kubernetes/x.conf', NOW).furtherRefs, [
        cert('/etc/certs/a.crt', '/etc/kubernetes/x.conf user a'),
        cert('/abs/c.crt', '/etc/kubernetes/x.conf user c, /etc/kubernetes/x.conf user d'),
        cert('/etc/kubernetes/pki/ca.crt', '/etc/kubernetes/x.conf cluster c'),
      ])
      const mapped = certificatesInKubeconfig(bytes(conf), '/etc/kubernetes/x.conf', NOW, { nodePath: (p) => (p.startsWith('/abs/') ? `/srv${p}` : p) })
      assert.deepEqual(mapped.furtherRefs.map((r) => r.path), ['/etc/certs/a.crt', '/srv/abs/c.crt', '/etc/kubernetes/pki/ca.crt'])
    })

    it('problems: not YAML, not a mapping, too large, embedded data that is not base64 or not a certificate', () => {
      const problems = (text: string | Uint8Array) => {
        const result = certificatesInKubeconfig(typeof text === 'string' ? bytes(text) : text, path, NOW)
        assert.deepEqual([result.certificates, result.furtherRefs], [[], []])
        return result.problems
      }
      assert.match(problems('users: [\n')[0]!, /^\/etc\/kubernetes\/scheduler\.conf cannot be read as a kubeconfig: YAML syntax error/)
      assert.deepEqual(problems('- a\n- b\n'), [`${path} is not a kubeconfig (its top level is not a mapping).`])
      assert.deepEqual(problems(new Uint8Array(MAX_CERTIFICATE_FILE_BYTES + 1)), [`${path} is ${MAX_CERTIFICATE_FILE_BYTES + 1} bytes; a kubeconfig is read only up to ${MAX_CERTIFICATE_FILE_BYTES} bytes.`])
      assert.deepEqual(problems('users:\n- name: u\n  user:\n    client-certificate-data: "%%%"\n'), [`${path} (client-certificate-data of user u) is not valid base64.`])
      assert.deepEqual(problems('users:\n- name: u\n  user:\n    client-certificate-data: 42\n'), [`${path} (client-certificate-data of user u) is not a string.`])
      assert.deepEqual(problems(`clusters:\n- name: k\n  cluster:\n    certificate-authority-data: ${b64('just text')}\n`), [
        `${path} (certificate-authority-data of cluster k) holds no PEM certificate (no -----BEGIN CERTIFICATE----- line).`,
      ])
      assert.deepEqual(problems('apiVersion: v1\nkind: Config\nusers:\n- name: token-user\n  user:\n    token: abc\n'), [])
    })
  })

  describe('certificateFindings', () => {
    const read = (c: MadeCertificate, path: string, by: string) => certificatesInPem(bytes(c.pem), ref(path, by), NOW).certificates

    it('expired first, then expiring within warnDays; a valid one gives nothing', () => {
      const certs = [
        ...read(made.scheduler, '/etc/kubernetes/pki/valid.crt', '--client-ca-file'),
        ...read(made.kubeletClient, '/etc/kubernetes/pki/apiserver-kubelet-client.crt', '--kubelet-client-certificate'),
        ...read(made.apiserver, '/etc/kubernetes/pki/apiserver.crt', '--tls-cert-file'),
      ]
      assert.deepEqual(certificateFindings(certs, 30), [
        {
          code: 'CERTIFICATE_EXPIRED',
          message: 'The certificate CN=kube-apiserver in /etc/kubernetes/pki/apiserver.crt (--tls-cert-file) expired on 2026-03-14T12:00:00.000Z.',
          path: '/etc/kubernetes/pki/apiserver.crt',
          notAfter: '2026-03-14T12:00:00.000Z',
        },
        {
          code: 'CERTIFICATE_EXPIRES_SOON',
          message:
            'The certificate O=kubeadm:cluster-admins, CN=kube-apiserver-kubelet-client in /etc/kubernetes/pki/apiserver-kubelet-client.crt (--kubelet-client-certificate) expires on 2026-03-25T12:00:00.000Z, in 10 days.',
          path: '/etc/kubernetes/pki/apiserver-kubelet-client.crt',
          notAfter: '2026-03-25T12:00:00.000Z',
        },
      ])
    })

    it('"within warnDays": fewer than warnDays whole days left', () => {
      const expiring = read(made.kubeletClient, '/k.crt', '--kubelet-client-certificate')
      assert.deepEqual(certificateFindings(expiring, 10), [])
      assert.deepEqual(certificateFindings(expiring, 11).map((f) => f.code), ['CERTIFICATE_EXPIRES_SOON'])
      assert.deepEqual(certificateFindings(expiring, 0), [])
      const lastDay = certificatesInPem(bytes(made.kubeletClient.pem), ref('/k.crt'), new Date(made.kubeletClient.notAfter.getTime() - 60_000)).certificates
      assert.match(certificateFindings(lastDay, 30)[0]!.message, /, in less than a day\.$/)
      // An expired one is expired whatever warnDays.
      assert.deepEqual(certificateFindings(read(made.apiserver, '/a.crt', '--tls-cert-file'), 0).map((f) => f.code), ['CERTIFICATE_EXPIRED'])
    })

    it('orders each kind soonest first', () => {
      const earlier = certificatesInPem(bytes(made.apiserver.pem), ref('/a.crt'), NOW).certificates
      const later = certificatesInPem(bytes(made.kubeletClient.pem), ref('/b.crt'), at(20)).certificates
      assert.deepEqual(certificateFindings([...later, ...earlier], 30).map((f) => f.path), ['/a.crt', '/b.crt'])
    })
  })

  it('end to end on a kubeadm kube-apiserver: the files its flags name, read as a node would give them; its keys never asked for', () => {
    const files = new Map<string, string>([
      ['/etc/kubernetes/pki/ca.crt', ca.pem],
      ['/etc/kubernetes/pki/etcd/ca.crt', ca.pem],
      ['/etc/kubernetes/pki/apiserver-etcd-client.crt', made.scheduler.pem],
      ['/etc/kubernetes/pki/apiserver-kubelet-client.crt', made.kubeletClient.pem],
      ['/etc/kubernetes/pki/front-proxy-client.crt', made.scheduler.pem],
      ['/etc/kubernetes/pki/front-proxy-ca.crt', made.frontProxyCa.pem],
      ['/etc/kubernetes/pki/apiserver.crt', made.apiserver.pem],
      // The keys next to the certificates.
      ['/etc/kubernetes/pki/apiserver.key', made.apiserver.key],
      ['/etc/kubernetes/pki/apiserver-kubelet-client.key', made.kubeletClient.key],
      ['/etc/kubernetes/pki/sa.key', made.scheduler.key],
    ])
    const asked: string[] = []
    const readNodeFile = (p: string): Uint8Array | null => {
      asked.push(p)
      const text = files.get(p)
      return text === undefined ? null : bytes(text)
    }
    const certs = certificateRefsOf(pod(kubeApiserverYaml(node))).flatMap((r) => certificatesInPem(readNodeFile(r.path)!, r, NOW).certificates)
    assert.ok(asked.every((p) => !p.endsWith('.key')), asked.join(' '))
    assert.equal(certs.length, 7)
    assertHoldsNoKey(certs, made.apiserver.key)
    assert.deepEqual(certificateFindings(certs, 30).map((f) => `${f.code} ${f.path}`), [
      'CERTIFICATE_EXPIRED /etc/kubernetes/pki/apiserver.crt',
      'CERTIFICATE_EXPIRES_SOON /etc/kubernetes/pki/apiserver-kubelet-client.crt',
    ])
  })
})

/** Nothing of the key, neither its PEM lines nor its base64 as a whole, is in what was returned. */
function assertHoldsNoKey(result: unknown, keyPem: string): void {
  const text = JSON.stringify(result)
  const lines = keyPem.split('\n').filter((l) => l.length > 0 && !l.startsWith('-----'))
  assert.ok(lines.length > 0)
  for (const line of lines) assert.ok(!text.includes(line), 'a line of the private key is in the result')
  assert.ok(!text.includes(b64(keyPem)))
  assert.ok(!/PRIVATE KEY/.test(text))
}
