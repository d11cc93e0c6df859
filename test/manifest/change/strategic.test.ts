// The strategic merge patch port on a schema of its own, for what the Pod
// schema cannot show as plainly: the order Kubernetes gives merged lists, the
// directives, and the errors. The expected results follow from the Go code
// (k8s.io/apimachinery v0.36.3 strategicpatch/patch.go).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { strategicMergePatch, StrategicPatchProblem } from '../../../src/manifest/change/strategic.ts'
import type { PatchField, PatchSchema } from '../../../src/manifest/pod-patch-schema.ts'

const itemFields: Record<string, PatchField> = {}
const ITEM: PatchSchema = { name: 'Item', fields: itemFields }
itemFields['items'] = { strategy: 'merge', mergeKey: 'name', schema: ITEM }
itemFields['tags'] = { strategy: 'merge' }
itemFields['whole'] = { strategy: 'replace' }

type Json = Record<string, any>

/** The patch applied to copies (the function works in place). */
function smp(original: Json, patch: Json): Json {
  return strategicMergePatch(structuredClone(original), structuredClone(patch), ITEM)
}

const items = (...names: string[]) => names.map((name) => ({ name }))
const namesOf = (result: Json): string[] => result['items'].map((i: Json) => i['name'])

function problem(original: Json, patch: Json, at: string[], message: RegExp): void {
  assert.throws(
    () => smp(original, patch),
    (err: unknown) => {
      assert.ok(err instanceof StrategicPatchProblem, String(err))
      assert.deepEqual(err.at, at)
      assert.match(err.message, message)
      return true
    },
  )
}

describe('strategic merge patch: the order of merged lists', () => {
  it('puts new elements before the server-only ones that follow the last element the patch names', () => {
    assert.deepEqual(namesOf(smp({ items: items('a', 'b') }, { items: items('x') })), ['x', 'a', 'b'])
    const result = smp({ items: items('a', 'b', 'c') }, { items: [{ name: 'b', v: 1 }, { name: 'd' }] })
    assert.deepEqual(result['items'], [{ name: 'a' }, { name: 'b', v: 1 }, { name: 'd' }, { name: 'c' }])
  })

  it('orders the elements the patch names as the patch does', () => {
    const result = smp({ items: items('a', 'b', 'c') }, { items: [{ name: 'c', v: 1 }, { name: 'a', v: 1 }] })
    assert.deepEqual(namesOf(result), ['b', 'c', 'a'])
  })

  it('merges a list of scalars as a set, the patch order first', () => {
    assert.deepEqual(smp({ tags: ['a', 'b'] }, { tags: ['c', 'a'] })['tags'], ['c', 'a', 'b'])
    assert.deepEqual(smp({ tags: ['a', 'b'] }, { tags: ['b'] })['tags'], ['a', 'b'])
    assert.deepEqual(smp({ tags: [1, 2] }, { tags: [3] })['tags'], [3, 1, 2])
  })

  it('follows $setElementOrder, server-only elements where the live list had them', () => {
    const original = { items: [{ name: 'a' }, { name: 'b', x: 1 }, { name: 'c' }] }
    assert.deepEqual(namesOf(smp(original, { '$setElementOrder/items': items('c', 'a', 'b') })), ['c', 'a', 'b'])
    // b comes before c in the live list, so before it here.
    assert.deepEqual(namesOf(smp(original, { '$setElementOrder/items': items('c', 'a') })), ['b', 'c', 'a'])
    assert.deepEqual(smp({ tags: ['x', 'y', 'z'] }, { '$setElementOrder/tags': ['z', 'x', 'y'] })['tags'], ['z', 'x', 'y'])
  })

  it('orders as Go does when a deletion and an addition share the live list\'s array', () => {
    // In Go the element appended for d lands where the deleted a's slot was freed, and that
    // array orders the server-only c before d.
    const result = smp(
      { items: [{ name: 'a' }, { name: 'b', x: 1 }, { name: 'c' }] },
      { '$setElementOrder/items': items('b', 'd'), items: [{ name: 'd' }, { name: 'a', $patch: 'delete' }] },
    )
    assert.deepEqual(result['items'], [{ name: 'b', x: 1 }, { name: 'c' }, { name: 'd' }])
  })

  it('sorts long lists (Go sort.SliceStable beyond its insertion-sort blocks)', () => {
    const many = Array.from({ length: 50 }, (_, i) => `n${i}`)
    const reversed = [...many].reverse()
    assert.deepEqual(namesOf(smp({ items: items(...many) }, { '$setElementOrder/items': items(...reversed) })), reversed)
    const patch = { items: reversed.map((name) => ({ name, seen: true })) }
    assert.deepEqual(namesOf(smp({ items: items(...many) }, patch)), reversed)
  })
})

