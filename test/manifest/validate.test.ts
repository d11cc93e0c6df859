import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ValidationErrors } from '../../src/errors.ts'
import { findApiReferences } from '../../src/manifest/api-references.ts'
import { parseManifest } from '../../src/manifest/parse.ts'
import { containerSpecs, podIdentityOf } from '../../src/manifest/pod-fields.ts'
import { validateStaticPod } from '../../src/manifest/validate.ts'
import { etcdYaml, kubeApiserverYaml, validPodYaml } from './fixtures.ts'

const objectOf = (yaml: string): Record<string, unknown> => parseManifest(yaml).object

function problems(yaml: string, nodeName = 'cp-1', field?: string[]): Array<{ field: string[] | undefined; message: string }> {
  try {
    validateStaticPod(objectOf(yaml), field ? { nodeName, field } : { nodeName })
  } catch (err) {
    assert.ok(err instanceof ValidationErrors)
    return err.problems.map((p) => ({ field: p.field, message: p.message }))
  }
  assert.fail('validated without error')
}

const fields = (yaml: string, nodeName?: string): string[] => problems(yaml, nodeName).map((p) => (p.field ?? []).join('.'))

describe('validateStaticPod: valid pods', () => {
  it('returns the identity of kubeadm control-plane manifests', () => {
    assert.deepEqual(validateStaticPod(objectOf(kubeApiserverYaml), { nodeName: 'CP-1' }), {
      namespace: 'kube-system',
      name: 'kube-apiserver',
      mirrorPodName: 'kube-apiserver-cp-1',
      containers: [{ name: 'kube-apiserver', image: 'registry.k8s.io/kube-apiserver:v1.30.2', init: false }],
    })
    assert.equal(validateStaticPod(objectOf(etcdYaml), { nodeName: 'cp-1' }).mirrorPodName, 'etcd-cp-1')
  })

  it('defaults the namespace to "default", as the kubelet does', () => {
    const yaml = validPodYaml().replace('  namespace: default\n', '')
    assert.equal(validateStaticPod(objectOf(yaml), { nodeName: 'n' }).namespace, 'default')
    assert.equal(validateStaticPod(objectOf(yaml.replace('  name: web', '  name: web\n  namespace: ""')), { nodeName: 'n' }).namespace, 'default')
  })

  it('lists init containers after containers', () => {
    const yaml = validPodYaml('web', '  initContainers:\n  - name: setup\n    image: busybox:1.36\n')
    assert.deepEqual(validateStaticPod(objectOf(yaml), { nodeName: 'n' }).containers, [
      { name: 'app', image: 'nginx:1.27', init: false },
      { name: 'setup', image: 'busybox:1.36', init: true },
    ])
  })

  it('allows what static pods may use: hostPath, emptyDir, downwardAPI, plain env', () => {
    const yaml = validPodYaml(
      'web',
      `  volumes:
  - name: a
    hostPath: {path: /etc/x}
  - name: b
    emptyDir: {}
  - name: c
    projected:
      sources:
      - downwardAPI:
          items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
  automountServiceAccountToken: false
`,
    ).replace('    image: nginx:1.27\n', '    image: nginx:1.27\n    env:\n    - name: A\n      value: b\n    - name: NODE\n      valueFrom:\n        fieldRef: {fieldPath: spec.nodeName}\n')
    validateStaticPod(objectOf(yaml), { nodeName: 'n' })
  })
})

