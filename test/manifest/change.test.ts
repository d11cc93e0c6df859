import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { deepFreeze } from '../../src/deep-freeze.ts'
import { ServiceError, ValidationErrors } from '../../src/errors.ts'
import {
  applyChange,
  changeHash,
  checkChange,
  isEtcdPod,
  type ManifestChange,
  MAX_FLAG_CHANGES,
  MAX_IMAGE_CHANGES,
} from '../../src/manifest/change.ts'
import { MAX_MANIFEST_BYTES, parseManifest, readDocument } from '../../src/manifest/parse.ts'
import { validateStaticPod } from '../../src/manifest/validate.ts'
import { etcdYaml, kubeApiserverYaml, validPodYaml } from './fixtures.ts'

type Pod = Record<string, any>

/** Parsed manifests are frozen all the way down: a change that wrote to its input would throw. */
const apiserverPod = (): Pod => parseManifest(kubeApiserverYaml).object
const etcdPod = (): Pod => parseManifest(etcdYaml).object
const pod = (yaml: string): Pod => parseManifest(yaml).object

function apply(input: Pod, change: ManifestChange): Pod {
  return applyChange(input, checkChange(change))
}

function containerOf(p: Pod, name: string): Pod {
  const found = [...(p.spec.containers ?? []), ...(p.spec.initContainers ?? [])].find((c: Pod) => c.name === name)
  assert.ok(found, `container ${name}`)
  return found
}

const names = (list: Pod[]): string[] => list.map((x) => x.name)

/** Asserts fn throws a ServiceError with this code and field (and a message matching, if given). */
function throwsServiceError(fn: () => unknown, code: string, field: string[], message?: RegExp): ServiceError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof ServiceError, `expected a ServiceError, got ${String(caught)}`)
  assert.equal(caught.code, code, caught.message)
  assert.deepEqual(caught.field, field, caught.message)
  if (message) assert.match(caught.message, message)
  return caught
}

/** The problems checkChange reports, as [field joined by '.', message]. */
function checkProblems(change: unknown): Array<[string, string]> {
  try {
    checkChange(change as ManifestChange)
  } catch (err) {
    assert.ok(err instanceof ValidationErrors, String(err))
    assert.equal(err.code, 'VALIDATION_FAILED')
    return err.problems.map((p) => {
      assert.equal(p.code, 'VALIDATION_FAILED')
      return [p.field!.join('.'), p.message]
    })
  }
  assert.fail('checkChange accepted the change')
}

function assertOneProblem(change: unknown, field: string, message: RegExp): void {
  const problems = checkProblems(change)
  assert.equal(problems.length, 1, JSON.stringify(problems))
  assert.equal(problems[0]![0], field)
  assert.match(problems[0]![1], message)
}

/** Every mapping and list a plain Object or Array, nothing frozen (so nothing shared with a frozen input). */
function assertPlainJson(value: unknown, path = ''): void {
  if (typeof value !== 'object' || value === null) {
    assert.ok(['string', 'number', 'boolean'].includes(typeof value) || value === null, `${path} is ${typeof value}`)
    return
  }
  assert.ok(!Object.isFrozen(value), `${path} is frozen: shared with the input`)
  if (Array.isArray(value)) {
    assert.equal(Object.getPrototypeOf(value), Array.prototype)
    value.forEach((v, i) => assertPlainJson(v, `${path}[${i}]`))
  } else {
    assert.equal(Object.getPrototypeOf(value), Object.prototype, `${path} has another prototype`)
    for (const [k, v] of Object.entries(value)) assertPlainJson(v, `${path}.${k}`)
  }
}

