// Large and adversarial manifests: the duplicate-key check is linear, the
// structure of a manifest is bounded (MAX_MANIFEST_TOKENS), JSON takes
// JSON.parse and gives what the yaml lib gives, and parses of large texts are
// kept by a cache bounded by what it holds.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseAllDocuments, parse as yamlParse } from 'yaml'
import type { ServiceError } from '../../src/errors.ts'
import { ValidationErrors } from '../../src/errors.ts'
import {
  MAX_MANIFEST_TOKENS,
  PARSE_CACHE_MAX_BYTES,
  parseManifest,
  readLikeKubelet,
  scanJson,
} from '../../src/manifest/parse.ts'
import { RecentValues } from '../../src/recent-values.ts'

function problem(input: string | Uint8Array): ServiceError {
  try {
    parseManifest(input)
  } catch (err) {
    assert.ok(err instanceof ValidationErrors, `expected ValidationErrors, got ${String(err)}`)
    return err.problems[0]!
  }
  assert.fail('parsed without error')
}

/** What the yaml lib's own uniqueKeys check says first about a text (the behaviour this one must keep). */
function yamlLibFirstError(text: string): string | undefined {
  const doc = (parseAllDocuments(text, { uniqueKeys: true, merge: true, prettyErrors: true, logLevel: 'error' }) as unknown as Array<{ errors: Array<{ code: string; message: string }> }>)[0]
  const first = doc?.errors[0]
  return first && `${first.code}: ${first.message.split('\n', 1)[0]!.replace(/:$/, '')}`
}

/** A Pod with `labels` labels; `tag` makes each text new (the cache would answer a repeated one). */
function manyLabels(labels: number, tag: string, duplicate = false): string {
  const lines = [`# ${tag}`, 'apiVersion: v1', 'kind: Pod', 'metadata:', '  name: many', '  namespace: default', '  labels:']
  for (let i = 0; i < labels; i++) lines.push(`    label-${i}: v${i}`)
  if (duplicate) lines.push('    label-0: again')
  lines.push('spec:', '  containers:', '  - name: app', '    image: nginx:1.27', '')
  return lines.join('\n')
}

/** A valid Pod with one annotation of `bytes` characters (single-quoted: a few tokens, quick to parse). */
function annotatedPod(name: string, bytes: number): string {
  return `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  annotations:\n    blob: '${'x'.repeat(bytes)}'\nspec:\n  containers:\n  - name: app\n    image: nginx:1.27\n`
}

function timed(run: () => void): number {
  const started = performance.now()
  run()
  return performance.now() - started
}

