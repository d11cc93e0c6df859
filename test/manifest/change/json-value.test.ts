import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { copyJson, describePath, NotJson } from '../../../src/manifest/change/json-value.ts'

function notJson(value: unknown, path: string[], message: RegExp, options = {}): void {
  assert.throws(
    () => copyJson(value, options),
    (err: unknown) => err instanceof NotJson && assert.deepEqual(err.path, path) === undefined && message.test(err.message),
  )
}

describe('copyJson', () => {
  it('copies deeply, keeping key order', () => {
    const value = { b: 1, a: [{ z: null, y: 'x' }, true], c: { d: { e: [] } } }
    const copy = copyJson(value) as typeof value
    assert.deepEqual(copy, value)
    assert.deepEqual(Object.keys(copy), ['b', 'a', 'c'])
    assert.deepEqual(Object.keys(copy.a[0] as object), ['z', 'y'])
    assert.notEqual(copy.c, value.c)
    assert.notEqual(copy.a, value.a)
  })

  it('keeps __proto__ a key, never a prototype', () => {
    const value = JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>
    const copy = copyJson(value) as Record<string, unknown>
    assert.equal(Object.getPrototypeOf(copy), Object.prototype)
    assert.deepEqual(Object.keys(copy), ['__proto__'])
    assert.equal((copy as { polluted?: boolean }).polluted, undefined)
  })

  it('makes objects without a prototype when asked', () => {
    const copy = copyJson({ a: { b: 1 } }, { nullPrototype: true }) as Record<string, Record<string, unknown>>
    assert.equal(Object.getPrototypeOf(copy), null)
    assert.equal(Object.getPrototypeOf(copy['a']), null)
    assert.equal(copy['a']!['toString'], undefined)
  })

  it('refuses what JSON cannot hold, saying where', () => {
    notJson({ a: [1, Number.NaN] }, ['a', '1'], /NaN is not a number/)
    notJson({ a: Infinity }, ['a'], /Infinity/)
    notJson({ a: new Map() }, ['a'], /ordered map/)
    notJson({ a: new Set() }, ['a'], /YAML set/)
    notJson({ a: new Uint8Array(2) }, ['a'], /binary data/)
    notJson({ a: new Date(0) }, ['a'], /timestamp/)
    notJson({ a: undefined }, ['a'], /undefined is not JSON/)
    notJson({ a: () => 1 }, ['a'], /a function is not JSON/)
    notJson({ a: 1n }, ['a'], /a bigint is not JSON/)
    notJson(new (class Thing {})(), [], /an object of class Thing is not JSON/)
  })

  it('bounds depth, which also ends a cycle', () => {
    notJson({ a: { b: { c: 1 } } }, ['a', 'b'], /nested more than 1 levels/, { maxDepth: 1 })
    const cycle: Record<string, unknown> = {}
    cycle['self'] = cycle
    notJson(cycle, Array(11).fill('self'), /nested more than 10/, { maxDepth: 10 })
  })

  it('copies values nested far deeper than the stack would allow recursion', () => {
    let deep: unknown = 'bottom'
    for (let i = 0; i < 100_000; i++) deep = [deep]
    let copy = copyJson(deep)
    for (let i = 0; i < 100_000; i++) copy = (copy as unknown[])[0]
    assert.equal(copy, 'bottom')
  })
})

describe('describePath', () => {
  it('reads like the field path', () => {
    assert.equal(describePath(['spec', 'containers', '0', 'image']), 'spec.containers[0].image')
    assert.equal(describePath(['0', 'op']), '[0].op')
    assert.equal(describePath([]), 'the top level')
    assert.equal(describePath(Array(20).fill('a')), `${Array(12).fill('a').join('.')}…(20 levels)`)
  })
})
