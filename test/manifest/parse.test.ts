import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ServiceError } from '../../src/errors.ts'
import { ValidationErrors } from '../../src/errors.ts'
import { MAX_MANIFEST_BYTES, parseManifest } from '../../src/manifest/parse.ts'
import { kubeApiserverYaml, validPodYaml } from './fixtures.ts'

/** The single problem parseManifest reports for input. */
function problem(input: string | Uint8Array, opts?: Parameters<typeof parseManifest>[1]): ServiceError {
  try {
    parseManifest(input, opts)
  } catch (err) {
    assert.ok(err instanceof ValidationErrors, `expected ValidationErrors, got ${String(err)}`)
    assert.equal(err.problems.length, 1)
    assert.equal(err.code, 'VALIDATION_FAILED')
    return err.problems[0]!
  }
  assert.fail('parsed without error')
}

describe('parseManifest: what it returns', () => {
  it('keeps the text exactly and returns its UTF-8 bytes', () => {
    const text = `# a comment\n${validPodYaml('wéb-ü')}`
    const parsed = parseManifest(text)
    assert.equal(parsed.text, text)
    assert.deepEqual(parsed.bytes, Buffer.from(text, 'utf8'))
    assert.equal(parsed.format, 'yaml')
    assert.equal((parsed.object['metadata'] as Record<string, unknown>)['name'], 'wéb-ü')
  })

  it('decodes bytes and copies them', () => {
    const input = new Uint8Array(Buffer.from(validPodYaml()))
    const parsed = parseManifest(input)
    assert.equal(parsed.text, validPodYaml())
    input[0] = 0x20
    assert.equal(parsed.bytes[0], 'a'.charCodeAt(0))
  })

  it('detects JSON by its first non-blank character', () => {
    assert.equal(parseManifest('  \n{"apiVersion": "v1", "kind": "Pod"}').format, 'json')
    assert.equal(parseManifest('apiVersion: v1\nx: {"a": 1}\n').format, 'yaml')
    assert.equal(parseManifest('\ufeff{"a": 1}').format, 'yaml') // a BOM is not whitespace to the kubelet
  })

  it('requires strict JSON when the input starts with a brace, as the kubelet does', () => {
    assert.match(problem('{apiVersion: v1, kind: Pod}').message, /reads it as JSON, but it is not valid JSON/)
    assert.match(problem('{"a": 1}\n# trailing comment\n').message, /not valid JSON/)
    assert.match(problem("{'a': 1}").message, /not valid JSON/)
    parseManifest('\n  {"a": 1}\n\n')
  })

  it('parses JSON and kubeadm YAML to plain objects', () => {
    const json = parseManifest(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'a', image: 'b' }] } }, null, 2))
    assert.deepEqual(json.object, { apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'a', image: 'b' }] } })
    const kubeadm = parseManifest(kubeApiserverYaml).object
    const spec = kubeadm['spec'] as { containers: Array<{ command: string[] }> }
    assert.equal(spec.containers[0]!.command[0], 'kube-apiserver')
    assert.deepEqual(kubeadm['status'], {})
  })

  it('accepts a single leading --- and a trailing ... marker', () => {
    parseManifest(`---\n${validPodYaml()}`)
    parseManifest(`%YAML 1.2\n---\n${validPodYaml()}...\n`)
  })

  it('still parses a normal document with an anchor and an alias', () => {
    const parsed = parseManifest(`${validPodYaml()}  nodeSelector: &sel {role: cp}\nx-copy: *sel\n`)
    assert.deepEqual(parsed.object['x-copy'], { role: 'cp' })
  })

  it('honours << merge keys, as the kubelet does', () => {
    const parsed = parseManifest('x-base: &base {app: web}\nmetadata:\n  labels:\n    <<: *base\n    tier: front\n')
    assert.deepEqual((parsed.object['metadata'] as Record<string, unknown>)['labels'], { app: 'web', tier: 'front' })
  })
})

describe('parseManifest: __proto__ keys are plain data', () => {
  for (const [label, text] of [
    ['JSON', '{"__proto__": {"polluted": 1}, "kind": "Pod"}'],
    ['YAML', '__proto__:\n  polluted: 1\nkind: Pod\n'],
    ['nested', '{"spec": {"__proto__": {"polluted": 1}}}'],
  ] as const) {
    it(`does not pollute or re-prototype (${label})`, () => {
      const { object } = parseManifest(text)
      assert.equal(({} as Record<string, unknown>)['polluted'], undefined)
      assert.equal((Object.prototype as Record<string, unknown>)['polluted'], undefined)
      assert.equal(Object.getPrototypeOf(object), Object.prototype)
      const holder = label === 'nested' ? (object['spec'] as Record<string, unknown>) : object
      assert.equal(Object.getPrototypeOf(holder), Object.prototype)
      assert.equal(holder['polluted'], undefined)
      assert.ok(Object.hasOwn(holder, '__proto__'))
      assert.deepEqual(Object.getOwnPropertyDescriptor(holder, '__proto__')?.value, { polluted: 1 })
    })
  }
})

