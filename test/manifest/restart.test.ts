import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ServiceError, ValidationErrors } from '../../src/errors.ts'
import { parseManifest } from '../../src/manifest/parse.ts'
import { RESTART_ANNOTATION, setRestartAnnotation } from '../../src/manifest/restart.ts'
import { kubeApiserverYaml } from './fixtures.ts'

const TS = '2024-05-01T12:00:00.000Z'
const TS2 = '2024-05-02T08:30:00.000Z'

/** The lines that differ: what the edit removed and what it added (common head and tail trimmed). */
function lineDiff(before: string, after: string): { removed: string[]; added: string[] } {
  const a = before.split('\n')
  const b = after.split('\n')
  let head = 0
  while (head < a.length && head < b.length && a[head] === b[head]) head++
  let tail = 0
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++
  return { removed: a.slice(head, a.length - tail), added: b.slice(head, b.length - tail) }
}

function annotationsOf(text: string): Record<string, unknown> {
  const metadata = parseManifest(text).object['metadata'] as Record<string, unknown>
  return metadata['annotations'] as Record<string, unknown>
}

const withoutAnnotations = kubeApiserverYaml.replace(
  '  annotations:\n    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 192.168.56.10:6443\n',
  '',
)

describe('setRestartAnnotation: kubeadm YAML', () => {
  it('appends to existing annotations, at their indentation', () => {
    const out = setRestartAnnotation(kubeApiserverYaml, TS)
    assert.equal(
      out,
      kubeApiserverYaml.replace(
        '6443\n  creationTimestamp: null\n',
        `6443\n    ${RESTART_ANNOTATION}: "${TS}"\n  creationTimestamp: null\n`,
      ),
    )
    assert.deepEqual(lineDiff(kubeApiserverYaml, out), { removed: [], added: [`    ${RESTART_ANNOTATION}: "${TS}"`] })
  })

  it('adds an annotations block at the end of metadata when there is none', () => {
    assert.ok(!withoutAnnotations.includes('annotations'))
    const out = setRestartAnnotation(withoutAnnotations, TS)
    assert.equal(
      out,
      withoutAnnotations.replace(
        '  namespace: kube-system\nspec:\n',
        `  namespace: kube-system\n  annotations:\n    ${RESTART_ANNOTATION}: "${TS}"\nspec:\n`,
      ),
    )
    // The non-indented sequences kubeadm writes are untouched.
    assert.ok(out.includes('spec:\n  containers:\n  - command:\n    - kube-apiserver\n'))
  })

  it('fills `annotations: {}` and an empty `annotations:`', () => {
    const flow = withoutAnnotations.replace('  creationTimestamp: null\n', '  annotations: {}\n  creationTimestamp: null\n')
    assert.deepEqual(lineDiff(flow, setRestartAnnotation(flow, TS)), {
      removed: ['  annotations: {}'],
      added: [`  annotations: {"${RESTART_ANNOTATION}": "${TS}"}`],
    })
    const empty = withoutAnnotations.replace('  creationTimestamp: null\n', '  annotations:\n  creationTimestamp: null\n')
    assert.deepEqual(lineDiff(empty, setRestartAnnotation(empty, TS)), {
      removed: ['  annotations:'],
      added: [`  annotations: {"${RESTART_ANNOTATION}": "${TS}"}`],
    })
    const explicitNull = withoutAnnotations.replace('  creationTimestamp: null\n', '  annotations: null # none yet\n  creationTimestamp: null\n')
    assert.deepEqual(lineDiff(explicitNull, setRestartAnnotation(explicitNull, TS)), {
      removed: ['  annotations: null # none yet'],
      added: [`  annotations: {"${RESTART_ANNOTATION}": "${TS}"} # none yet`],
    })
  })

  it('replaces only the value of an existing restartedAt, whatever its quoting', () => {
    for (const old of [`"${TS}"`, `'${TS}'`, TS, `"${TS}"   # last restart`]) {
      const text = kubeApiserverYaml.replace(
        '  annotations:\n',
        `  annotations:\n    ${RESTART_ANNOTATION}: ${old}\n`,
      )
      const out = setRestartAnnotation(text, TS2)
      assert.deepEqual(lineDiff(text, out), {
        removed: [`    ${RESTART_ANNOTATION}: ${old}`],
        added: [`    ${RESTART_ANNOTATION}: ${old.replace(/["']?2024-05-01T12:00:00.000Z["']?/, `"${TS2}"`)}`],
      })
      assert.equal(annotationsOf(out)[RESTART_ANNOTATION], TS2)
    }
  })

  it('restarting twice changes only that value again', () => {
    const once = setRestartAnnotation(withoutAnnotations, TS)
    const twice = setRestartAnnotation(once, TS2)
    assert.deepEqual(lineDiff(once, twice), { removed: [`    ${RESTART_ANNOTATION}: "${TS}"`], added: [`    ${RESTART_ANNOTATION}: "${TS2}"`] })
  })

  it('keeps comments where they are', () => {
    const commented = `# Managed by hand: see runbook 12
apiVersion: v1
kind: Pod
metadata:
  # kubeadm writes these
  annotations:
    team: platform   # who to call
    # the last one
    note: "keep"  # trailing
  name: api   # the name
  # about the namespace
  namespace: kube-system
# the spec
spec:
  containers:
  # the only container
  - name: api
    image: registry.k8s.io/kube-apiserver:v1.30.2 # pinned
`
    const out = setRestartAnnotation(commented, TS)
    assert.deepEqual(lineDiff(commented, out), { removed: [], added: [`    ${RESTART_ANNOTATION}: "${TS}"`] })
    assert.ok(out.includes(`    note: "keep"  # trailing\n    ${RESTART_ANNOTATION}: "${TS}"\n  name: api   # the name\n`))

    const noAnnotations = commented.replace(/ {2}annotations:\n(.*\n){3}/, '')
    const out2 = setRestartAnnotation(noAnnotations, TS)
    assert.deepEqual(lineDiff(noAnnotations, out2), { removed: [], added: ['  annotations:', `    ${RESTART_ANNOTATION}: "${TS}"`] })
    assert.ok(out2.includes(`  namespace: kube-system\n  annotations:\n    ${RESTART_ANNOTATION}: "${TS}"\n# the spec\n`))
  })

  it('follows the file\'s indentation', () => {
    const fourSpaces = 'apiVersion: v1\nkind: Pod\nmetadata:\n    name: web\nspec:\n    containers:\n        -   name: app\n            image: nginx\n'
    assert.deepEqual(lineDiff(fourSpaces, setRestartAnnotation(fourSpaces, TS)).added, ['    annotations:', `        ${RESTART_ANNOTATION}: "${TS}"`])
    const annotated = fourSpaces.replace('    name: web\n', '    annotations:\n          a: b\n    name: web\n')
    assert.deepEqual(lineDiff(annotated, setRestartAnnotation(annotated, TS)).added, [`          ${RESTART_ANNOTATION}: "${TS}"`])
  })

  it('appends after a block scalar annotation without changing it', () => {
    for (const indicator of ['|', '|-', '|+', '>']) {
      const text = `apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    description: ${indicator}\n      line one\n      line two\n\n  name: web\nspec:\n  containers:\n  - name: app\n    image: nginx\n`
      const out = setRestartAnnotation(text, TS)
      assert.deepEqual(lineDiff(text, out).removed, [])
      assert.equal(annotationsOf(out)['description'], annotationsOf(text)['description'])
    }
  })

  it('keeps CRLF line endings', () => {
    const crlf = kubeApiserverYaml.replace(/\n/g, '\r\n')
    const out = setRestartAnnotation(crlf, TS)
    assert.equal(out, crlf.replace('6443\r\n', `6443\r\n    ${RESTART_ANNOTATION}: "${TS}"\r\n`))
    const crlfBare = withoutAnnotations.replace(/\n/g, '\r\n')
    assert.equal(
      setRestartAnnotation(crlfBare, TS),
      crlfBare.replace('  namespace: kube-system\r\n', `  namespace: kube-system\r\n  annotations:\r\n    ${RESTART_ANNOTATION}: "${TS}"\r\n`),
    )
  })

  it('handles a file without a trailing newline', () => {
    const text = 'apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: app\n    image: nginx\nmetadata:\n  name: web'
    assert.equal(setRestartAnnotation(text, TS), `${text}\n  annotations:\n    ${RESTART_ANNOTATION}: "${TS}"`)
    const annotated = `${text}\n  annotations:\n    a: b # c`
    assert.equal(setRestartAnnotation(annotated, TS), `${annotated}\n    ${RESTART_ANNOTATION}: "${TS}"`)
  })

  it('keeps a leading document marker and a BOM', () => {
    const text = `\ufeff---\n${withoutAnnotations}`
    const out = setRestartAnnotation(text, TS)
    assert.ok(out.startsWith('\ufeff---\napiVersion: v1\n'))
    assert.deepEqual(lineDiff(text, out).removed, [])
  })

  it('quotes the value as a JSON string', () => {
    const out = setRestartAnnotation(withoutAnnotations, 'a "b" \\ c: #d')
    assert.ok(out.includes(`    ${RESTART_ANNOTATION}: "a \\"b\\" \\\\ c: #d"\n`))
    assert.equal(annotationsOf(out)[RESTART_ANNOTATION], 'a "b" \\ c: #d')
  })
})