describe('duplicate keys: one pass, same answers as the yaml lib', () => {
  it('100,000 keys: 5 times the keys take well under 8 times as long (the quadratic check took 25 times)', () => {
    const parse = (labels: number, tag: string) => () => parseManifest(manyLabels(labels, tag))
    const refuse = (labels: number, tag: string) => () => assert.match(problem(manyLabels(labels, tag, true)).message, /^Duplicate key/)
    // The least of two runs each, so that a pause of a loaded machine weighs less.
    const small = Math.min(timed(parse(20_000, 'a')), timed(parse(20_000, 'b')), timed(refuse(20_000, 'c')))
    const large = Math.min(timed(parse(100_000, 'a')), timed(parse(100_000, 'b')), timed(refuse(100_000, 'c')))
    assert.ok(large / small < 8, `20,000 keys: ${small.toFixed(0)} ms, 100,000 keys: ${large.toFixed(0)} ms (ratio ${(large / small).toFixed(1)})`)
  })

  it('the 100,000-label manifest with one repeated label is refused, naming its line and column', () => {
    const text = manyLabels(100_000, 'dup', true)
    assert.equal(problem(text).message, 'Duplicate key: Map keys must be unique at line 100008, column 5.')
    assert.deepEqual(problem(text).field, ['manifest'])
  })

  const deep = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: nginx
    env:
    - name: A
      value: "1"
      name: B
`
  const samples: Array<[string, string]> = [
    ['a duplicate deep in a list of mappings', deep],
    ['two, the first reported with a count of the rest', `${deep}  a: 1\n  a: 2\n`],
    ['after an empty value (where the yaml lib puts it)', 'a:\n  b:\n  b:\n'],
    ['after an empty value and a blank line', 'a:\n  b:\n\n  b: 1\n'],
    ['a flow mapping in a block one', 'x:\n  y: {a: 1, b: {c: 1, c: 2}, a: 3}\n'],
    ['keys of different spellings, the same value', 'x:\n  "a": 1\n  \'a\': 2\n  ? a\n  : 3\n'],
    ['JSON, nested: the inner one first, as the yaml lib reads a value before its key is checked', '{"a": {"b": 1,\n "b": 2}, "c": [{"d": 1, "d": 2}],\n "a": 0}'],
    ['JSON, escaped spellings of one key', '{"spec": {"\\u0061": 1, "a": 2}}'],
    ['JSON, CRLF lines', '{\r\n"kind": "Pod",\r\n  "kind": "Pod"\r\n}'],
    ['a repeated key and a syntax error', 'a: 1\na: 2\nb: [\n'],
  ]
  for (const [label, text] of samples) {
    it(`${label}: the yaml lib's message, line and column`, () => {
      const expected = yamlLibFirstError(text)
      assert.ok(expected, 'the sample has an error')
      const message = problem(text).message
      const [code, detail] = [expected.slice(0, expected.indexOf(':')), expected.slice(expected.indexOf(':') + 2)]
      assert.ok(message.startsWith(code === 'DUPLICATE_KEY' ? `Duplicate key: ${detail}.` : `YAML syntax error: ${detail}.`), `${message} vs ${expected}`)
      const more = message.match(/\(and (\d+) more errors?\)/)?.[1]
      const all = (parseAllDocuments(text, { uniqueKeys: true, merge: true, logLevel: 'error' }) as unknown as Array<{ errors: unknown[] }>)[0]!.errors.length
      assert.equal(Number(more ?? 0), all - 1)
    })
  }

  it('merge keys are not duplicates, of each other or of a quoted "<<", and do not clash with the keys they merge in', () => {
    const texts = [
      'x-base: &base {app: web}\nmetadata:\n  labels:\n    <<: *base\n    <<: {tier: a}\n    app: front\n',
      'x:\n  <<: {a: 1}\n  "<<": 2\n',
    ]
    for (const text of texts) {
      assert.equal(yamlLibFirstError(text), undefined, 'the yaml lib accepts it')
      parseManifest(text)
    }
    const labels = (parseManifest(texts[0]!).object['metadata'] as { labels: unknown }).labels
    assert.deepEqual(labels, { app: 'front', tier: 'a' })
  })

  it('the kubelet reader lets a later duplicate win, YAML or JSON', () => {
    for (const text of ['kind: Pod\nkind: Other\n', '{"kind": "Pod", "kind": "Other"}']) {
      const read = readLikeKubelet(Buffer.from(text))
      assert.ok(read.ok)
      assert.deepEqual(read.value, { kind: 'Other' })
    }
  })

  it('!!omap duplicates are found in one pass too (the yaml lib compares each with all earlier ones)', () => {
    const entries = (n: number, tag: string) => `# ${tag}\nx: !!omap\n${Array.from({ length: n }, (_, i) => `- k${i}: ${i}\n`).join('')}`
    assert.match(problem(`x: !!omap\n- a: 1\n- a: 2\n`).message, /Ordered maps must not include duplicate keys: a/)
    const small = Math.min(timed(() => parseManifest(entries(8_000, 'a'))), timed(() => parseManifest(entries(8_000, 'b'))))
    const large = Math.min(timed(() => parseManifest(entries(40_000, 'a'))), timed(() => parseManifest(entries(40_000, 'b'))))
    assert.ok(large / small < 8, `8,000 entries: ${small.toFixed(0)} ms, 40,000: ${large.toFixed(0)} ms`)
  })
})

describe('structure is bounded: MAX_MANIFEST_TOKENS', () => {
  it('refuses a YAML or JSON text with more tokens, whatever its size in bytes', () => {
    const n = MAX_MANIFEST_TOKENS
    for (const text of [`x: [${'a,'.repeat(n / 2)}a]\n`, `x:\n${'- a\n'.repeat(n / 2 + 1)}`, `{"x": [${'0,'.repeat(n)}0]}`, `{"x": [${'{},'.repeat(n / 3)}{}]}`]) {
      const err = problem(text)
      assert.match(err.message, new RegExp(`more than ${n} (YAML|JSON) tokens`))
      assert.deepEqual(err.field, ['manifest'])
      const read = readLikeKubelet(Buffer.from(text))
      assert.ok(!read.ok && /tokens/.test(read.reason))
    }
  })

  it('accepts a large manifest of few tokens (a 9 MB annotation)', () => {
    const parsed = parseManifest(annotatedPod('blob', 9_000_000))
    assert.equal((parsed.object['metadata'] as { annotations: { blob: string } }).annotations.blob.length, 9_000_000)
  })
})