describe('checkChange', () => {
  it('parses the patch once and returns a frozen checked change; STRATEGIC by default', () => {
    const checked = checkChange({ patch: 'metadata:\n  labels:\n    a: b\n' })
    assert.ok(Object.isFrozen(checked))
    assert.deepEqual(checked.patch, { type: 'STRATEGIC', value: { metadata: { labels: { a: 'b' } } } })
    assert.ok(Object.isFrozen(checked.patch))
    assert.deepEqual(checked.images, [])
    assert.deepEqual(checked.flags, [])
    assert.equal(checkChange({ patch: '{"metadata": {}}', patchType: null }).patch?.type, 'STRATEGIC')
    assert.equal(checkChange({ patch: '{"metadata": {}}', patchType: 'MERGE' }).patch?.type, 'MERGE')
  })

  it('reads YAML and JSON patches, and brace-first text that is YAML but not strict JSON, as kubectl does', () => {
    const json = checkChange({ patch: '{"spec": {"hostNetwork": true}}' }).patch
    const flowYaml = checkChange({ patch: '{spec: {hostNetwork: true}}' }).patch
    assert.deepEqual(json, flowYaml)
    const ops = checkChange({ patchType: 'JSON', patch: '- op: remove\n  path: /metadata/labels\n' }).patch
    assert.deepEqual(ops, { type: 'JSON', operations: [{ op: 'remove', path: '/metadata/labels' }] })
  })

  it('refuses a change that changes nothing', () => {
    assertOneProblem({}, 'change', /changes nothing/)
    assertOneProblem({ patch: null, images: [], flags: null }, 'change', /changes nothing/)
    assertOneProblem({ patchType: 'JSON' }, 'change', /changes nothing/)
  })

  it('refuses what is not a change', () => {
    assertOneProblem(null, 'change', /must be a mapping/)
    assertOneProblem([], 'change', /must be a mapping/)
  })

  it('names the field at fault: patchType, patch', () => {
    assertOneProblem({ patch: '{}', patchType: 'STRATEGIC_MERGE' }, 'change.patchType', /one of STRATEGIC, MERGE, JSON/)
    assertOneProblem({ patch: 42 }, 'change.patch', /YAML or JSON text, not the number 42/)
    assertOneProblem({ patch: '' }, 'change.patch', /^The patch is empty\.$/)
    assertOneProblem({ patch: '   \n' }, 'change.patch', /The patch is empty/)
    assertOneProblem({ patch: '# only a comment\n' }, 'change.patch', /no YAML document/)
    assertOneProblem({ patch: 'spec: [\n' }, 'change.patch', /YAML syntax error/)
    assertOneProblem({ patch: 'spec: {}\nspec: {}\n' }, 'change.patch', /Duplicate key/)
    assertOneProblem({ patch: 'spec: {}\n---\nmetadata: {}\n' }, 'change.patch', /2 YAML documents.*one patch/)
    // An alias inside its own anchor is a cycle: no JSON, and no end to it.
    assertOneProblem({ patch: 'a: &x [*x]\n' }, 'change.patch', /^The patch holds a value JSON cannot \(at a\[0\]\[0\].*\(101 levels\): it is nested more than 100 levels deep\)\.$/)
  })

  it('bounds the patch at MAX_MANIFEST_BYTES', () => {
    const big = `metadata:\n  annotations:\n    a: "${'x'.repeat(MAX_MANIFEST_BYTES)}"\n`
    assertOneProblem({ patch: big }, 'change.patch', new RegExp(`The patch is ${Buffer.byteLength(big)} bytes; the limit is ${MAX_MANIFEST_BYTES} bytes`))
  })

  it('refuses values JSON cannot hold and patches nested absurdly deep', () => {
    assertOneProblem({ patch: 'spec:\n  x: .nan\n' }, 'change.patch', /JSON cannot \(at spec\.x: NaN/)
    assertOneProblem({ patch: 'spec: !!set {a, b}\n' }, 'change.patch', /YAML set/)
    assertOneProblem({ patch: `${'['.repeat(150)}${']'.repeat(150)}`, patchType: 'JSON' }, 'change.patch', /nested more than 100 levels/)
  })

  it('wants a list of operations for JSON, a mapping for MERGE and STRATEGIC', () => {
    assertOneProblem({ patch: '{"op": "add"}', patchType: 'JSON' }, 'change.patch', /JSON patch must be a list of operations/)
    assertOneProblem({ patch: '[]', patchType: 'MERGE' }, 'change.patch', /MERGE patch must be a mapping.*not a list/)
    assertOneProblem({ patch: '"spec"' }, 'change.patch', /STRATEGIC patch must be a mapping/)
    assertOneProblem({ patch: 'null' }, 'change.patch', /STRATEGIC patch must be a mapping.*empty \(null\)/)
  })

  it('checks every JSON patch operation, naming its index', () => {
    const ops = [
      { op: 'replace', path: '/spec/hostNetwork', value: false },
      { op: 'bogus', path: '/x' },
      { op: 'add', path: 'spec' , value: 1 },
      { op: 'add', path: '/spec/x' },
      { op: 'copy', path: '/a' },
      { op: 'move', from: '/spec', path: '/spec/inner' },
      { op: 'remove', path: '/metadata/annotations/bad~2escape' },
      'remove /spec',
    ]
    assert.deepEqual(
      checkProblems({ patch: JSON.stringify(ops), patchType: 'JSON' }).map(([field]) => field),
      ['change.patch.1', 'change.patch.2', 'change.patch.3', 'change.patch.4', 'change.patch.5', 'change.patch.6', 'change.patch.7'],
    )
    const messages = checkProblems({ patch: JSON.stringify(ops), patchType: 'JSON' }).map(([, m]) => m)
    assert.match(messages[0]!, /Operation 1 .* op "bogus"; it must be one of add, remove, replace, move, copy, test/)
    assert.match(messages[1]!, /path must be empty or start with "\/"/)
    assert.match(messages[2]!, /\(add \/spec\/x\) has no value/)
    assert.match(messages[3]!, /its from must be a JSON pointer/)
    assert.match(messages[4]!, /from \/spec is a parent of path/)
    assert.match(messages[5]!, /"~" that is not "~0"/)
    assert.match(messages[6]!, /must be a mapping with op and path/)
  })

  it('bounds a JSON patch at 1000 operations', () => {
    const op = { op: 'test', path: '/kind', value: 'Pod' }
    assert.ok(checkChange({ patchType: 'JSON', patch: JSON.stringify(Array(1000).fill(op)) }))
    assertOneProblem({ patchType: 'JSON', patch: JSON.stringify(Array(1001).fill(op)) }, 'change.patch', /1001 operations; the limit is 1000/)
  })

  it('refuses keys no Pod has that the patch code must not meet', () => {
    assertOneProblem({ patch: '{"metadata": {"__proto__": {"x": 1}}}' }, 'change.patch.metadata.__proto__', /key "__proto__"/)
    assertOneProblem({ patch: '{"metadata": {"labels": {"constructor": "x"}}}', patchType: 'MERGE' }, 'change.patch.metadata.labels.constructor', /cannot be merged safely/)
    // Only json-merge-patch trips over these; a strategic patch may carry them.
    assert.ok(checkChange({ patch: '{"metadata": {"labels": {"constructor": "x"}}}' }))
  })

  it('refuses $patch directives Kubernetes refuses, before any node is read', () => {
    assertOneProblem({ patch: 'spec:\n  securityContext:\n    $patch: merge\n' }, 'change.patch.spec.securityContext.$patch', /"\$patch: merge".*not accepted/)
    assertOneProblem({ patch: 'spec:\n  containers:\n  - name: a\n    $patch: remove\n' }, 'change.patch.spec.containers.0.$patch', /must be "delete" or "replace"/)
  })

  it('checks images: exactly one of image and tag, each well formed, at most 100', () => {
    assertOneProblem({ images: {} }, 'change.images', /must be a list/)
    assertOneProblem({ images: ['kube-apiserver'] }, 'change.images.0', /must be a mapping/)
    assertOneProblem({ images: [{ image: 'nginx:1' }] }, 'change.images.0.container', /container is required/)
    assertOneProblem({ images: [{ container: 'a' }] }, 'change.images.0', /Give image .* or tag/)
    assertOneProblem({ images: [{ container: 'a', image: null, tag: null }] }, 'change.images.0', /Give image .* or tag/)
    assertOneProblem({ images: [{ container: 'a', image: 'nginx:1', tag: '2' }] }, 'change.images.0', /not both/)
    assertOneProblem({ images: [{ container: 'a', tag: 'v1.31.4 ' }] }, 'change.images.0.tag', /tag "v1.31.4 " is not an image tag/)
    assertOneProblem({ images: [{ container: 'a', tag: ':v1' }] }, 'change.images.0.tag', /is not an image tag/)
    assertOneProblem({ images: [{ container: 'a', tag: 'v'.repeat(129) }] }, 'change.images.0.tag', /129 characters long; a tag has at most 128/)
    assertOneProblem({ images: [{ container: 'a', tag: 7 }] }, 'change.images.0.tag', /must be a string/)
    assertOneProblem({ images: [{ container: 'a', image: 'registry.k8s.io/kube-apiserver :v1' }] }, 'change.images.0.image', /contains whitespace/)
    assertOneProblem({ images: [{ container: 'a', image: 'Registry.io/Kube-Apiserver:v1' }] }, 'change.images.0.image', /not an image reference/)
    assertOneProblem({ images: [{ container: 'a', image: '' }] }, 'change.images.0.image', /is empty/)
    assertOneProblem({ images: [{ container: 'a', image: `r.io/${'a'.repeat(600)}` }] }, 'change.images.0.image', /605 characters long; the limit is 512/)
    assertOneProblem({ images: [{ container: 'a', image: `r.io/${'a'.repeat(300)}:v1` }] }, 'change.images.0.image', /registry and repository of 305 characters; the limit is 255/)
    const many = Array.from({ length: MAX_IMAGE_CHANGES + 1 }, (_, i) => ({ container: `c${i}`, tag: 'v1' }))
    assertOneProblem({ images: many }, 'change.images', /101 entries; the limit is 100/)
    assert.equal(checkChange({ images: many.slice(1) }).images.length, MAX_IMAGE_CHANGES)
  })

  it('accepts the image references runtimes accept', () => {
    for (const image of [
      'nginx',
      'nginx:1.27',
      'library/nginx:1.27',
      'registry.k8s.io/kube-apiserver:v1.31.4',
      'localhost:5000/kube-apiserver:v1.31.4',
      '[::1]:5000/etcd:3.5.15-0',
      'Registry.Example.COM/team/app_1:tag',
      `registry.k8s.io/etcd@sha256:${'a'.repeat(64)}`,
      `registry.k8s.io/etcd:3.5.15-0@sha256:${'a'.repeat(64)}`,
    ]) {
      assert.equal(checkChange({ images: [{ container: 'a', image }] }).images[0]!.image, image)
    }
  })

  it('checks flags: name with its dashes, value a bounded line, at most 100', () => {
    assertOneProblem({ flags: [{ container: 'a', flag: 'audit-log-maxage', value: '30' }] }, 'change.flags.0.flag', /not a flag name/)
    assertOneProblem({ flags: [{ container: 'a', flag: '-v', value: '3' }] }, 'change.flags.0.flag', /not a flag name/)
    assertOneProblem({ flags: [{ container: 'a', flag: '--', value: '3' }] }, 'change.flags.0.flag', /not a flag name/)
    assertOneProblem({ flags: [{ container: 'a', flag: '---x', value: '3' }] }, 'change.flags.0.flag', /not a flag name/)
    assertOneProblem({ flags: [{ container: 'a', flag: '--x=1' }] }, 'change.flags.0.flag', /not a flag name/)
    assertOneProblem({ flags: [{ container: 'a', flag: `--${'x'.repeat(300)}` }] }, 'change.flags.0.flag', /302 characters long; the limit is 256/)
    assertOneProblem({ flags: [{ container: 'a' }] }, 'change.flags.0.flag', /flag is required/)
    assertOneProblem({ flags: [{ container: 'a', flag: '--x', value: 'a\nb' }] }, 'change.flags.0.value', /line break/)
    assertOneProblem({ flags: [{ container: 'a', flag: '--x', value: 'a\u0000' }] }, 'change.flags.0.value', /control character/)
    assertOneProblem({ flags: [{ container: 'a', flag: '--x', value: 3 }] }, 'change.flags.0.value', /must be a string \(or null to remove the flag\)/)
    assertOneProblem({ flags: [{ container: 'a', flag: '--x', value: 'v'.repeat(16 * 1024 + 1) }] }, 'change.flags.0.value', /the limit is 16384/)
    const many = Array.from({ length: MAX_FLAG_CHANGES + 1 }, (_, i) => ({ container: 'a', flag: `--f${i}`, value: '1' }))
    assertOneProblem({ flags: many }, 'change.flags', /101 entries; the limit is 100/)
    assert.deepEqual(checkChange({ flags: [{ container: 'a', flag: '--x', value: '' }, { container: 'a', flag: '--y' }] }).flags, [
      { container: 'a', flag: '--x', value: '' },
      { container: 'a', flag: '--y', value: null },
    ])
  })

  it('refuses two entries for the same container image or the same flag', () => {
    assertOneProblem({ images: [{ container: 'a', tag: 'v1' }, { container: 'b', tag: 'v1' }, { container: 'a', image: 'x:2' }] }, 'change.images.2.container', /already changed by images\[0\]/)
    assertOneProblem(
      { flags: [{ container: 'a', flag: '--v', value: '1' }, { container: 'b', flag: '--v', value: '1' }, { container: 'a', flag: '--v' }] },
      'change.flags.2.flag',
      /Flag --v of container "a" is already changed by flags\[0\]/,
    )
  })

  it('reports every problem at once, each at its own field', () => {
    const problems = checkProblems({
      patch: '[]',
      images: [{ container: '', tag: 'v1' }, { container: 'a', tag: 'bad tag' }],
      flags: [{ container: 'a', flag: 'x' }],
    })
    assert.deepEqual(
      problems.map(([field]) => field),
      ['change.patch', 'change.images.0.container', 'change.images.1.tag', 'change.flags.0.flag'],
    )
  })
})

describe('readDocument (parse.ts)', () => {
  it('reads any top level, with the manifest bounds and strictness', () => {
    assert.deepEqual(readDocument('[1, 2]'), { ok: true, format: 'yaml', documentCount: 1, value: [1, 2] })
    assert.deepEqual(readDocument('{"a": 1}'), { ok: true, format: 'json', documentCount: 1, value: { a: 1 } })
    assert.deepEqual(readDocument('{a: 1}'), { ok: true, format: 'json', documentCount: 1, value: { a: 1 } })
    assert.equal((readDocument('a: 1\n---\nb: 2\n') as { documentCount: number }).documentCount, 2)
    assert.equal((readDocument('# nothing\n') as { documentCount: number }).documentCount, 0)
    assert.deepEqual(readDocument('a: 1\na: 2\n').ok, false)
    assert.deepEqual(readDocument('abc', 2), { ok: false, reason: 'The manifest is 3 bytes; the limit is 2 bytes (the kubelet refuses larger files).' })
    const read = readDocument('[1]')
    assert.ok(read.ok && Object.isFrozen(read.value))
  })
})

describe('applyChange: strategic merge patch (the default)', () => {
  // kubernetes.io, "Update API Objects in Place Using kubectl patch", on a Pod instead of a Deployment's template.
  const demo = () =>
    pod(`apiVersion: v1
kind: Pod
metadata:
  name: patch-demo
spec:
  containers:
  - name: patch-demo-ctr
    image: nginx
  tolerations:
  - effect: NoSchedule
    key: dedicated
    value: test-team
`)

  it('merges a container by name, as kubectl patch does: the new one first, as Kubernetes orders it', () => {
    const out = apply(demo(), { patch: 'spec:\n  containers:\n  - name: patch-demo-ctr-2\n    image: redis\n' })
    assert.deepEqual(out.spec.containers, [
      { name: 'patch-demo-ctr-2', image: 'redis' },
      { name: 'patch-demo-ctr', image: 'nginx' },
    ])
    // tolerations has no patch strategy: a patch of it replaces the list (the same page's second exercise).
    const replaced = apply(demo(), { patch: 'spec:\n  tolerations:\n  - effect: NoSchedule\n    key: disktype\n    value: ssd\n' })
    assert.deepEqual(replaced.spec.tolerations, [{ effect: 'NoSchedule', key: 'disktype', value: 'ssd' }])
  })

  it('merges a container that is there field by field, and adds an env var by name', () => {
    const out = apply(apiserverPod(), {
      patch: `spec:
  containers:
  - name: kube-apiserver
    env:
    - name: GOMEMLIMIT
      value: 2GiB
    resources:
      limits:
        memory: 4Gi
`,
    })
    const c = containerOf(out, 'kube-apiserver')
    assert.deepEqual(c.env, [{ name: 'GOMEMLIMIT', value: '2GiB' }])
    assert.deepEqual(c.resources, { requests: { cpu: '250m' }, limits: { memory: '4Gi' } })
    // Everything else of the container as it was, in its place; the new key at the end.
    const before = containerOf(apiserverPod(), 'kube-apiserver')
    assert.deepEqual(Object.keys(c), [...Object.keys(before), 'env'])
    assert.deepEqual(c.command, before.command)
    assert.deepEqual(c.volumeMounts, before.volumeMounts)
  })

  it('changes an env var in place and puts a new one before the others, as Go orders merged lists', () => {
    const base = pod(
      validPodYaml('web').replace('    image: nginx:1.27\n', '    image: nginx:1.27\n    env:\n    - name: A\n      value: "1"\n    - name: B\n      value: "2"\n'),
    )
    const out = apply(base, { patch: 'spec:\n  containers:\n  - name: app\n    env:\n    - name: B\n      value: "20"\n    - name: C\n      value: "3"\n' })
    assert.deepEqual(containerOf(out, 'app').env, [
      { name: 'A', value: '1' },
      { name: 'B', value: '20' },
      { name: 'C', value: '3' },
    ])
    const first = apply(base, { patch: 'spec:\n  containers:\n  - name: app\n    env:\n    - name: C\n      value: "3"\n' })
    assert.deepEqual(names(containerOf(first, 'app').env), ['C', 'A', 'B'])
  })

  it('deletes a volume by name with $patch: delete, and its mount by mountPath', () => {
    const out = apply(etcdPod(), {
      patch: `spec:
  volumes:
  - name: etcd-data
    $patch: delete
  containers:
  - name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      $patch: delete
`,
    })
    assert.deepEqual(names(out.spec.volumes), ['etcd-certs'])
    assert.deepEqual(containerOf(out, 'etcd').volumeMounts, [{ mountPath: '/etc/kubernetes/pki/etcd', name: 'etcd-certs' }])
    // Deleting what is not there changes nothing.
    const same = apply(etcdPod(), { patch: 'spec:\n  volumes:\n  - name: nope\n    $patch: delete\n' })
    assert.deepEqual(same, etcdPod())
  })

  it('replaces a volume source with $retainKeys, as kubectl apply sends it', () => {
    const out = apply(etcdPod(), {
      patch: `spec:
  volumes:
  - name: etcd-data
    emptyDir: {}
    $retainKeys: [emptyDir, name]
`,
    })
    assert.deepEqual(out.spec.volumes[1], { name: 'etcd-data', emptyDir: {} })
    const bad = { patch: 'spec:\n  volumes:\n  - name: etcd-data\n    emptyDir: {}\n    $retainKeys: [name]\n' }
    throwsServiceError(() => apply(etcdPod(), bad), 'VALIDATION_FAILED', ['change', 'patch', 'spec', 'volumes', '0', '$retainKeys'], /sets "emptyDir", which its \$retainKeys list does not keep/)
  })

  it('removes a field with null, and leaves a null with nothing to remove out', () => {
    const out = apply(apiserverPod(), {
      patch: 'metadata:\n  annotations: null\n  labels:\n    tier: null\n    nope: null\nspec:\n  priority: null\n',
    })
    assert.equal('annotations' in out.metadata, false)
    assert.deepEqual(out.metadata.labels, { component: 'kube-apiserver' })
    assert.equal('priority' in out.spec, false)
  })

  it('replaces a list without merge key whole (command, args, tolerations)', () => {
    const out = apply(apiserverPod(), { patch: 'spec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver, --v=2]\n' })
    assert.deepEqual(containerOf(out, 'kube-apiserver').command, ['kube-apiserver', '--v=2'])
  })

  it('$patch: replace replaces a list or a mapping whole', () => {
    const out = apply(etcdPod(), {
      patch: `spec:
  securityContext:
    $patch: replace
    runAsUser: 0
  containers:
  - name: etcd
    volumeMounts:
    - $patch: replace
    - mountPath: /data
      name: etcd-data
`,
    })
    assert.deepEqual(out.spec.securityContext, { runAsUser: 0 })
    assert.deepEqual(containerOf(out, 'etcd').volumeMounts, [{ mountPath: '/data', name: 'etcd-data' }])
  })

  it('$patch: delete on a mapping leaves it empty, as the Go code does', () => {
    const out = apply(etcdPod(), { patch: 'spec:\n  securityContext:\n    $patch: delete\n' })
    assert.deepEqual(out.spec.securityContext, {})
  })

  it('merges finalizers as a set and honours $deleteFromPrimitiveList', () => {
    const base = pod(validPodYaml('web').replace('  namespace: default\n', '  namespace: default\n  finalizers: [a.io/x, b.io/y]\n'))
    assert.deepEqual(apply(base, { patch: 'metadata:\n  finalizers: [c.io/z, a.io/x]\n' }).metadata.finalizers, ['c.io/z', 'a.io/x', 'b.io/y'])
    assert.deepEqual(apply(base, { patch: 'metadata:\n  $deleteFromPrimitiveList/finalizers: [a.io/x, nope]\n' }).metadata.finalizers, ['b.io/y'])
  })

  it('merges ports by containerPort and ownerReferences by uid', () => {
    const base = pod(validPodYaml('web').replace('    image: nginx:1.27\n', '    image: nginx:1.27\n    ports:\n    - containerPort: 80\n      name: http\n'))
    const out = apply(base, { patch: 'spec:\n  containers:\n  - name: app\n    ports:\n    - containerPort: 80\n      protocol: TCP\n    - containerPort: 443\n' })
    assert.deepEqual(containerOf(out, 'app').ports, [{ containerPort: 80, name: 'http', protocol: 'TCP' }, { containerPort: 443 }])
    const owned = apply(base, { patch: 'metadata:\n  ownerReferences:\n  - uid: u1\n    kind: Node\n' })
    assert.deepEqual(owned.metadata.ownerReferences, [{ uid: 'u1', kind: 'Node' }])
  })

  it('honours $setElementOrder', () => {
    const base = pod(validPodYaml('web', '  - name: side\n    image: busybox\n'))
    const out = apply(base, { patch: 'spec:\n  $setElementOrder/containers: [{name: side}, {name: app}]\n' })
    assert.deepEqual(names(out.spec.containers), ['side', 'app'])
  })

  it('adds a container, its fields settled as the typed decode leaves them: no directives, no nulls', () => {
    const out = apply(pod(validPodYaml()), {
      patch: `spec:
  containers:
  - name: side
    image: busybox
    args: null
    $setElementOrder/env: [{name: A}]
    env:
    - name: A
      value: "1"
    - name: B
      $patch: delete
`,
    })
    assert.deepEqual(out.spec.containers[0], { name: 'side', image: 'busybox', env: [{ name: 'A', value: '1' }, { name: 'B' }] })
  })

  it('merges a mapping it does not know key by key, and keeps the key order of what it does not touch', () => {
    const out = apply(apiserverPod(), { patch: 'spec:\n  dnsConfig:\n    options: [{name: ndots, value: "2"}]\n  securityContext:\n    runAsNonRoot: false\n' })
    assert.deepEqual(Object.keys(out.spec), [...Object.keys(apiserverPod().spec), 'dnsConfig'])
    assert.deepEqual(out.spec.securityContext, { seccompProfile: { type: 'RuntimeDefault' }, runAsNonRoot: false })
    assert.deepEqual(Object.keys(out), Object.keys(apiserverPod()))
  })

  it('names the place in the patch when it does not fit the pod', () => {
    throwsServiceError(
      () => apply(apiserverPod(), { patch: 'spec:\n  containers:\n  - image: nginx\n' }),
      'VALIDATION_FAILED',
      ['change', 'patch', 'spec', 'containers', '0'],
      /^The strategic merge patch cannot be applied to this manifest: The element has no name, the merge key of this list \(at spec\.containers\[0\] in the patch\)\.$/,
    )
    throwsServiceError(
      () => apply(apiserverPod(), { patch: 'spec:\n  volumes:\n  - $patch: delete\n' }),
      'VALIDATION_FAILED',
      ['change', 'patch', 'spec', 'volumes', '0'],
      /needs the element's name/,
    )
    const withPorts = pod(validPodYaml().replace('    image: nginx:1.27\n', '    image: nginx:1.27\n    ports: [{containerPort: 80}]\n'))
    throwsServiceError(
      () => apply(withPorts, { patch: 'spec:\n  containers:\n  - name: app\n    ports: [8080]\n' }),
      'VALIDATION_FAILED',
      ['change', 'patch', 'spec', 'containers', '0', 'ports'],
      /not all of one type \(map and number\)/,
    )
    throwsServiceError(
      () => apply(apiserverPod(), { patch: 'metadata:\n  $setElementOrder/finalizers: notalist\n' }),
      'VALIDATION_FAILED',
      ['change', 'patch', 'metadata', '$setElementOrder/finalizers'],
      /must be a list/,
    )
  })

  it('deletes the whole pod with $patch: delete at the top, which the validation then refuses', () => {
    const out = apply(apiserverPod(), { patch: '$patch: delete\n' })
    assert.deepEqual(out, {})
    assert.throws(() => validateStaticPod(out, { nodeName: 'cp-1' }), ValidationErrors)
  })
})

describe('applyChange: JSON merge patch', () => {
  it('replaces lists whole and removes fields with null (RFC 7386)', () => {
    const out = apply(apiserverPod(), {
      patchType: 'MERGE',
      patch: '{"metadata": {"annotations": null, "labels": {"extra": "yes"}}, "spec": {"containers": [{"name": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.31.4"}]}}',
    })
    assert.equal('annotations' in out.metadata, false)
    assert.deepEqual(out.metadata.labels, { component: 'kube-apiserver', tier: 'control-plane', extra: 'yes' })
    // The docs' warning: a merge patch's list replaces the whole list, command and all.
    assert.deepEqual(out.spec.containers, [{ name: 'kube-apiserver', image: 'registry.k8s.io/kube-apiserver:v1.31.4' }])
    assertPlainJson(out)
  })
})

describe('applyChange: JSON patch', () => {
  it('applies test and replace (the docs example: a container image)', () => {
    const out = apply(apiserverPod(), {
      patchType: 'JSON',
      patch: JSON.stringify([
        { op: 'test', path: '/spec/containers/0/name', value: 'kube-apiserver' },
        { op: 'replace', path: '/spec/containers/0/image', value: 'registry.k8s.io/kube-apiserver:v1.31.4' },
        { op: 'add', path: '/spec/containers/0/command/-', value: '--v=2' },
        { op: 'add', path: '/metadata/annotations/example.com~1owner', value: 'team-a' },
        { op: 'copy', from: '/metadata/labels/tier', path: '/metadata/labels/copied' },
        { op: 'move', from: '/metadata/labels/copied', path: '/metadata/labels/moved' },
      ]),
    })
    const c = containerOf(out, 'kube-apiserver')
    assert.equal(c.image, 'registry.k8s.io/kube-apiserver:v1.31.4')
    assert.equal(c.command.at(-1), '--v=2')
    assert.equal(out.metadata.annotations['example.com/owner'], 'team-a')
    assert.deepEqual(out.metadata.labels, { component: 'kube-apiserver', tier: 'control-plane', moved: 'control-plane' })
    assertPlainJson(out)
  })

  it('a failing test is CONFLICT at its operation, naming its path, and nothing is applied', () => {
    const input = apiserverPod()
    const change = checkChange({
      patchType: 'JSON',
      patch: JSON.stringify([
        { op: 'replace', path: '/spec/containers/0/image', value: 'evil:1' },
        { op: 'test', path: '/spec/containers/0/image', value: 'registry.k8s.io/kube-apiserver:v1.30.1' },
      ]),
    })
    const err = throwsServiceError(() => applyChange(input, change), 'CONFLICT', ['change', 'patch', '1'])
    assert.match(err.message, /"\/spec\/containers\/0\/image"/)
    assert.match(err.message, /Nothing was written/)
    assert.equal(err.statusCode, 412)
    assert.equal(containerOf(input, 'kube-apiserver').image, 'registry.k8s.io/kube-apiserver:v1.30.2')
  })

  it('an operation that does not fit the pod is VALIDATION_FAILED at its index', () => {
    const at = (ops: object[], index: string, message: RegExp) =>
      throwsServiceError(() => apply(apiserverPod(), { patchType: 'JSON', patch: JSON.stringify(ops) }), 'VALIDATION_FAILED', ['change', 'patch', index], message)
    at([{ op: 'remove', path: '/spec/nodeName' }], '0', /\(remove "\/spec\/nodeName"\) cannot be applied: the manifest has no value at "\/spec\/nodeName"/)
    at([{ op: 'test', path: '/kind', value: 'Pod' }, { op: 'replace', path: '/spec/nope/x', value: 1 }], '1', /has no value at/)
    at([{ op: 'add', path: '/spec/nope/x', value: 1 }], '0', /does not exist/)
    at([{ op: 'add', path: '/spec/containers/5', value: {} }], '0', /past the end of the list/)
    at([{ op: 'add', path: '/spec/containers/first', value: {} }], '0', /something other than an index/)
    at([{ op: 'copy', from: '/spec/nope', path: '/spec/x' }], '0', /no value at its from, "\/spec\/nope"/)
    at([{ op: 'add', path: '/__proto__/polluted', value: 1 }], '0', /__proto__/)
    // Keys Object.prototype has are not keys of the document.
    at([{ op: 'remove', path: '/metadata/labels/toString' }], '0', /has no value at "\/metadata\/labels\/toString"/)
    at([{ op: 'replace', path: '/metadata/constructor', value: 1 }], '0', /has no value/)
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined)
  })

  it('a test of a key Object.prototype has compares with the document, not the prototype', () => {
    const ops = [{ op: 'test', path: '/metadata/labels/constructor', value: 'x' }]
    throwsServiceError(() => apply(apiserverPod(), { patchType: 'JSON', patch: JSON.stringify(ops) }), 'CONFLICT', ['change', 'patch', '0'])
    const labelled = apply(apiserverPod(), { patchType: 'JSON', patch: JSON.stringify([{ op: 'add', path: '/metadata/labels/constructor', value: 'x' }, ...ops]) })
    assert.equal(labelled.metadata.labels.constructor, 'x')
    assert.deepEqual(
      apply(apiserverPod(), { patchType: 'JSON', patch: JSON.stringify([{ op: 'test', path: '/spec/securityContext', value: { seccompProfile: { type: 'RuntimeDefault' } } }]) }),
      apiserverPod(),
    )
  })

  it('refuses a patch that leaves no Pod', () => {
    throwsServiceError(
      () => apply(apiserverPod(), { patchType: 'JSON', patch: '[{"op": "replace", "path": "", "value": "gone"}]' }),
      'VALIDATION_FAILED',
      ['change', 'patch'],
      /leaves the string "gone" where the Pod was/,
    )
    assert.deepEqual(apply(apiserverPod(), { patchType: 'JSON', patch: '[{"op": "replace", "path": "", "value": {"kind": "Pod"}}]' }), { kind: 'Pod' })
  })
})

