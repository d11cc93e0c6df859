// The DynamoDB store: the shared contract suite against dynalite (a local
// DynamoDB started in this process on 127.0.0.1), and what only this backend
// has: chunked large values, paging across many pages, batch retries, and the
// table definition matching serverless.yml.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, describe, it } from 'node:test'
import { BatchWriteItemCommand, ConditionalCheckFailedException, QueryCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb'
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb'
import { parse as parseYaml } from 'yaml'
import { isServiceError } from '../../src/errors.ts'
import { CHUNK_BYTES, INLINE_MAX_BYTES } from '../../src/store/dynamodb-chunks.ts'
import { tableDefinition } from '../../src/store/dynamodb-table.ts'
import { DynamoStore } from '../../src/store/dynamodb.ts'
import { podKeyString } from '../../src/domain.ts'
import type { EventRecord, PodKey } from '../../src/domain.ts'
import type { Store } from '../../src/store/store.ts'
import { startDynalite, type LocalDynamo } from '../support/dynalite.ts'
import { auditEvent, newEvent, newRevision, nodeObservation, nodeRecord, storeContract } from './contract.ts'

let started: Promise<LocalDynamo> | undefined
const local = (): Promise<LocalDynamo> => (started ??= startDynalite())
after(async () => {
  if (started) await (await started).close()
})

/** A store over a fresh table; `tweak` gets the client to add test middleware to. */
async function freshStore(opts: { pageSize?: number; tweak?: (client: DynamoDBClient) => void } = {}) {
  const dynamo = await local()
  const table = await dynamo.freshTable()
  const clients: DynamoDBClient[] = []
  const open = (): Store => {
    const client = dynamo.client()
    opts.tweak?.(client)
    clients.push(client)
    return new DynamoStore({ table, client, pageSize: opts.pageSize, retry: { maxAttempts: 10, baseDelayMs: 1, maxDelayMs: 20 } })
  }
  return {
    table,
    store: open(),
    reopen: async () => open(),
    cleanup: async () => {
      for (const c of clients) c.destroy()
    },
  }
}

storeContract('dynamodb', () => freshStore())
// The same suite with Query pages of 3 items, so that every listing crosses page boundaries.
storeContract('dynamodb, 3-item pages', () => freshStore({ pageSize: 3 }))

const apiserver: PodKey = { node: 'cp-1', namespace: 'kube-system', name: 'kube-apiserver' }

/** A manifest of exactly `bytes` UTF-8 bytes, multi-byte characters included (so chunk cuts fall inside them). */
function manifestOfBytes(bytes: number): string {
  const head = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n  annotations:\n    blob: |\n'
  const line = '      ü€😀 ' + 'x'.repeat(60) + '\n'
  let text = head + line.repeat(Math.ceil((bytes - head.length) / Buffer.byteLength(line)))
  while (Buffer.byteLength(text) > bytes) text = text.slice(0, -1)
  // Slicing may leave a lone surrogate; pad with ASCII to the exact size instead.
  text = text.replace(/[\ud800-\udbff]$/, '')
  return text + 'y'.repeat(bytes - Buffer.byteLength(text))
}

async function countItems(client: DynamoDBClient, table: string, pk: string, skPrefix: string): Promise<number> {
  let count = 0
  let start: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue> | undefined
  do {
    const page = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :p)',
        ExpressionAttributeValues: { ':pk': { S: pk }, ':p': { S: skPrefix } },
        ExclusiveStartKey: start,
        Select: 'COUNT',
      }),
    )
    count += page.Count ?? 0
    start = page.LastEvaluatedKey
  } while (start)
  return count
}