describe('strategic merge patch: directives', () => {
  it('$patch: delete removes every element with that key; $patch: replace takes the other elements', () => {
    assert.deepEqual(namesOf(smp({ items: [{ name: 'a', n: 1 }, { name: 'b' }, { name: 'a', n: 2 }] }, { items: [{ name: 'a', $patch: 'delete' }] })), ['b'])
    const replaced = smp({ items: items('a', 'b') }, { items: [{ name: 'z', drop: null }, { $patch: 'replace' }, { name: 'b', $patch: 'delete' }] })
    assert.deepEqual(replaced['items'], [{ name: 'z' }])
  })

  it('$patch on a mapping: replace takes it whole, delete leaves it empty', () => {
    assert.deepEqual(smp({ m: { a: 1, b: 2 } }, { m: { $patch: 'replace', c: 3 } }), { m: { c: 3 } })
    assert.deepEqual(smp({ m: { a: 1 } }, { m: { $patch: 'delete' } }), { m: {} })
    assert.deepEqual(smp({ a: 1 }, { $patch: 'replace', b: 2 }), { b: 2 })
  })

  it('drops a new mapping that holds a directive, and new list elements that do (removeDirectives)', () => {
    assert.deepEqual(smp({}, { m: { $patch: 'replace', c: 3 } }), {})
    assert.deepEqual(smp({}, { list: [{ a: 1 }, { a: 2, $patch: 'delete' }] }), { list: [{ a: 1 }] })
  })

  it('$deleteFromPrimitiveList removes values, and never adds the list', () => {
    assert.deepEqual(smp({ tags: ['a', 'b', 'a', 'c'] }, { '$deleteFromPrimitiveList/tags': ['a', 'x'] }), { tags: ['b', 'c'] })
    assert.deepEqual(smp({}, { '$deleteFromPrimitiveList/tags': ['a'] }), {})
    assert.deepEqual(smp({ tags: ['a'] }, { '$deleteFromPrimitiveList/tags': null }), {})
    problem({ tags: ['a'] }, { $deleteFromPrimitiveListtags: ['a'] }, ['$deleteFromPrimitiveListtags'], /is not a directive: it must be \$deleteFromPrimitiveList\/<field>/)
  })

  it('$retainKeys clears the keys it does not list, and refuses a patch that sets one', () => {
    assert.deepEqual(smp({ a: 1, b: 2, c: 3 }, { $retainKeys: ['a', 'd'], d: 4 }), { a: 1, d: 4 })
    problem({ a: 1 }, { $retainKeys: ['a'], b: 2 }, ['$retainKeys'], /sets "b"/)
    problem({ a: 1 }, { $retainKeys: 'a' }, ['$retainKeys'], /must be a list/)
  })

  it('settles what it takes from the patch: no nulls, no directive keys', () => {
    assert.deepEqual(smp({ m: 'was a string' }, { m: { a: null, b: 1 } }), { m: { b: 1 } })
    assert.deepEqual(smp({ list: [1] }, { list: [{ a: null, $retainKeys: ['a'], b: 1 }] }), { list: [{ b: 1 }] })
    assert.deepEqual(smp({ items: [] }, { items: [{ name: 'n', '$setElementOrder/tags': ['x'], tags: ['x'], gone: null }] }), { items: [{ name: 'n', tags: ['x'] }] })
  })

  it('takes a field with strategy replace whole', () => {
    assert.deepEqual(smp({ whole: { a: 1, b: 2 } }, { whole: { c: 3 } }), { whole: { c: 3 } })
  })
})

describe('strategic merge patch: errors, located in the patch', () => {
  it('refuses elements without the merge key, and lists it cannot merge', () => {
    problem({ items: items('a') }, { items: [{ v: 1 }] }, ['items', '0'], /has no name, the merge key/)
    problem({ items: [{ v: 1 }] }, { items: items('a') }, ['items'], /no name, the list's merge key/)
    problem({ items: items('a') }, { items: [{ $patch: 'delete' }] }, ['items', '0'], /needs the element's name/)
    problem({ items: [['a']] }, { items: [['b']] }, ['items'], /Lists of lists/)
    problem({ items: items('a') }, { items: ['b'] }, ['items'], /not all of one type \(map and string\)/)
    problem({ tags: ['a', null] }, { tags: ['b'] }, ['tags'], /null element/)
    problem({ other: [{ a: 1 }] }, { '$setElementOrder/other': [{ a: 1 }] }, ['$setElementOrder/other'], /list of mappings that has no merge key/)
  })

  it('refuses a $setElementOrder the patch list does not follow', () => {
    problem({ items: items('a', 'b') }, { '$setElementOrder/items': items('a', 'b'), items: items('b', 'a') }, ['$setElementOrder/items'], /does not match its \$setElementOrder list/)
    problem({ items: 'x' }, { '$setElementOrder/items': items('a') }, ['$setElementOrder/items'], /not a list in the pod/)
  })

  it('refuses $patch values Kubernetes does not know, on mappings and in lists', () => {
    problem({ m: { a: 1 } }, { m: { $patch: 'merge' } }, ['m', '$patch'], /"\$patch: merge" is not accepted on a mapping/)
    problem({ items: items('a') }, { items: [{ name: 'a', $patch: 'merge' }] }, ['items', '0', '$patch'], /merging lists cannot yet be specified/)
    problem({ m: { a: 1 } }, { m: { $patch: 7 } }, ['m', '$patch'], /Unknown \$patch directive of type number/)
  })
})
