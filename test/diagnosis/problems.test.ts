// diagnosePod: the evidence read on a node turned into problems, most likely
// cause first. Pure; the end-to-end cases on sshd nodes are in
// test/graphql/diagnosis.test.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ContainerRuntimeState } from '../../src/domain.ts'
import { diagnosePod, type PodEvidence } from '../../src/diagnosis/problems.ts'

const NOW = new Date('2026-12-02T03:00:00Z')
const ago = (seconds: number) => new Date(NOW.getTime() - seconds * 1000).toISOString()

function running(overrides: Partial<ContainerRuntimeState> = {}): ContainerRuntimeState {
  return { name: 'kube-apiserver', image: 'registry.k8s.io/kube-apiserver:v1.31.3', state: 'CONTAINER_RUNNING', ready: true, restartCount: 0, ...overrides }
}

function evidence(overrides: Partial<PodEvidence> = {}): PodEvidence {
  return {
    node: 'cp-2',
    namespace: 'kube-system',
    name: 'kube-apiserver',
    mirrorPodName: 'kube-apiserver-cp-2',
    fileName: 'kube-apiserver.yaml',
    fileChangedAt: ago(3600),
    findings: [],
    runtime: { state: 'SANDBOX_READY', sandboxCreatedAt: ago(3500), containers: [running()] },
    runtimeUnavailable: null,
    kubelet: { healthy: true, message: 'ok' },
    kubeletUnavailable: null,
    certificates: [],
    certWarnDays: 30,
    journal: [],
    lastLogLines: {},
    sync: null,
    now: NOW,
    ...overrides,
  }
}

const codes = (e: PodEvidence) => diagnosePod(e).map((p) => p.code)

describe('diagnosePod', () => {
  it('is empty when the pod runs ready and the kubelet is healthy', () => {
    assert.deepEqual(diagnosePod(evidence()), [])
  })

  it('an expired certificate comes before the crash loop it causes, each with its evidence', () => {
    const problems = diagnosePod(
      evidence({
        runtime: {
          state: 'SANDBOX_READY',
          sandboxCreatedAt: ago(3500),
          containers: [running({ state: 'CONTAINER_EXITED', restartCount: 6, exitCode: 1, reason: 'Error', finishedAt: ago(5) })],
        },
        certificates: [
          { path: '/etc/kubernetes/pki/apiserver.crt', referencedBy: '--tls-cert-file', subject: 'CN=kube-apiserver', issuer: 'CN=kubernetes', notBefore: ago(366 * 86400), notAfter: ago(86400), daysLeft: -1 },
        ],
        lastLogLines: { 'kube-apiserver': ['2026-12-02T02:59:55Z stderr F E1202 run.go:72] "command failed" err="x509: certificate has expired or is not yet valid"'] },
      }),
    )
    assert.deepEqual(problems.map((p) => p.code), ['CERTIFICATE_EXPIRED', 'CRASH_LOOP'])
    assert.match(problems[0]?.evidence[0] ?? '', /^\/etc\/kubernetes\/pki\/apiserver\.crt: notAfter /)
    assert.deepEqual(problems[1]?.evidence.slice(0, 2), [`exit code 1, reason Error, finished ${ago(5)}`, 'restart count 6'])
    assert.match(problems[1]?.message ?? '', /exit code 1 \(Error\), 6 restarts\. Last log line: .*certificate has expired/)
  })

  it('a running container that restarted shows how its previous attempt ended', () => {
    const [problem] = diagnosePod(
      evidence({ runtime: { state: 'SANDBOX_READY', sandboxCreatedAt: ago(3500), containers: [running({ restartCount: 4, lastTermination: { exitCode: 137, reason: 'OOMKilled', finishedAt: ago(30) } })] } }),
    )
    assert.equal(problem?.code, 'CRASH_LOOP')
    assert.match(problem?.message ?? '', /exit code 137 \(OOMKilled\), 4 restarts/)
  })

  it('an image that cannot be pulled, from the kubelet journal, instead of a bare not running', () => {
    const line = { at: ago(10), message: 'E1202 pod_workers.go:1301] "Error syncing pod" err="failed to \\"StartContainer\\" for \\"kube-apiserver\\" with ErrImagePull" pod="kube-system/kube-apiserver-cp-2"' }
    const problems = diagnosePod(evidence({ runtime: null, journal: [line] }))
    assert.deepEqual(problems.map((p) => p.code), ['IMAGE_PULL_FAILED'])
    assert.deepEqual(problems[0]?.evidence, [`kubelet ${line.at}: ${line.message}`])
  })

  it('NOT_PICKED_UP: the file changed after the running sandbox was made, longer ago than the kubelet resync', () => {
    assert.deepEqual(codes(evidence({ fileChangedAt: ago(60), runtime: { state: 'SANDBOX_READY', sandboxCreatedAt: ago(3600), containers: [running()] } })), ['NOT_PICKED_UP'])
    // Within the 20 s the kubelet may take: nothing yet.
    assert.deepEqual(codes(evidence({ fileChangedAt: ago(10), runtime: { state: 'SANDBOX_READY', sandboxCreatedAt: ago(3600), containers: [running()] } })), [])
  })

  it('NOT_RUNNING: no sandbox, past the start grace; not while the kubelet may still be starting it', () => {
    assert.deepEqual(codes(evidence({ runtime: null })), ['NOT_RUNNING'])
    assert.deepEqual(codes(evidence({ runtime: null, fileChangedAt: ago(30) })), [])
    assert.deepEqual(codes(evidence({ runtime: { state: 'SANDBOX_NOTREADY', sandboxCreatedAt: ago(3500), containers: [running({ state: 'CONTAINER_EXITED' })] } })), ['NOT_RUNNING'])
  })

  it("the node's own problems: the kubelet unhealthy, the runtime unavailable (and then no NOT_RUNNING guess)", () => {
    assert.deepEqual(codes(evidence({ kubelet: { healthy: false, message: 'syncloop not healthy' } })), ['KUBELET_UNHEALTHY'])
    assert.deepEqual(codes(evidence({ runtime: null, runtimeUnavailable: 'crictl not found on the node' })), ['RUNTIME_UNAVAILABLE'])
    assert.equal(diagnosePod(evidence({ kubelet: null, kubeletUnavailable: 'no kubelet answers' }))[0]?.severity, 'WARNING')
  })

  it('a manifest finding, a certificate expiring soon and mirror drift, in that order', () => {
    const soon = { path: '/etc/kubernetes/pki/ca.crt', referencedBy: '--client-ca-file', subject: 'CN=kubernetes', issuer: 'CN=kubernetes', notBefore: ago(86400), notAfter: new Date(NOW.getTime() + 10 * 86400_000).toISOString(), daysLeft: 10 }
    assert.deepEqual(
      codes(evidence({ sync: 'MIRROR_OUTDATED', certificates: [soon], findings: [{ code: 'API_REFERENCE_FORBIDDEN', message: 'spec.volumes[0].secret' }] })),
      ['MANIFEST_INVALID', 'CERTIFICATE_EXPIRES_SOON', 'MIRROR_OUTDATED'],
    )
  })
})