describe('validateStaticPod: problems', () => {
  it('collects every problem at once, each with its field', () => {
    const yaml = `apiVersion: v1
kind: Pod
metadata:
  name: Web
  namespace: Prod
spec:
  serviceAccountName: x
  containers:
  - name: a_b
  - image: nginx
  - name: ok
    image: nginx
  - name: ok
    image: " nginx"
`
    assert.deepEqual(fields(yaml), [
      'manifest.metadata.name',
      'manifest.metadata.namespace',
      'manifest.spec.containers.0.name',
      'manifest.spec.containers.0.image',
      'manifest.spec.containers.1.name',
      'manifest.spec.containers.3.name',
      'manifest.spec.containers.3.image',
      'manifest.spec.serviceAccountName',
    ])
  })

  it('says a Deployment or a PodList is not a static pod, and nothing else', () => {
    const deployment = problems('apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {}}\n')
    assert.deepEqual(deployment.map((p) => p.field), [['manifest', 'kind'], ['manifest', 'apiVersion']])
    assert.match(deployment[0]!.message, /kind is Deployment; a static pod manifest must be exactly one v1 Pod/)
    const list = problems('apiVersion: v1\nkind: PodList\nitems: []\n')
    assert.equal(list.length, 1)
    assert.match(list[0]!.message, /PodList.*each Pod in a file of its own/)
    assert.match(problems('kind: Pod\nmetadata: {name: a}\n')[0]!.message, /apiVersion is missing/)
  })

  it('requires metadata, a name and a spec with containers', () => {
    assert.deepEqual(fields('apiVersion: v1\nkind: Pod\n'), ['manifest.metadata', 'manifest.spec'])
    assert.deepEqual(fields('apiVersion: v1\nkind: Pod\nmetadata: []\nspec: 3\n'), ['manifest.metadata', 'manifest.spec'])
    assert.deepEqual(fields('apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\nspec: {containers: []}\n'), ['manifest.metadata.name', 'manifest.spec.containers'])
    assert.deepEqual(fields('apiVersion: v1\nkind: Pod\nmetadata: {name: 7}\nspec: {containers: {a: 1}, initContainers: x}\n'), [
      'manifest.metadata.name',
      'manifest.spec.containers',
      'manifest.spec.initContainers',
    ])
    assert.deepEqual(fields(validPodYaml().replace('  - name: app\n    image: nginx:1.27\n', '  - just-a-string\n')), ['manifest.spec.containers.0'])
  })

  it('refuses a name whose mirror pod name would pass 253 characters, naming it', () => {
    const name = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(58)}` // 250
    validateStaticPod(objectOf(validPodYaml(name)), { nodeName: 'ab' }) // 253: fits
    const [p] = problems(validPodYaml(name), 'LOCAL')
    assert.deepEqual(p!.field, ['manifest', 'metadata', 'name'])
    assert.ok(p!.message.includes(`${name}-local`))
    assert.match(p!.message, /256 characters long; the limit is 253/)
  })

  it('refuses init containers with a container name, and missing images in them', () => {
    const yaml = validPodYaml('web', '  initContainers:\n  - name: app\n  - name: two\n    image: ""\n')
    assert.deepEqual(fields(yaml), ['manifest.spec.initContainers.0.name', 'manifest.spec.initContainers.0.image', 'manifest.spec.initContainers.1.image'])
    assert.match(problems(yaml)[0]!.message, /already used by spec\.containers\[0\]/)
  })

  it('uses the field prefix it is given', () => {
    assert.deepEqual(problems('kind: Pod\napiVersion: v1\n', 'n', ['input', 'manifest'])[0]!.field, ['input', 'manifest', 'metadata'])
  })

  it('explains why API references are refused', () => {
    const [p] = problems(validPodYaml('web', '  volumes:\n  - name: s\n    secret: {secretName: s}\n'))
    assert.match(p!.message, /Static pods may not refer to Secrets: the kubelet runs static pods without the API server \(the mirror pod would be refused\)/)
  })
})

describe('findApiReferences', () => {
  const paths = (spec: string): string[] => findApiReferences(objectOf(`spec:\n${spec}`)).map((r) => r.path.join('.'))

  it('finds nothing in kubeadm manifests', () => {
    assert.deepEqual(findApiReferences(objectOf(kubeApiserverYaml)), [])
    assert.deepEqual(findApiReferences(objectOf(etcdYaml)), [])
    assert.deepEqual(findApiReferences({}), [])
    assert.deepEqual(findApiReferences({ spec: 'x' }), [])
  })

  it('finds pod-level references, ignoring empty lists', () => {
    assert.deepEqual(paths('  serviceAccountName: a\n  serviceAccount: a\n  imagePullSecrets: [{name: r}]\n  resourceClaims: [{name: g}]\n  ephemeralContainers: [{name: d}]\n'), [
      'spec.serviceAccountName',
      'spec.serviceAccount',
      'spec.imagePullSecrets',
      'spec.resourceClaims',
      'spec.ephemeralContainers',
    ])
    assert.deepEqual(paths('  serviceAccountName: ""\n  imagePullSecrets: []\n  resourceClaims: []\n  ephemeralContainers: []\n'), [])
  })

  it('finds references in env, envFrom and resources of every container list', () => {
    const container = `    env:
    - {name: A, value: x}
    - name: B
      valueFrom: {secretKeyRef: {name: s, key: k}}
    - name: C
      valueFrom: {configMapKeyRef: {name: c, key: k}}
    - name: D
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    envFrom:
    - configMapRef: {name: c}
    - secretRef: {name: s}
    resources:
      claims: [{name: gpu}]
`
    const spec = `  containers:\n  - name: a\n${container}  initContainers:\n  - name: b\n${container}`
    const found = paths(spec)
    const expected = (list: string): string[] => [
      `spec.${list}.0.env.1.valueFrom.secretKeyRef`,
      `spec.${list}.0.env.2.valueFrom.configMapKeyRef`,
      `spec.${list}.0.envFrom.0.configMapRef`,
      `spec.${list}.0.envFrom.1.secretRef`,
      `spec.${list}.0.resources.claims`,
    ]
    assert.deepEqual(found, [...expected('containers'), ...expected('initContainers')])
  })

  it('finds volume references, including secretRef in any source and projected sources', () => {
    const spec = `  volumes:
  - {name: a, secret: {secretName: s}}
  - {name: b, configMap: {name: c}}
  - {name: c, persistentVolumeClaim: {claimName: p}}
  - {name: d, ephemeral: {volumeClaimTemplate: {}}}
  - {name: e, csi: {driver: d}}
  - {name: f, rbd: {monitors: [m], image: i, secretRef: {name: s}}}
  - {name: g, flexVolume: {driver: d, secretRef: {name: s}}}
  - {name: h, azureFile: {secretName: s, shareName: x}}
  - {name: i, hostPath: {path: /x}}
  - {name: j, iscsi: {targetPortal: t, iqn: q, lun: 0}}
  - name: k
    projected:
      sources:
      - downwardAPI: {items: []}
      - secret: {name: s}
      - configMap: {name: c}
      - serviceAccountToken: {path: t}
      - clusterTrustBundle: {path: b, name: n}
`
    assert.deepEqual(paths(spec), [
      'spec.volumes.0.secret',
      'spec.volumes.1.configMap',
      'spec.volumes.2.persistentVolumeClaim',
      'spec.volumes.3.ephemeral',
      'spec.volumes.4.csi',
      'spec.volumes.5.rbd.secretRef',
      'spec.volumes.6.flexVolume.secretRef',
      'spec.volumes.7.azureFile',
      'spec.volumes.10.projected.sources.1.secret',
      'spec.volumes.10.projected.sources.2.configMap',
      'spec.volumes.10.projected.sources.3.serviceAccountToken',
      'spec.volumes.10.projected.sources.4.clusterTrustBundle',
    ])
  })

  it('keeps indexes right past malformed entries', () => {
    assert.deepEqual(paths('  volumes:\n  - null\n  - 3\n  - {name: s, secret: {}}\n'), ['spec.volumes.2.secret'])
  })
})

describe('lenient readers', () => {
  it('podIdentityOf returns null without a usable name', () => {
    assert.equal(podIdentityOf({}, 'n'), null)
    assert.equal(podIdentityOf({ metadata: 'x' }, 'n'), null)
    assert.equal(podIdentityOf({ metadata: { name: '' } }, 'n'), null)
    assert.equal(podIdentityOf({ metadata: { name: 3 } }, 'n'), null)
    assert.deepEqual(podIdentityOf({ metadata: { name: 'Odd_Name' } }, 'N'), { namespace: 'default', name: 'Odd_Name', mirrorPodName: 'Odd_Name-n' })
    assert.deepEqual(podIdentityOf(objectOf(kubeApiserverYaml), 'cp'), { namespace: 'kube-system', name: 'kube-apiserver', mirrorPodName: 'kube-apiserver-cp' })
  })

  it('containerSpecs skips malformed entries', () => {
    const object = { spec: { containers: [{ name: 'a', image: 'i' }, null, { name: 'b' }, 'x'], initContainers: [{ name: 'c', image: 'j' }] } }
    assert.deepEqual(containerSpecs(object), [
      { name: 'a', image: 'i', init: false },
      { name: 'c', image: 'j', init: true },
    ])
    assert.deepEqual(containerSpecs({ spec: { containers: 'x' } }), [])
    assert.deepEqual(containerSpecs({}), [])
  })
})