describe('setRestartAnnotation: JSON', () => {
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'default' }, spec: { containers: [{ name: 'app', image: 'nginx' }] } }

  it('pretty-printed, without annotations: a new line in the same style', () => {
    const text = `${JSON.stringify(pod, null, 2)}\n`
    const out = setRestartAnnotation(text, TS)
    assert.equal(out, text.replace('"namespace": "default"\n', `"namespace": "default",\n    "annotations": {"${RESTART_ANNOTATION}": "${TS}"}\n`))
    assert.deepEqual(JSON.parse(out).metadata.annotations, { [RESTART_ANNOTATION]: TS })
  })

  it('pretty-printed, with annotations', () => {
    const text = JSON.stringify({ ...pod, metadata: { ...pod.metadata, annotations: { a: 'b' } } }, null, 4)
    const out = setRestartAnnotation(text, TS)
    assert.equal(out, text.replace('"a": "b"\n', `"a": "b",\n            "${RESTART_ANNOTATION}": "${TS}"\n`))
    JSON.parse(out)
  })

  it('one line: inserted before the closing brace', () => {
    const text = JSON.stringify(pod)
    const out = setRestartAnnotation(text, TS)
    assert.equal(out, text.replace('"namespace":"default"}', `"namespace":"default", "annotations": {"${RESTART_ANNOTATION}": "${TS}"}}`))
    JSON.parse(out)

    const empty = JSON.stringify({ ...pod, metadata: { ...pod.metadata, annotations: {} } })
    assert.equal(setRestartAnnotation(empty, TS), empty.replace('"annotations":{}', `"annotations":{"${RESTART_ANNOTATION}": "${TS}"}`))

    const existing = JSON.stringify({ ...pod, metadata: { ...pod.metadata, annotations: { [RESTART_ANNOTATION]: TS, x: 'y' } } })
    assert.equal(setRestartAnnotation(existing, TS2), existing.replace(TS, TS2))
  })
})

describe('setRestartAnnotation: refusals', () => {
  it('refuses an invalid manifest as parseManifest does', () => {
    assert.throws(() => setRestartAnnotation('a: [', TS), ValidationErrors)
  })

  it('refuses a manifest without metadata mapping, or with non-mapping annotations', () => {
    assert.throws(
      () => setRestartAnnotation('apiVersion: v1\nkind: Pod\n', TS),
      (err: unknown) => err instanceof ServiceError && err.code === 'VALIDATION_FAILED' && err.field?.join('.') === 'manifest.metadata',
    )
    assert.throws(
      () => setRestartAnnotation('metadata:\n  annotations: [a]\n', TS),
      (err: unknown) => err instanceof ServiceError && err.field?.join('.') === 'manifest.metadata.annotations',
    )
  })

  it('refuses (WRITE_FAILED) rather than write an edit that changes anything else', () => {
    // metadata that comes from a merge key is not where the text edit can put it.
    const merged = 'x-meta: &m {name: web}\nmetadata:\n  <<: *m\n  annotations: &a {}\nother: *a\n'
    assert.throws(
      () => setRestartAnnotation(merged, TS),
      (err: unknown) => err instanceof ServiceError && err.code === 'WRITE_FAILED',
    )
  })
})