describe('long double-quoted strings', () => {
  it('read as the yaml lib reads them, with and without escapes, as keys and values, block and flow', () => {
    for (const body of ['x', ' lead, trail: # ', 'tab\there', 'é😀', 'a"b'.replace('"', '\\"'), "it's", 'line\\nbreak', '{[,]}&*!|>']) {
      const q = `"${body.repeat(Math.ceil(400 / body.length))}"`
      for (const text of [`a: ${q}\n`, `${q}: 1\n`, `x: [${q}, {${q}: ${q}}]\n`, `- &a ${q}\n- *a\n`.replace(/^/, 'x:\n')]) {
        assert.deepStrictEqual(parseManifest(text).object, yamlParse(text, { merge: true }), text.slice(0, 60))
      }
    }
  })

  it('a 9 MB one takes a few times what a single-quoted one does, not the yaml lib\'s 30 times', () => {
    const quoted = (q: string, tag: string) => `# ${tag}\na: ${q}${'x'.repeat(9_000_000)}${q}\n`
    const single = Math.min(timed(() => parseManifest(quoted("'", 'a'))), timed(() => parseManifest(quoted("'", 'b'))))
    const double = Math.min(timed(() => parseManifest(quoted('"', 'a'))), timed(() => parseManifest(quoted('"', 'b'))))
    assert.ok(double / single < 5, `single-quoted ${single.toFixed(0)} ms, double-quoted ${double.toFixed(0)} ms`)
  })
})

describe('JSON through JSON.parse: what the yaml lib would make of it', () => {
  const texts = [
    '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "a", "image": "b"}]}}',
    '{"n": [0, -0, 1.5, 1e3, 1E-7, 12345678901234567890, 1e400, -1e400], "s": ["\\u00e9\\ud83d\\ude00", "\\"\\\\\\/\\b\\f\\n\\r\\t", ""], "o": {}, "l": [], "z": null, "t": true, "f": false}',
    '{"__proto__": {"x": 1}, "1": "one", "": "empty"}',
    '\n\t {"nested": [[[{"a": [{}]}]]]}\n',
  ]
  for (const text of texts) {
    it(`same object: ${text.slice(0, 40)}`, () => {
      const parsed = parseManifest(text)
      assert.equal(parsed.format, 'json')
      assert.deepStrictEqual(parsed.object, yamlParse(text, { merge: true }))
    })
  }

  it('invalid JSON keeps its messages (the YAML parse words them)', () => {
    assert.match(problem('{"a": 1, "a": 2').message, /^Duplicate key: Map keys must be unique at line 1, column 10\./)
    assert.match(problem('{"a": 1}\n# trailing comment\n').message, /reads it as JSON, but it is not valid JSON/)
  })

  it('scanJson: keys by decoded value, per object, and the tokens', () => {
    assert.deepEqual(scanJson('{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}')?.duplicates, [])
    assert.deepEqual(scanJson('{"a\\"b": 1, "a\\u0022b": 2, "x": "\\\\", "x": 0}')?.duplicates, [12, 38])
    assert.equal(scanJson('{"a": [1, 2]}')?.tokens, 7)
  })
})

describe('parses are kept by text, bounded by what they hold', () => {
  it('a large manifest parsed twice gives the same frozen object; past the bound the oldest is parsed again', () => {
    const big = (name: string) => annotatedPod(name, 9 * 1024 * 1024)
    const first = big('first')
    assert.ok(Buffer.byteLength(first) > 256 * 1024)
    const a = parseManifest(first).object
    assert.equal(parseManifest(first).object, a)
    assert.equal(parseManifest(Buffer.from(first)).object, a, 'the same text from bytes')
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a['metadata']))
    // Three more of 9 MiB: more than PARSE_CACHE_MAX_BYTES together, so the first goes.
    assert.ok(4 * 9 * 1024 * 1024 > PARSE_CACHE_MAX_BYTES)
    const later = ['second', 'third', 'fourth'].map((name) => parseManifest(big(name)).object)
    assert.equal(parseManifest(big('fourth')).object, later[2], 'the newest is kept')
    const again = parseManifest(first).object
    assert.notEqual(again, a, 'the oldest was dropped and parsed again')
    assert.deepEqual(again, a)
  })

  it('RecentValues: weights bound the total; a value heavier than the bound is not kept; count bound as before', () => {
    const values = new RecentValues<string, number>(3, 100)
    values.set('a', 1, 40)
    values.set('b', 2, 40)
    values.get('a') // b is now the least recently used
    values.set('c', 3, 40)
    assert.equal(values.get('b'), undefined)
    assert.equal(values.get('a'), 1)
    assert.equal(values.weight, 80)
    values.set('huge', 4, 101)
    assert.equal(values.get('huge'), undefined)
    assert.equal(values.weight, 80)
    values.set('a', 5, 10) // replacing an entry replaces its weight
    assert.equal(values.weight, 50)
    const counted = new RecentValues<string, number>(2)
    counted.set('x', 1)
    counted.set('y', 2)
    counted.set('z', 3)
    assert.deepEqual([counted.get('x'), counted.size], [undefined, 2])
  })
})
