// Inputs every write path must refuse, each with the field the first problem
// names. Run here through parseManifest + validateStaticPod (+ checkFileName),
// and end-to-end through GraphQL by the API tests. All of them assume the node
// is named BAD_INPUT_NODE_NAME.

import { validPodYaml } from './fixtures.ts'

export const BAD_INPUT_NODE_NAME = 'local'

export interface BadInput {
  label: string
  manifest: string | Uint8Array
  /** When set, the manifest is valid and the file name is what is wrong. */
  fileName?: string
  /** The field path of the first problem reported. */
  expectField: string[]
}

const M = ['manifest']
const SPEC = ['manifest', 'spec']
const CONTAINER0 = ['manifest', 'spec', 'containers', '0']

/** Nine levels of nine-fold aliases: 9^9 strings if expanded. */
function billionLaughs(): string {
  const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']
  const lines = [`x-lol-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]`]
  for (let i = 1; i < levels.length; i++) {
    const refs = Array(9).fill(`*${levels[i - 1]}`).join(',')
    lines.push(`x-lol-${levels[i]}: &${levels[i]} [${refs}]`)
  }
  return `${validPodYaml('lol')}${lines.join('\n')}\n`
}

/** 20 MiB: a valid pod followed by one long comment. */
function twentyMegabytes(): string {
  const pod = validPodYaml('big')
  return `${pod}# ${'x'.repeat(20 * 1024 * 1024 - pod.length - 3)}\n`
}

/** metadata.name of 250 characters: valid, but `<name>-local` is 256 > 253. */
function nameWithTooLongMirrorName(): string {
  const label = 'a'.repeat(62)
  const name = [label, label, label, label].join('.').slice(0, 248) + 'zz'
  return validPodYaml(name)
}

const podWithSpec = (spec: string): string => `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
${spec}`