describe('applyChange: images', () => {
  const image = (p: Pod, name = 'kube-apiserver') => containerOf(p, name).image

  it('sets a full reference', () => {
    assert.equal(image(apply(apiserverPod(), { images: [{ container: 'kube-apiserver', image: 'registry.k8s.io/kube-apiserver:v1.31.4' }] })), 'registry.k8s.io/kube-apiserver:v1.31.4')
  })

  it('sets only the tag, keeping registry and repository', () => {
    assert.equal(image(apply(apiserverPod(), { images: [{ container: 'kube-apiserver', tag: 'v1.31.4' }] })), 'registry.k8s.io/kube-apiserver:v1.31.4')
    assert.equal(image(apply(etcdPod(), { images: [{ container: 'etcd', tag: '3.5.15-0' }] }), 'etcd'), 'registry.k8s.io/etcd:3.5.15-0')
  })

  it("keeps a registry's port, and adds a tag to an image without one", () => {
    const at = (from: string) => pod(validPodYaml().replace('image: nginx:1.27', `image: ${from}`))
    assert.equal(image(apply(at('localhost:5000/x:1'), { images: [{ container: 'app', tag: '2' }] }), 'app'), 'localhost:5000/x:2')
    assert.equal(image(apply(at('localhost:5000/x'), { images: [{ container: 'app', tag: '2' }] }), 'app'), 'localhost:5000/x:2')
    assert.equal(image(apply(at('nginx'), { images: [{ container: 'app', tag: '1.28' }] }), 'app'), 'nginx:1.28')
  })

  it('drops a digest with the old tag: the digest pins the old content', () => {
    const digest = `sha256:${'0123456789abcdef'.repeat(4)}`
    const at = (from: string) => pod(validPodYaml().replace('image: nginx:1.27', `image: ${from}`))
    assert.equal(image(apply(at(`registry.k8s.io/etcd:3.5.12-0@${digest}`), { images: [{ container: 'app', tag: '3.5.15-0' }] }), 'app'), 'registry.k8s.io/etcd:3.5.15-0')
    assert.equal(image(apply(at(`registry.k8s.io/etcd@${digest}`), { images: [{ container: 'app', tag: '3.5.15-0' }] }), 'app'), 'registry.k8s.io/etcd:3.5.15-0')
    // A full reference may pin a digest of its own.
    assert.equal(image(apply(at('nginx:1'), { images: [{ container: 'app', image: `nginx@${digest}` }] }), 'app'), `nginx@${digest}`)
  })

  it('finds init and ephemeral containers too', () => {
    const base = pod(validPodYaml('web', '  initContainers:\n  - name: init\n    image: busybox:1.36\n  ephemeralContainers:\n  - name: debug\n    image: busybox:1.36\n'))
    const out = apply(base, { images: [{ container: 'init', tag: '1.37' }, { container: 'debug', image: 'alpine:3' }] })
    assert.equal(out.spec.initContainers[0].image, 'busybox:1.37')
    assert.equal(out.spec.ephemeralContainers[0].image, 'alpine:3')
  })

  it('names the container that is not there and lists those there are', () => {
    const base = pod(validPodYaml('web', '  - name: side\n    image: busybox\n  initContainers:\n  - name: init\n    image: busybox\n'))
    throwsServiceError(
      () => apply(base, { images: [{ container: 'app', tag: 'v2' }, { container: 'kube-apiserver', tag: 'v1.31.4' }] }),
      'VALIDATION_FAILED',
      ['change', 'images', '1', 'container'],
      /^The pod has no container "kube-apiserver": it has containers "app", "side"; initContainers "init"\.$/,
    )
  })

  it('refuses a tag for a container without an image, or whose image a tag cannot go on', () => {
    const noImage = pod(validPodYaml().replace('    image: nginx:1.27\n', ''))
    throwsServiceError(() => apply(noImage, { images: [{ container: 'app', tag: '1' }] }), 'VALIDATION_FAILED', ['change', 'images', '0', 'tag'], /no image whose tag/)
    const odd = pod(validPodYaml().replace('image: nginx:1.27', 'image: Not/A/Reference'))
    throwsServiceError(() => apply(odd, { images: [{ container: 'app', tag: '1' }] }), 'VALIDATION_FAILED', ['change', 'images', '0', 'tag'], /"Not\/A\/Reference", which is not an image reference a tag can be put on/)
    assert.equal(image(apply(odd, { images: [{ container: 'app', image: 'nginx:1' }] }), 'app'), 'nginx:1')
  })
})