describe('DynamoStore', () => {
  describe('values larger than one item', () => {
    for (const [label, bytes] of [
      ['399 KB', 399 * 1024],
      ['1 MB', 1024 * 1024],
      ['10 MB (the kubelet limit)', 10 * 1024 * 1024],
    ] as const) {
      it(`stores and reads back a ${label} manifest byte for byte`, { timeout: 120_000 }, async () => {
        const h = await freshStore()
        try {
          const manifest = manifestOfBytes(bytes)
          assert.equal(Buffer.byteLength(manifest), bytes)
          const appended = await h.store.appendRevision(newRevision(apiserver, { manifest }))
          assert.equal(appended.manifest, manifest)
          const viaGet = await h.store.getRevision(apiserver, 1)
          assert.ok(viaGet && Buffer.from(viaGet.manifest).equals(Buffer.from(manifest)), 'getRevision')
          const latest = (await h.store.latestRevisions([apiserver])).get(podKeyString(apiserver))
          assert.ok(latest && latest.manifest === manifest, 'latestRevisions')
          const listed = (await h.store.listRevisions([apiserver], 5)).get(podKeyString(apiserver))
          assert.ok(listed?.[0]?.manifest === manifest, 'listRevisions')
          const dynamo = await local()
          const client = dynamo.client()
          try {
            const chunks = await countItems(client, h.table, 'NODE#cp-1', 'CHUNK#')
            assert.equal(chunks, bytes <= INLINE_MAX_BYTES ? 0 : Math.ceil(bytes / CHUNK_BYTES))
          } finally {
            client.destroy()
          }
        } finally {
          await h.cleanup()
        }
      })
    }

    it('an observation holding a 10 MB manifest is stored, replaced, and its old chunks deleted', { timeout: 120_000 }, async () => {
      const h = await freshStore()
      try {
        const manifest = manifestOfBytes(10 * 1024 * 1024)
        const big = nodeObservation('cp-1')
        big.pods[0]!.manifest = manifest
        await h.store.putObservation(big)
        assert.deepEqual((await h.store.getObservations(['cp-1'])).get('cp-1'), big)
        const small = nodeObservation('cp-1', { observedAt: '2024-05-01T13:00:00.000Z' })
        await h.store.putObservation(small)
        assert.deepEqual((await h.store.getObservations(['cp-1'])).get('cp-1'), small)
        const client = (await local()).client()
        try {
          assert.equal(await countItems(client, h.table, 'NODE#cp-1', 'CHUNK#'), 0, 'the replaced chunks are gone')
        } finally {
          client.destroy()
        }
      } finally {
        await h.cleanup()
      }
    })

    it('a losing concurrent append leaves no chunks behind, and the winner keeps its own', { timeout: 60_000 }, async () => {
      const h = await freshStore()
      try {
        const manifests = Array.from({ length: 4 }, (_, i) => manifestOfBytes(INLINE_MAX_BYTES + 1000 + i))
        const outcomes = await Promise.allSettled(manifests.map((manifest) => h.store.appendRevision(newRevision(apiserver, { manifest }), 0)))
        const won = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []))
        assert.equal(won.length, 1)
        assert.equal((await h.store.getRevision(apiserver, 1))?.manifest, won[0]!.manifest)
        const client = (await local()).client()
        try {
          assert.equal(await countItems(client, h.table, 'NODE#cp-1', 'CHUNK#'), 1, 'one chunk: the winner\'s')
        } finally {
          client.destroy()
        }
        assert.equal(await h.store.deleteNode('cp-1'), false)
        const after = (await local()).client()
        try {
          assert.equal(await countItems(after, h.table, 'NODE#cp-1', ''), 0, 'deleteNode removes chunks too')
        } finally {
          after.destroy()
        }
      } finally {
        await h.cleanup()
      }
    })
  })

  describe('batches DynamoDB answers only in part', () => {
    /** Holds back half of every batch (at least one entry), as DynamoDB does under throttling. */
    function holdBackHalf(counter: { getsHeldBack: number; writesHeldBack: number }) {
      return (client: DynamoDBClient) => {
        client.middlewareStack.add(
          (next) => async (args) => {
            const input = args.input as Record<string, unknown>
            if (args.input && 'RequestItems' in input && (input.RequestItems as object)) {
              const [table, request] = Object.entries(input.RequestItems as Record<string, unknown>)[0]!
              if (Array.isArray(request) && request.length > 1) {
                const kept = request.slice(0, Math.ceil(request.length / 2))
                const held = request.slice(kept.length)
                counter.writesHeldBack += held.length
                const result = await next({ ...args, input: { ...input, RequestItems: { [table]: kept } } })
                // Added to what DynamoDB itself left unprocessed, never in place of it.
                const output = result.output as { UnprocessedItems?: Record<string, unknown[]> }
                output.UnprocessedItems = { [table]: [...(output.UnprocessedItems?.[table] ?? []), ...held] }
                return result
              }
              const keysAsked = (request as { Keys?: unknown[] }).Keys
              if (Array.isArray(keysAsked) && keysAsked.length > 1) {
                const kept = keysAsked.slice(0, Math.ceil(keysAsked.length / 2))
                const held = keysAsked.slice(kept.length)
                counter.getsHeldBack += held.length
                const result = await next({ ...args, input: { ...input, RequestItems: { [table]: { ...(request as object), Keys: kept } } } })
                const output = result.output as { UnprocessedKeys?: Record<string, { Keys?: unknown[] }> }
                const alreadyLeft = output.UnprocessedKeys?.[table]?.Keys ?? []
                output.UnprocessedKeys = { [table]: { ...(request as object), Keys: [...alreadyLeft, ...held] } }
                return result
              }
            }
            return next(args)
          },
          { step: 'initialize', name: 'holdBackHalfOfBatches' },
        )
      }
    }

    it('retries UnprocessedItems and UnprocessedKeys until every item is written and read', { timeout: 60_000 }, async () => {
      const counter = { getsHeldBack: 0, writesHeldBack: 0 }
      const h = await freshStore({ tweak: holdBackHalf(counter) })
      try {
        const keysList: PodKey[] = Array.from({ length: 150 }, (_, i) => ({ ...apiserver, name: `pod-${i}` }))
        for (const key of keysList) await h.store.appendRevision(newRevision(key))
        const latest = await h.store.latestRevisions(keysList)
        assert.equal(latest.size, 150)
        const manifest = manifestOfBytes(3 * 1024 * 1024)
        await h.store.appendRevision(newRevision(apiserver, { manifest }))
        assert.equal((await h.store.getRevision(apiserver, 1))?.manifest, manifest)
        await h.store.createNode(nodeRecord('cp-1'))
        assert.equal(await h.store.deleteNode('cp-1'), true)
        assert.equal((await h.store.latestRevisions(keysList)).size, 0)
        assert.ok(counter.getsHeldBack > 0 && counter.writesHeldBack > 0, JSON.stringify(counter))
      } finally {
        await h.cleanup()
      }
    })

    it('gives up with an error, not a partial answer, when DynamoDB never processes a batch', async () => {
      const h = await freshStore({
        tweak: (client) =>
          client.middlewareStack.add(
            (next) => async (args) => {
              const result = await next(args)
              const input = args.input as { RequestItems?: Record<string, { Keys?: unknown[] }> }
              if (input.RequestItems && 'Keys' in (Object.values(input.RequestItems)[0] ?? {})) {
                ;(result.output as { UnprocessedKeys?: unknown }).UnprocessedKeys = input.RequestItems
              }
              return result
            },
            { step: 'initialize', name: 'neverProcessGets' },
          ),
      })
      try {
        await h.store.appendRevision(newRevision(apiserver))
        await assert.rejects(h.store.latestRevisions([apiserver]), /unread after 10 attempts/)
      } finally {
        await h.cleanup()
      }
    })
  })

  describe('revision heads', () => {
    it('a head that lags behind its revisions (a crash between the two writes) is caught and repaired', async () => {
      const h = await freshStore()
      try {
        await h.store.appendRevision(newRevision(apiserver))
        await h.store.appendRevision(newRevision(apiserver))
        // Simulate the crash: put the head back to 1 and remove it for another key entirely.
        const client = (await local()).client()
        try {
          await client.send(
            new BatchWriteItemCommand({
              RequestItems: {
                [h.table]: [
                  { PutRequest: { Item: { pk: { S: 'NODE#cp-1' }, sk: { S: 'HEAD#kube-system/kube-apiserver' }, latest: { N: '1' } } } },
                ],
              },
            }),
          )
        } finally {
          client.destroy()
        }
        assert.equal((await h.store.latestRevisions([apiserver])).get(podKeyString(apiserver))?.revision, 2)
        assert.deepEqual(
          (await h.store.listRevisions([apiserver], 10)).get(podKeyString(apiserver))?.map((r) => r.revision),
          [2, 1],
        )
        await assert.rejects(h.store.appendRevision(newRevision(apiserver), 1), (err) => isServiceError(err) && err.code === 'CONFLICT')
        assert.equal((await h.store.appendRevision(newRevision(apiserver))).revision, 3)
        assert.equal((await h.store.appendRevision(newRevision(apiserver), 3)).revision, 4)
      } finally {
        await h.cleanup()
      }
    })

    it('latestRevisions over 1,000 keys makes a constant number of batch calls, not one per key', async () => {
      const calls: string[] = []
      const h = await freshStore({
        tweak: (client) =>
          client.middlewareStack.add(
            (next, context) => async (args) => {
              calls.push(String(context.commandName))
              return next(args)
            },
            { step: 'initialize', name: 'countCalls' },
          ),
      })
      try {
        const keysList: PodKey[] = Array.from({ length: 1000 }, (_, i) => ({ ...apiserver, node: `n-${i % 50}`, name: `p-${i}` }))
        for (let i = 0; i < 100; i++) await h.store.appendRevision(newRevision(keysList[i]!))
        calls.length = 0
        const latest = await h.store.latestRevisions(keysList)
        assert.equal(latest.size, 100)
        assert.deepEqual(new Set(calls), new Set(['BatchGetItemCommand']))
        // 1,000 heads in 10 batches, then 1,100 revision keys in 11.
        assert.equal(calls.length, 21)
      } finally {
        await h.cleanup()
      }
    })
  })

  describe('events', () => {
    it('ids become visible in increasing order: a reader tailing two instances that append at once sees every id once, in order', { timeout: 120_000 }, async () => {
      // Writes reach the table after a random delay of up to 10 ms, as over a network.
      const jitter = (client: DynamoDBClient) =>
        client.middlewareStack.add(
          (next, context) => async (args) => {
            if (context.commandName === 'PutItemCommand' || context.commandName === 'BatchWriteItemCommand') {
              await new Promise((resolve) => setTimeout(resolve, Math.random() * 10))
            }
            return next(args)
          },
          { step: 'initialize', name: 'delayWrites' },
        )
      const h = await freshStore({ tweak: jitter })
      try {
        const writers = [h.store, await h.reopen()]
        const reader = await h.reopen()
        const seen: number[] = []
        let cursor = '0'
        /** One read of the tail, as the service's subscriber tail makes it: after the last id seen, oldest first. */
        const readTail = async (): Promise<number> => {
          const page = await reader.listEvents({ after: cursor, limit: 50, order: 'oldest' })
          for (const e of page) seen.push(Number(e.id))
          if (page.length > 0) cursor = page[page.length - 1]!.id
          return page.length
        }
        let writing = true
        const tailing = (async () => {
          while (writing) await readTail()
          while ((await readTail()) > 0);
        })()
        const appends: EventRecord[][] = []
        let asked = 0
        try {
          // 10 rounds of 20 appends at once on each instance, of 1 to 3 events each.
          for (let round = 0; round < 10; round++) {
            const results = await Promise.all(
              writers.flatMap((w, wi) =>
                Array.from({ length: 20 }, (_, i) => {
                  const events = Array.from({ length: 1 + ((i + round) % 3) }, (_, k) => newEvent(`cp-${wi}`, { message: `${round}/${wi}/${i}/${k}` }))
                  asked += events.length
                  return w.appendEvents(events)
                }),
              ),
            )
            appends.push(...results)
          }
        } finally {
          writing = false
          await tailing
        }
        for (const records of appends) {
          for (let i = 1; i < records.length; i++) assert.ok(Number(records[i]!.id) > Number(records[i - 1]!.id), 'ids increase within an append')
        }
        const ids = appends.flat().map((e) => Number(e.id)).sort((a, b) => a - b)
        assert.equal(ids.length, asked)
        assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => i + 1), 'ids are 1..N, without gaps or duplicates')
        const seenOnce = new Set(seen)
        const missed = ids.filter((id) => !seenOnce.has(id))
        const backwards = seen.filter((id, i) => i > 0 && id <= seen[i - 1]!)
        assert.deepEqual({ missed, backwards, seen: seen.length }, { missed: [], backwards: [], seen: ids.length }, 'the reader saw every id exactly once, in increasing order')
        assert.deepEqual((await reader.listEvents({ limit: 1000, order: 'oldest' })).map((e) => Number(e.id)), ids)
      } finally {
        await h.cleanup()
      }
    })

    it('pruned ids are not handed out again, by an instance that appended before or by a new one', async () => {
      const h = await freshStore()
      try {
        const [a, b] = [h.store, await h.reopen()]
        const ids: number[] = []
        const append = async (store: Store, n = 1) => ids.push(...(await store.appendEvents(Array.from({ length: n }, () => newEvent('cp-1')))).map((e) => Number(e.id)))
        await append(a, 3)
        await append(b, 2)
        await append(a)
        assert.deepEqual(ids, [1, 2, 3, 4, 5, 6])
        while ((await b.pruneEvents('2100-01-01T00:00:00.000Z')) > 0);
        assert.deepEqual(await a.listEvents({ limit: 10, order: 'newest' }), [])
        await append(b)
        await append(a)
        await append(await h.reopen(), 2)
        assert.deepEqual(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        assert.deepEqual((await a.listEvents({ after: '0', limit: 10, order: 'oldest' })).map((e) => Number(e.id)), [7, 8, 9, 10])
      } finally {
        await h.cleanup()
      }
    })

    it('a put the SDK sends again after a lost answer (it had stored the event) does not store the event twice', async () => {
      let lost = 0
      const h = await freshStore({
        tweak: (client) =>
          client.middlewareStack.add(
            (next, context) => async (args) => {
              const result = await next(args)
              const item = (args.input as { Item?: { pk?: { S?: string } } }).Item
              if (context.commandName === 'PutItemCommand' && item?.pk?.S === 'EVENTS' && lost < 2) {
                lost++
                // Inside the SDK's retry loop: written, then the answer is lost; the SDK sends the put again.
                throw Object.assign(new Error('the connection dropped before the answer'), { name: 'TimeoutError', $metadata: {} })
              }
              return result
            },
            { step: 'deserialize', name: 'loseAnswers' },
          ),
      })
      try {
        const appended = await h.store.appendEvents([newEvent('cp-1', { message: 'a' }), newEvent('cp-1', { message: 'b' })])
        assert.equal(lost, 2)
        assert.deepEqual(appended.map((e) => [e.id, e.message]), [['1', 'a'], ['2', 'b']])
        assert.deepEqual(await h.store.listEvents({ limit: 10, order: 'oldest' }), appended)
      } finally {
        await h.cleanup()
      }
    })

    it('an append gives up with an error after 1,000 ids in a row are taken; the next one is stored', async () => {
      let taken = true
      let puts = 0
      const h = await freshStore({
        tweak: (client) =>
          client.middlewareStack.add(
            (next, context) => async (args) => {
              const item = (args.input as { Item?: { pk?: unknown } }).Item
              if (taken && context.commandName === 'PutItemCommand' && item?.pk === 'EVENTS') {
                puts++
                throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: { attempts: 1 } })
              }
              return next(args)
            },
            { step: 'initialize', name: 'everyIdTaken' },
          ),
      })
      try {
        await assert.rejects(h.store.appendEvents([newEvent('cp-1')]), /gave up after 1000 ids/)
        assert.equal(puts, 1000)
        taken = false
        assert.deepEqual((await h.store.appendEvents([newEvent('cp-1')])).map((e) => e.id), ['1'])
      } finally {
        await h.cleanup()
      }
    })

    it('putObservationIf with expectedVersion null matches an observation stored before versions existed', async () => {
      const h = await freshStore()
      const client = (await local()).client()
      try {
        await h.store.putObservation(nodeObservation('cp-1'))
        await client.send(
          new UpdateItemCommand({ TableName: h.table, Key: { pk: { S: 'NODE#cp-1' }, sk: { S: 'OBSERVATION' } }, UpdateExpression: 'REMOVE version' }),
        )
        assert.equal((await h.store.getObservationsIfChanged(['cp-1'], new Map())).get('cp-1')?.version, null)
        assert.deepEqual(await h.store.putObservationIf(nodeObservation('cp-1'), 'some version', []), { stored: false })
        const newer = nodeObservation('cp-1', { pods: [] })
        const result = await h.store.putObservationIf(newer, null, [newEvent('cp-1')])
        assert.ok(result.stored && result.events.length === 1)
        assert.deepEqual((await h.store.getObservations(['cp-1'])).get('cp-1'), newer)
      } finally {
        client.destroy()
        await h.cleanup()
      }
    })

    it('a losing putObservationIf of a chunked observation deletes its chunks; the winner keeps its own', { timeout: 60_000 }, async () => {
      const h = await freshStore()
      const client = (await local()).client()
      try {
        const large = (marker: string) => nodeObservation('cp-1', { findings: [{ code: 'STRAY_FILE', fileName: 'x.bak', message: marker.repeat(INLINE_MAX_BYTES + 1000) }] })
        await h.store.putObservation(nodeObservation('cp-1'))
        const version = (await h.store.getObservationsIfChanged(['cp-1'], new Map())).get('cp-1')!.version!
        const contenders = ['a', 'b', 'c'].map(large)
        const results = await Promise.all(contenders.map((obs) => h.store.putObservationIf(obs, version, [newEvent('cp-1')])))
        const winner = results.findIndex((r) => r.stored)
        assert.equal(results.filter((r) => r.stored).length, 1)
        assert.deepEqual((await h.store.getObservations(['cp-1'])).get('cp-1'), contenders[winner])
        assert.equal(await countItems(client, h.table, 'NODE#cp-1', 'CHUNK#'), 1, "one chunk: the winner's")
        assert.equal(await countItems(client, h.table, 'EVENTS', '0'), 1, "the winner's event only")
      } finally {
        client.destroy()
        await h.cleanup()
      }
    })

    it('pruneEvents deletes the onceKey markers of the events it deletes, and no others', async () => {
      const h = await freshStore()
      const client = (await local()).client()
      try {
        await h.store.appendEvents([
          newEvent('cp-1', { at: '2024-01-01T00:00:00.000Z', onceKey: 'old' }),
          newEvent('cp-1', { at: '2024-01-01T00:00:00.000Z' }),
          newEvent('cp-1', { at: '2024-06-01T00:00:00.000Z', onceKey: 'new' }),
        ])
        assert.equal(await countItems(client, h.table, 'EVENT_ONCE', ''), 2)
        assert.equal(await h.store.pruneEvents('2024-03-01T00:00:00.000Z'), 2)
        assert.equal(await countItems(client, h.table, 'EVENT_ONCE', ''), 1)
        assert.equal(await countItems(client, h.table, 'EVENTS', '0'), 1)
      } finally {
        client.destroy()
        await h.cleanup()
      }
    })

    it('a filtered listEvents reads a bounded number of pages, and answers what it found', async () => {
      const queries: number[] = []
      const h = await freshStore({
        pageSize: 2,
        tweak: (client) =>
          client.middlewareStack.add(
            (next, context) => async (args) => {
              if (context.commandName === 'QueryCommand') queries.push(1)
              return next(args)
            },
            { step: 'initialize', name: 'countQueries' },
          ),
      })
      try {
        await h.store.appendEvents([newEvent('rare', { message: 'oldest' })])
        for (let i = 0; i < 4; i++) await h.store.appendEvents(Array.from({ length: 50 }, () => newEvent('common')))
        await h.store.appendEvents([newEvent('rare', { message: 'newest' })])
        queries.length = 0
        // 202 events in pages of 2: the newest is on the first page, the oldest past the 50th.
        assert.deepEqual((await h.store.listEvents({ node: 'rare', limit: 10, order: 'newest' })).map((e) => e.message), ['newest'])
        assert.equal(queries.length, 50)
        // Unfiltered, a listing reads only as many pages as it needs.
        queries.length = 0
        assert.equal((await h.store.listEvents({ limit: 5, order: 'oldest' })).length, 5)
        assert.equal(queries.length, 3)
      } finally {
        await h.cleanup()
      }
    })
  })

  it('pages audit and nodes through many small pages', async () => {
    const h = await freshStore({ pageSize: 2 })
    try {
      for (let i = 0; i < 25; i++) await h.store.createNode(nodeRecord(`n-${String(i).padStart(2, '0')}`))
      assert.deepEqual(
        (await h.store.listNodes()).map((n) => n.name),
        Array.from({ length: 25 }, (_, i) => `n-${String(i).padStart(2, '0')}`),
      )
      for (let i = 0; i < 25; i++) await h.store.appendAudit(auditEvent(new Date(Date.UTC(2024, 0, 1, 0, 0, i)).toISOString(), { message: `e${i}` }))
      assert.deepEqual(
        (await h.store.listAudit({ limit: 11 })).map((e) => e.message),
        Array.from({ length: 11 }, (_, i) => `e${24 - i}`),
      )
    } finally {
      await h.cleanup()
    }
  })

  it('serverless.yml declares the same table as tableDefinition, with point-in-time recovery on', async () => {
    const text = await readFile(new URL('../../serverless.yml', import.meta.url), 'utf8')
    const doc = parseYaml(text) as { resources: { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> } }
    const table = Object.values(doc.resources.Resources).find((r) => r.Type === 'AWS::DynamoDB::Table')
    assert.ok(table, 'a DynamoDB table resource')
    const wanted = tableDefinition('x')
    const props = table.Properties
    assert.equal(props.BillingMode, wanted.BillingMode)
    assert.deepEqual(props.KeySchema, wanted.KeySchema)
    assert.deepEqual(props.AttributeDefinitions, wanted.AttributeDefinitions)
    assert.deepEqual(props.GlobalSecondaryIndexes, wanted.GlobalSecondaryIndexes)
    assert.deepEqual(props.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true })
  })
})