export const badInputs: BadInput[] = [
  { label: 'YAML billion-laughs alias bomb', manifest: billionLaughs(), expectField: M },
  { label: '20 MiB manifest', manifest: twentyMegabytes(), expectField: M },
  { label: 'two YAML documents', manifest: `${validPodYaml('one')}---\n${validPodYaml('two')}`, expectField: M },
  {
    label: 'kind Deployment',
    manifest: `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.27
`,
    expectField: ['manifest', 'kind'],
  },
  {
    label: 'PodList',
    manifest: `apiVersion: v1
kind: PodList
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: web}
  spec:
    containers: [{name: app, image: 'nginx:1.27'}]
`,
    expectField: ['manifest', 'kind'],
  },
  { label: 'container without image', manifest: podWithSpec('  containers:\n  - name: app\n'), expectField: [...CONTAINER0, 'image'] },
  {
    label: 'duplicate container names',
    manifest: podWithSpec('  containers:\n  - name: app\n    image: nginx:1.27\n  - name: app\n    image: busybox:1.36\n'),
    expectField: ['manifest', 'spec', 'containers', '1', 'name'],
  },
  {
    label: 'init container named like a container',
    manifest: podWithSpec('  containers:\n  - name: app\n    image: nginx:1.27\n  initContainers:\n  - name: app\n    image: busybox:1.36\n'),
    expectField: ['manifest', 'spec', 'initContainers', '0', 'name'],
  },
  { label: 'uppercase metadata.name', manifest: validPodYaml('Web'), expectField: ['manifest', 'metadata', 'name'] },
  { label: 'mirror pod name longer than 253 (node "local")', manifest: nameWithTooLongMirrorName(), expectField: ['manifest', 'metadata', 'name'] },
  { label: 'fileName ../x.yaml', manifest: validPodYaml(), fileName: '../x.yaml', expectField: ['fileName'] },
  { label: 'hidden fileName .x.yaml', manifest: validPodYaml(), fileName: '.x.yaml', expectField: ['fileName'] },
  { label: 'fileName with a NUL byte', manifest: validPodYaml(), fileName: 'x\u0000.yaml', expectField: ['fileName'] },
  { label: 'fileName ..', manifest: validPodYaml(), fileName: '..', expectField: ['fileName'] },
  {
    label: 'Secret volume',
    manifest: validPodYaml('web', '  volumes:\n  - name: creds\n    secret:\n      secretName: creds\n'),
    expectField: [...SPEC, 'volumes', '0', 'secret'],
  },
  {
    label: 'ConfigMap in env valueFrom',
    manifest: podWithSpec(`  containers:
  - name: app
    image: nginx:1.27
    env:
    - name: MODE
      valueFrom:
        configMapKeyRef: {name: settings, key: mode}
`),
    expectField: [...CONTAINER0, 'env', '0', 'valueFrom', 'configMapKeyRef'],
  },
  {
    label: 'envFrom secretRef',
    manifest: podWithSpec('  containers:\n  - name: app\n    image: nginx:1.27\n    envFrom:\n    - secretRef:\n        name: creds\n'),
    expectField: [...CONTAINER0, 'envFrom', '0', 'secretRef'],
  },
  { label: 'serviceAccountName', manifest: validPodYaml('web', '  serviceAccountName: builder\n'), expectField: [...SPEC, 'serviceAccountName'] },
  {
    label: 'projected service account token',
    manifest: validPodYaml('web', '  volumes:\n  - name: token\n    projected:\n      sources:\n      - serviceAccountToken:\n          path: token\n'),
    expectField: [...SPEC, 'volumes', '0', 'projected', 'sources', '0', 'serviceAccountToken'],
  },
  {
    label: 'ephemeralContainers',
    manifest: validPodYaml('web', '  ephemeralContainers:\n  - name: debug\n    image: busybox:1.36\n'),
    expectField: [...SPEC, 'ephemeralContainers'],
  },
  {
    label: 'JSON with __proto__ and no spec.containers',
    manifest: '{"apiVersion": "v1", "kind": "Pod", "__proto__": {"polluted": true}, "metadata": {"name": "web"}, "spec": {"__proto__": {"containers": [{"name": "app", "image": "nginx"}]}}}',
    expectField: [...SPEC, 'containers'],
  },
  { label: 'bytes that are not UTF-8', manifest: Uint8Array.from([...Buffer.from(validPodYaml()), 0xff, 0xfe, 0x0a]), expectField: M },
  { label: 'string with a lone surrogate', manifest: validPodYaml('web', '  hostname: "\ud800"\n'), expectField: M },
  { label: 'empty string', manifest: '', expectField: M },
  { label: 'whitespace only', manifest: ' \n\t\n  ', expectField: M },
  { label: 'top-level list', manifest: '- apiVersion: v1\n  kind: Pod\n', expectField: M },
  { label: 'scalar document', manifest: 'just a string\n', expectField: M },
  { label: 'apiVersion v2', manifest: validPodYaml().replace('apiVersion: v1', 'apiVersion: v2'), expectField: ['manifest', 'apiVersion'] },
  { label: 'no metadata', manifest: 'apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: app\n    image: nginx:1.27\n', expectField: ['manifest', 'metadata'] },
  { label: 'uppercase namespace', manifest: validPodYaml().replace('namespace: default', 'namespace: Prod'), expectField: ['manifest', 'metadata', 'namespace'] },
  { label: 'container name with underscore', manifest: validPodYaml().replace('- name: app', '- name: my_app'), expectField: [...CONTAINER0, 'name'] },
  {
    label: 'PersistentVolumeClaim volume',
    manifest: validPodYaml('web', '  volumes:\n  - name: data\n    persistentVolumeClaim:\n      claimName: data\n'),
    expectField: [...SPEC, 'volumes', '0', 'persistentVolumeClaim'],
  },
  {
    label: 'CSI volume',
    manifest: validPodYaml('web', '  volumes:\n  - name: data\n    csi:\n      driver: example.com/csi\n'),
    expectField: [...SPEC, 'volumes', '0', 'csi'],
  },
  {
    label: 'cephfs volume with secretRef',
    manifest: validPodYaml('web', '  volumes:\n  - name: data\n    cephfs:\n      monitors: [10.0.0.1]\n      secretRef: {name: ceph}\n'),
    expectField: [...SPEC, 'volumes', '0', 'cephfs', 'secretRef'],
  },
  { label: 'imagePullSecrets', manifest: validPodYaml('web', '  imagePullSecrets:\n  - name: registry\n'), expectField: [...SPEC, 'imagePullSecrets'] },
  {
    label: 'resourceClaims',
    manifest: validPodYaml('web', '  resourceClaims:\n  - name: gpu\n    resourceClaimName: gpu\n'),
    expectField: [...SPEC, 'resourceClaims'],
  },
  { label: 'duplicate keys', manifest: validPodYaml().replace('kind: Pod\n', 'kind: Pod\nkind: Pod\n'), expectField: M },
  { label: 'duplicate keys in JSON', manifest: '{"apiVersion": "v1", "apiVersion": "v1", "kind": "Pod"}', expectField: M },
  { label: 'YAML flow mapping where the kubelet expects JSON', manifest: '{apiVersion: v1, kind: Pod, metadata: {name: web}, spec: {containers: [{name: app, image: nginx}]}}', expectField: M },
  { label: 'YAML syntax error', manifest: validPodYaml().replace('  name: web', '  name: [web'), expectField: M },
]