describe('applyChange: flags on kubeadm pods', () => {
  const command = (p: Pod, name = 'kube-apiserver'): string[] => containerOf(p, name).command
  const flag = (container: string, name: string, value: string | null = null) => ({ container, flag: name, value })

  it('replaces a flag where it stands', () => {
    const before = command(apiserverPod())
    const out = command(apply(apiserverPod(), { flags: [flag('kube-apiserver', '--secure-port', '7443')] }))
    const i = before.indexOf('--secure-port=6443')
    assert.ok(i > 0)
    assert.deepEqual(out, before.map((e, j) => (j === i ? '--secure-port=7443' : e)))
  })

  it("appends an absent flag to the command, where kubeadm's flags are", () => {
    const before = command(etcdPod(), 'etcd')
    const out = command(apply(etcdPod(), { flags: [flag('etcd', '--quota-backend-bytes', '8589934592')] }), 'etcd')
    assert.deepEqual(out, [...before, '--quota-backend-bytes=8589934592'])
    assert.equal(out[0], 'etcd')
  })

  it('removes a flag with value null; removing an absent one changes nothing', () => {
    const before = command(apiserverPod())
    const out = command(apply(apiserverPod(), { flags: [flag('kube-apiserver', '--enable-bootstrap-token-auth')] }))
    assert.deepEqual(out, before.filter((e) => e !== '--enable-bootstrap-token-auth=true'))
    assert.deepEqual(apply(apiserverPod(), { flags: [flag('kube-apiserver', '--nope')] }), apiserverPod())
  })

  it('does not take a flag for another that it prefixes', () => {
    const out = command(apply(apiserverPod(), { flags: [flag('kube-apiserver', '--etcd', 'x')] }))
    assert.ok(out.includes('--etcd-servers=https://127.0.0.1:2379'))
    assert.equal(out.at(-1), '--etcd=x')
  })

  it('applies several flags in order, and then the validation still passes', () => {
    const out = apply(apiserverPod(), {
      images: [{ container: 'kube-apiserver', tag: 'v1.31.4' }],
      flags: [flag('kube-apiserver', '--audit-log-maxage', '30'), flag('kube-apiserver', '--secure-port', '7443'), flag('kube-apiserver', '--allow-privileged')],
    })
    const c = command(out)
    assert.equal(c.at(-1), '--audit-log-maxage=30')
    assert.ok(c.includes('--secure-port=7443'))
    assert.ok(!c.some((e) => e.startsWith('--allow-privileged')))
    assert.equal(validateStaticPod(out, { nodeName: 'cp-1' }).name, 'kube-apiserver')
  })

  it('names the container that is not there', () => {
    throwsServiceError(() => apply(etcdPod(), { flags: [flag('kube-apiserver', '--v', '2')] }), 'VALIDATION_FAILED', ['change', 'flags', '0', 'container'], /no container "kube-apiserver": it has containers "etcd"/)
  })

  it('refuses to set a flag given twice, and removes every one', () => {
    const twice = pod(validPodYaml().replace('    image: nginx:1.27\n', '    image: nginx:1.27\n    command: [app, --v=1, --x, --v, "3"]\n'))
    throwsServiceError(() => apply(twice, { flags: [flag('app', '--v', '2')] }), 'VALIDATION_FAILED', ['change', 'flags', '0', 'flag'], /--v is given 2 times in container "app" \(command\[1\], command\[3\]\)/)
    assert.deepEqual(containerOf(apply(twice, { flags: [flag('app', '--v')] }), 'app').command, ['app', '--x'])
  })
})