describe('parseManifest: refusals', () => {
  it('refuses empty and blank input', () => {
    for (const blank of ['', ' ', '\n\n', '\t \r\n', new Uint8Array(0)]) assert.match(problem(blank).message, /empty/)
    assert.match(problem('# only a comment\n').message, /no YAML document/)
  })

  it('checks the size in bytes before parsing, and says both sizes', () => {
    const huge = `${'#'.repeat(MAX_MANIFEST_BYTES)}\n`
    const err = problem(huge)
    assert.match(err.message, new RegExp(`${MAX_MANIFEST_BYTES + 1} bytes.*${MAX_MANIFEST_BYTES} bytes`))
    // Multi-byte characters count as bytes: 6 characters, 12 bytes.
    assert.match(problem('ééé: é\n', { maxBytes: 10 }).message, /11 bytes; the limit is 10/)
    // Not parsed at all: invalid YAML over the limit still says "size".
    assert.match(problem(`{{{{ ${'x'.repeat(100)}`, { maxBytes: 50 }).message, /limit is 50/)
  })

  it('accepts a manifest exactly at the limit', () => {
    const text = validPodYaml()
    parseManifest(text, { maxBytes: Buffer.byteLength(text) })
  })

  it('refuses bytes that are not UTF-8 and strings with lone surrogates', () => {
    assert.match(problem(Uint8Array.from([0x6b, 0x3a, 0x20, 0xc3, 0x28])).message, /not valid UTF-8/)
    assert.match(problem(Uint8Array.from([0xed, 0xa0, 0x80])).message, /not valid UTF-8/) // an encoded surrogate
    assert.match(problem('a: "\udc00"\n').message, /lone UTF-16 surrogate/)
    assert.match(problem('a: "x\ud83d"\n').message, /lone UTF-16 surrogate/)
    parseManifest('a: "😀"\n') // a proper surrogate pair
  })

  it('refuses several documents', () => {
    assert.match(problem(`${validPodYaml('a')}---\n${validPodYaml('b')}`).message, /2 YAML documents/)
    assert.match(problem(`${validPodYaml('a')}---\n`).message, /2 YAML documents/)
    assert.match(problem(`---\n${validPodYaml('a')}...\n---\n${validPodYaml('b')}`).message, /2 YAML documents/)
  })

  it('reports YAML syntax errors with their line', () => {
    const err = problem('apiVersion: v1\nkind: Pod\nmetadata:\n  name: [web\n')
    assert.match(err.message, /YAML syntax error/)
    assert.match(err.message, /line \d+/)
    assert.match(problem('apiVersion: v1\nkind: Pod\n  bad: [\n').message, /line \d+, column \d+/)
  })

  it('refuses duplicate keys, in YAML and in JSON', () => {
    assert.match(problem('kind: Pod\nkind: Pod\n').message, /Duplicate key.*line 2/)
    assert.match(problem('{"kind": "Pod", "kind": "Pod"}').message, /Duplicate key/)
    assert.match(problem('{"spec": {"a": 1, "a": 2}}').message, /Duplicate key/)
  })

  it('refuses a billion-laughs document fast', () => {
    const levels = 'abcdefghi'.split('')
    const lines = [`a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]`]
    for (let i = 1; i < levels.length; i++) lines.push(`${levels[i]}: &${levels[i]} [${Array(9).fill(`*${levels[i - 1]}`).join(',')}]`)
    const started = performance.now()
    const err = problem(`${lines.join('\n')}\n`)
    assert.ok(performance.now() - started < 1000, 'refused within a second')
    assert.match(err.message, /aliases/)
  })

  it('refuses a top level that is not a mapping', () => {
    assert.match(problem('- a\n- b\n').message, /mapping.*not a list/)
    assert.match(problem('hello\n').message, /not the string "hello"/)
    assert.match(problem('42\n').message, /not the number 42/)
    assert.match(problem('---\n').message, /not empty/)
    assert.match(problem('[]').message, /not a list/)
  })

  it('puts errors at the given field', () => {
    assert.deepEqual(problem('', { field: ['input', 'manifest'] }).field, ['input', 'manifest'])
    assert.deepEqual(problem('').field, ['manifest'])
  })
})

describe('parseManifest: one manifest for many nodes (parses are remembered by text)', () => {
  it('gives the same object again, frozen, so no caller can change what the next one gets', () => {
    const text = validPodYaml('remembered')
    const first = parseManifest(text)
    const second = parseManifest(text)
    assert.equal(second.object, first.object)
    assert.deepEqual(second.bytes, Buffer.from(text, 'utf8'))
    assert.throws(() => {
      ;(first.object['metadata'] as Record<string, unknown>)['name'] = 'changed'
    }, TypeError)
    assert.equal((parseManifest(text).object['metadata'] as Record<string, unknown>)['name'], 'remembered')
  })

  it('does not remember failures: each caller gets its own field in the error', () => {
    const bad = 'apiVersion: v1\nkind: Pod\nkind: Pod\n'
    for (const field of [['manifest'], ['input', 'manifest']]) {
      assert.throws(
        () => parseManifest(bad, { field }),
        (err: unknown) => err instanceof ValidationErrors && JSON.stringify(err.field) === JSON.stringify(field),
      )
    }
  })
})
