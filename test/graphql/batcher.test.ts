// StepBatcher (src/graphql/batcher.ts), the one batching mechanism of a
// GraphQL request: one load per group and execution step, each key loaded once.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { StepBatcher } from '../../src/graphql/batcher.ts'

/** A batcher of numbers grouped by a multiplier, recording every load. */
function multiplier() {
  const loads: Array<{ items: number[]; group: number }> = []
  const batcher = new StepBatcher<number, number, number>({
    key: String,
    load: async (items, group) => {
      loads.push({ items, group })
      return items.map((i) => i * group)
    },
  })
  return { batcher, loads }
}

describe('StepBatcher', () => {
  it('answers every ask of a step in one load per group, each with its own value', async () => {
    const { batcher, loads } = multiplier()
    const answers = await Promise.all([batcher.get(1, 10), batcher.get(2, 100), batcher.get(3, 10), batcher.get(4, 100), batcher.get(5, 10)])
    assert.deepEqual(answers, [10, 200, 30, 400, 50])
    assert.deepEqual(loads, [
      { items: [1, 3, 5], group: 10 },
      { items: [2, 4], group: 100 },
    ])
  })

  it('loads a key once per group, in this step and the later ones; another group loads it again', async () => {
    const { batcher, loads } = multiplier()
    const [a, b] = await Promise.all([batcher.get(7, 2), batcher.get(7, 2)])
    assert.deepEqual([a, b], [14, 14])
    assert.equal(await batcher.get(7, 2), 14)
    assert.equal(await batcher.get(7, 3), 21)
    assert.deepEqual(loads, [
      { items: [7], group: 2 },
      { items: [7], group: 3 },
    ])
  })

  it('asks made after an answer arrived are the next step: one more load', async () => {
    const { batcher, loads } = multiplier()
    const first = await batcher.get(1, 1)
    const next = await Promise.all([batcher.get(first + 1, 1), batcher.get(first + 2, 1)])
    assert.deepEqual(next, [2, 3])
    assert.deepEqual(
      loads.map((l) => l.items),
      [[1], [2, 3]],
    )
  })

  it('works without groups', async () => {
    const loads: string[][] = []
    const batcher = new StepBatcher<string, string>({
      key: (s) => s,
      load: async (items) => {
        loads.push(items)
        return items.map((s) => s.toUpperCase())
      },
    })
    assert.deepEqual(await Promise.all([batcher.get('a'), batcher.get('b'), batcher.get('a')]), ['A', 'B', 'A'])
    assert.deepEqual(loads, [['a', 'b']])
  })

  it('a failed load fails the asks of its group only', async () => {
    const batcher = new StepBatcher<number, number, string>({
      key: String,
      load: async (items, group) => {
        if (group === 'bad') throw new Error('store down')
        return items
      },
    })
    const [bad, good] = await Promise.allSettled([batcher.get(1, 'bad'), batcher.get(2, 'good')])
    assert.equal(bad.status, 'rejected')
    assert.match(String((bad as PromiseRejectedResult).reason), /store down/)
    assert.deepEqual(good, { status: 'fulfilled', value: 2 })
  })

  it('a load that answers too few values fails its asks rather than answer undefined', async () => {
    const batcher = new StepBatcher<number, number>({ key: String, load: async (items) => items.slice(1) })
    const results = await Promise.allSettled([batcher.get(1), batcher.get(2)])
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    )
    assert.match(String((results[0] as PromiseRejectedResult).reason), /answered 1 values for 2 items/)
  })
})