describe('applyChange: the order of the parts', () => {
  it('applies the patch, then images, then flags: a container the patch adds can be changed by the others', () => {
    const out = apply(pod(validPodYaml()), {
      patch: 'spec:\n  containers:\n  - name: side\n    image: registry.example.com/side:1\n    command: [side]\n',
      images: [{ container: 'side', tag: '2' }],
      flags: [{ container: 'side', flag: '--port', value: '8080' }],
    })
    assert.deepEqual(containerOf(out, 'side'), { name: 'side', image: 'registry.example.com/side:2', command: ['side', '--port=8080'] })
  })

  it('a flag change sees the command the patch wrote', () => {
    const out = apply(apiserverPod(), {
      patch: 'spec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver, --v=1]\n',
      flags: [{ container: 'kube-apiserver', flag: '--v', value: '4' }],
    })
    assert.deepEqual(containerOf(out, 'kube-apiserver').command, ['kube-apiserver', '--v=4'])
  })
})

describe('applyChange: the input', () => {
  it('is never changed, and the result shares nothing with it', () => {
    const input = deepFreeze(JSON.parse(JSON.stringify(apiserverPod())) as Pod)
    const changes: ManifestChange[] = [
      { patch: 'spec:\n  containers:\n  - name: kube-apiserver\n    env: [{name: A, value: "1"}]\n  volumes:\n  - name: k8s-certs\n    $patch: delete\n' },
      { patchType: 'MERGE', patch: '{"metadata": {"labels": {"a": "b"}}, "spec": {"hostNetwork": false}}' },
      { patchType: 'JSON', patch: '[{"op": "add", "path": "/spec/containers/0/command/-", "value": "--v=2"}, {"op": "remove", "path": "/spec/volumes/0"}]' },
      { images: [{ container: 'kube-apiserver', tag: 'v1.31.4' }], flags: [{ container: 'kube-apiserver', flag: '--secure-port', value: '7443' }, { container: 'kube-apiserver', flag: '--new', value: 'x' }] },
    ]
    for (const change of changes) {
      const out = apply(input, change)
      assert.notDeepEqual(out, input)
      assertPlainJson(out)
    }
    assert.deepEqual(input, apiserverPod())
  })

  it('a checked change can be applied to many pods, each its own node', () => {
    const change = checkChange({ images: [{ container: 'kube-apiserver', tag: 'v1.31.4' }], patch: 'metadata:\n  labels:\n    rolled: "yes"\n' })
    const other = pod(kubeApiserverYaml.replaceAll('192.168.56.10', '192.168.56.11'))
    const a = applyChange(apiserverPod(), change) as Pod
    const b = applyChange(other, change) as Pod
    assert.equal(containerOf(a, 'kube-apiserver').image, containerOf(b, 'kube-apiserver').image)
    assert.ok(containerOf(b, 'kube-apiserver').command.includes('--advertise-address=192.168.56.11'))
    assert.equal(b.metadata.labels.rolled, 'yes')
    assert.deepEqual(change.patch, { type: 'STRATEGIC', value: { metadata: { labels: { rolled: 'yes' } } } })
  })

  it('refuses a manifest holding a value JSON cannot', () => {
    const odd = deepFreeze({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x', labels: new Map() }, spec: {} })
    throwsServiceError(() => apply(odd, { images: [{ container: 'a', tag: '1' }] }), 'VALIDATION_FAILED', ['change'], /at metadata\.labels: a YAML ordered map/)
  })
})

describe('changeHash', () => {
  it('is the SHA-256 of the change as given, whatever its key order', () => {
    const a = changeHash({ patch: 'x: 1', images: [{ container: 'c', tag: 'v1' }] })
    const b = changeHash({ images: [{ tag: 'v1', container: 'c' }], patch: 'x: 1' })
    assert.match(a, /^[0-9a-f]{64}$/)
    assert.equal(a, b)
    assert.equal(changeHash({ patch: 'x: 1', flags: undefined }), changeHash({ patch: 'x: 1' }))
    assert.notEqual(changeHash({ patch: 'x: 1' }), changeHash({ patch: 'x: 2' }))
    assert.notEqual(changeHash({ patch: 'x: 1' }), changeHash({ patch: 'x: 1', patchType: 'MERGE' }))
    assert.notEqual(changeHash({ images: [{ container: 'a', tag: '1' }, { container: 'b', tag: '1' }] }), changeHash({ images: [{ container: 'b', tag: '1' }, { container: 'a', tag: '1' }] }))
    assert.equal(changeHash({}), '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a')
  })
})

describe('isEtcdPod', () => {
  const labelled = (labels: string) => pod(validPodYaml().replace('  namespace: default\n', `  namespace: default\n  labels: {${labels}}\n`))

  it('knows kubeadm pods', () => {
    assert.equal(isEtcdPod(etcdPod()), true)
    assert.equal(isEtcdPod(apiserverPod()), false)
  })

  it('reads labels, and a container named etcd', () => {
    assert.equal(isEtcdPod(pod(validPodYaml())), false)
    assert.equal(isEtcdPod(labelled('component: etcd')), true)
    assert.equal(isEtcdPod(pod(validPodYaml('db').replace('name: app', 'name: etcd'))), true)
    assert.equal(isEtcdPod({}), false)
  })
})
