// The DynamoDB Store, for serverless and for several instances sharing one
// state. One table (layout in dynamodb-table.ts), no transactions: every
// compare-and-swap is one conditional write.
//
// Revision numbers. Item REV#...#<n> is the truth: number n belongs to whoever
// created that item, with a put conditioned on attribute_not_exists, and n is
// only ever tried once n-1 exists, so a key's numbers are always 1..N with no
// gap. "The newest is E" is then: item E exists (or E = 0) and item E+1 does
// not, which the put of E+1 itself checks. The HEAD item holds the newest
// number as a hint, advanced after each append, so that the newest revisions
// of many keys can be read with BatchGetItem instead of one Query per key. A
// head can lag (a crash between the two writes, or a reader between them), so
// readers also ask for item head+1; when it exists they fall back to a Query
// for that key and repair the head. Readers therefore never miss a revision
// whose append has resolved.
//
// Values larger than an item (manifests up to the kubelet's 10 MB,
// observations) are split into chunk items (dynamodb-chunks.ts).
//
// Event ids become visible in increasing order: an id is only ever visible
// after every smaller one is, so a reader tailing listEvents after the last id
// it saw (the service's subscriber tail) misses nothing. SQLite gets this from
// assigning and committing an id in one step; here an id belongs to the event
// whose item claimed it, with a put conditioned on attribute_not_exists (no
// counter), and an append only tries id n once it knows that n-1 exists: it
// read n-1 as the newest id, or stored n-1 itself, or failed to claim n-1
// because another append had. So every id is written after its predecessor,
// and the ids are 1..N without gaps (a crash or failed put claims nothing).
// Within one instance appends run one at a time, queued (those that queued
// while one ran go together, under one read of the newest id), so that the
// instance never puts n+1 before its own n is stored; across instances the
// condition makes each id unique, and a collision moves on to the next id,
// re-reading the newest every few, giving up after MAX_EVENT_PROBES in a row.
// The newest id is read with a consistent Query of the partition's last two
// items: the newest event, and the PRUNED item, which sorts after every id
// and holds the highest id pruneEvents has deleted. pruneEvents records that
// before deleting, so the newest id known never goes down and an id is never
// handed out again. (Not quite never: an event pruned between an append's
// read of the newest id and its put, one already older than the prune bound
// when it was appended, can have its id taken again.) The event partition
// takes some 1,000 writes a second; one instance appends one event per round
// trip.
//
// A put whose answer was lost and that the SDK sent again fails its own
// condition; the event's random claim token, stored with it, tells that retry
// that the id is its own, so it does not store the event a second time.
//
// An event with a onceKey first claims its key with a conditional put of a
// marker item, and is skipped when the marker exists. The marker goes first:
// a crash (or a failed put) between the two loses the event, and never stores
// it twice.

import { randomUUID } from 'node:crypto'
import { ConditionalCheckFailedException, DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb'
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { ServiceError } from '../errors.ts'
import { requireCount } from './arguments.ts'
import { auditCursorBound, newAuditId, pickAuditFields } from './audit-id.ts'
import { canonicalEventInstant, eventIdBound, newEventFields, storedEvent } from './event-fields.ts'
import { deleteBlob, isBlobRef, readBlobs, storeText, type BlobRef, type StoredText } from './dynamodb-chunks.ts'
import { DEFAULT_RETRY, DynamoIo, itemKeyString, type Item, type ItemKey, type RetryPolicy } from './dynamodb-io.ts'
import { AUDIT_BY_NODE_INDEX, AUDIT_NODE_ATTRIBUTE, keys } from './dynamodb-table.ts'
import { podKeyString, REVISION_ACTIONS } from '../domain.ts'
import type { AuditEvent, EventRecord, EventType, JumpHostRecord, Label, NewAuditEvent, NewEvent, NewRevision, NodeFacts, NodeKind, NodeObservation, NodeRecord, PodKey, RevisionAction, RevisionRecord, WebhookRecord } from '../domain.ts'
import type { AuditQuery, ConditionalObservationResult, EventQuery, Store, StoredObservation, WebhookDeliveryOutcome } from './store.ts'
import { definedFacts, LEGACY_DISCOVER_PATH, nodeFromColumns, nodeToColumns } from './node-columns.ts'

export interface DynamoStoreOptions {
  table: string
  /** A client to use as is (tests); otherwise one is made from region and endpoint. */
  client?: DynamoDBClient
  /** Defaults to the SDK's own lookup (AWS_REGION). */
  region?: string
  /** DYNAMODB_ENDPOINT: a local DynamoDB (dynalite, DynamoDB Local). */
  endpoint?: string
  /** Items per Query page; tests set it small to cross page boundaries. */
  pageSize?: number
  retry?: RetryPolicy
  /** The time recorded as storedAt of observations. */
  clock?: () => Date
}

/** Collisions tolerated by one append without expectedLatest before it gives up. */
const MAX_APPEND_ATTEMPTS = 1000
/** Re-read the head after this many collisions in a row instead of probing one by one. */
const PROBES_BEFORE_HEAD_REREAD = 4
/** Ids one event tries in a row, all taken by other instances' appends, before its append gives up. */
const MAX_EVENT_PROBES = 1000
/** The highest event id: the largest safe integer. */
const MAX_EVENT_ID = Number.MAX_SAFE_INTEGER
/** Reads of a blob that a concurrent putObservation replaced (and deleted) under the reader. */
const BLOB_READ_ATTEMPTS = 3
/** Keys whose head lags read by Query, this many at once. */
const FALLBACK_QUERY_CONCURRENCY = 16
/** onceKey markers claimed at once by one append. */
const ONCE_KEY_CONCURRENCY = 16
/**
 * Pages (of up to 1 MB, some thousands of events each) a filtered listEvents
 * reads at most. Every node's events share one partition, so a node or type
 * that is rare there could otherwise make one call read every event stored;
 * past this bound the answer is what was found, fewer than limit (possibly
 * none) although older matches may exist. An index per node would lift the
 * bound, at the cost of another index on the table.
 */
const LIST_EVENTS_MAX_PAGES = 50
/**
 * Events one pruneEvents call deletes at most, and pages it reads to find
 * them (the same bound as listEvents'); the caller calls again until 0.
 */
const PRUNE_MAX_EVENTS = 1000
const PRUNE_MAX_PAGES = LIST_EVENTS_MAX_PAGES

const isConditionFailure = (err: unknown): boolean =>
  err instanceof ConditionalCheckFailedException || (err instanceof Error && err.name === 'ConditionalCheckFailedException')

const nullableString = (v: unknown): string | null => (typeof v === 'string' ? v : null)

/** An append waiting for this instance's appends before it to end. */
interface QueuedAppend {
  events: NewEvent[]
  resolve: (records: EventRecord[]) => void
  reject: (err: unknown) => void
}

export class DynamoStore implements Store {
  private readonly io: DynamoIo
  private readonly doc: DynamoDBDocumentClient
  private readonly ownClient: DynamoDBClient | null
  private readonly clock: () => Date
  /** This instance's appends of events, in the order they will run (see the top of the file). */
  private readonly queuedAppends: QueuedAppend[] = []
  private appending = false
  /** The highest event id this instance knows to exist (0: none), so that its own ids only ever increase. */
  private knownEventId = 0

  constructor(opts: DynamoStoreOptions) {
    const config: DynamoDBClientConfig = {}
    if (opts.region !== undefined) config.region = opts.region
    if (opts.endpoint !== undefined) config.endpoint = opts.endpoint
    const client = opts.client ?? new DynamoDBClient(config)
    this.ownClient = opts.client ? null : client
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } })
    this.io = new DynamoIo(this.doc, opts.table, opts.retry ?? DEFAULT_RETRY, opts.pageSize)
    this.clock = opts.clock ?? (() => new Date())
  }

  private get table(): string {
    return this.io.table
  }

  async ping(): Promise<void> {
    // Any read proves the table answers; a key that never exists costs the least.
    await this.doc.send(new GetCommand({ TableName: this.table, Key: { pk: 'PING', sk: 'PING' } }))
  }

  /** Idempotent. A client passed in options belongs to the caller and stays open. */
  async close(): Promise<void> {
    this.ownClient?.destroy()
  }

  // ---- nodes

  async listNodes(): Promise<NodeRecord[]> {
    const items = await this.io.queryAll({
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': keys.nodesPartition },
      ConsistentRead: true,
    })
    return items.map(nodeFromItem)
  }

  async getNode(name: string): Promise<NodeRecord | null> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: keys.node(name), ConsistentRead: true }))
    return Item ? nodeFromItem(Item) : null
  }

  async createNode(node: NodeRecord): Promise<void> {
    try {
      await this.doc.send(new PutCommand({ TableName: this.table, Item: nodeItem(node), ConditionExpression: 'attribute_not_exists(pk)' }))
    } catch (err) {
      if (isConditionFailure(err)) throw new ServiceError('ALREADY_EXISTS', `node ${node.name} already exists`, ['name'])
      throw err
    }
  }

  async updateNode(node: NodeRecord): Promise<void> {
    // What an admin sets, and nothing the service learnt from the node (node-columns.ts).
    const { name: _name, discoveredStaticPodPath: _discovered, observedHostKeyFingerprint: _observed, ...set } = nodeToColumns(node)
    const names = Object.fromEntries(Object.keys(set).map((k) => [`#${k}`, k]))
    const values = Object.fromEntries(Object.entries(set).map(([k, v]) => [`:${k}`, v]))
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.node(node.name),
          UpdateExpression: `SET ${Object.keys(set).map((k) => `#${k} = :${k}`).join(', ')}`,
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      )
    } catch (err) {
      if (isConditionFailure(err)) throw new ServiceError('NOT_FOUND', `node ${node.name} not found`, ['name'])
      throw err
    }
  }

  async pinNodeHostKey(name: string, fingerprint: string, at: string): Promise<string | null> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.node(name),
          UpdateExpression: 'SET hostKeyFingerprint = :fingerprint, updatedAt = :at',
          ConditionExpression: 'attribute_exists(pk) AND #kind = :ssh AND (attribute_not_exists(hostKeyFingerprint) OR hostKeyFingerprint = :null)',
          ExpressionAttributeNames: { '#kind': 'kind' },
          ExpressionAttributeValues: { ':fingerprint': fingerprint, ':at': at, ':ssh': 'ssh', ':null': null },
        }),
      )
      return fingerprint
    } catch (err) {
      if (!isConditionFailure(err)) throw err
    }
    // Pinned already (or not an SSH node): what it is pinned to now.
    const node = await this.getNode(name)
    return node?.kind === 'ssh' ? node.ssh.hostKeyFingerprint : null
  }

  async recordNodeFacts(name: string, facts: NodeFacts): Promise<void> {
    const { observedHostKeyFingerprint, discoveredStaticPodPath } = definedFacts(facts)
    // One update per fact: each has its own condition (a discovered path only while no path is given).
    const updates: Array<{ set: string; value: string; condition: string; values?: Record<string, unknown> }> = []
    if (observedHostKeyFingerprint !== undefined) updates.push({ set: 'observedHostKeyFingerprint', value: observedHostKeyFingerprint, condition: '#kind = :ssh' })
    if (discoveredStaticPodPath !== undefined) {
      updates.push({
        set: 'discoveredStaticPodPath',
        value: discoveredStaticPodPath,
        // Items written before staticPodPathGiven existed: see nodeFromItem.
        condition: '#kind = :ssh AND (staticPodPathGiven = :false OR (attribute_not_exists(staticPodPathGiven) AND staticPodPath = :kubeadmPath))',
        values: { ':false': false, ':kubeadmPath': LEGACY_DISCOVER_PATH },
      })
    }
    for (const u of updates) {
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: keys.node(name),
            UpdateExpression: `SET ${u.set} = :value`,
            ConditionExpression: `attribute_exists(pk) AND ${u.condition}`,
            ExpressionAttributeNames: { '#kind': 'kind' },
            ExpressionAttributeValues: { ':value': u.value, ':ssh': 'ssh', ...u.values },
          }),
        )
      } catch (err) {
        if (!isConditionFailure(err)) throw err
      }
    }
  }

  async deleteNode(name: string): Promise<boolean> {
    // What the node owns goes first, its record last: if this is cut short,
    // the node is still registered and deleting it again finishes the job,
    // rather than a new node of the same name inheriting old revisions.
    const owned = await this.io.queryAll({
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': keys.nodePartition(name) },
      ProjectionExpression: 'pk, sk',
      ConsistentRead: true,
    })
    await this.io.batchWrite(owned.map((item) => ({ delete: item as ItemKey })))
    const { Attributes } = await this.doc.send(new DeleteCommand({ TableName: this.table, Key: keys.node(name), ReturnValues: 'ALL_OLD' }))
    return Attributes !== undefined
  }

  // ---- jump hosts

  async listJumpHosts(): Promise<JumpHostRecord[]> {
    const items = await this.io.queryAll({
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': keys.jumpHostsPartition },
      ConsistentRead: true,
    })
    return items.map(jumpHostFromItem)
  }

  async getJumpHost(name: string): Promise<JumpHostRecord | null> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: keys.jumpHost(name), ConsistentRead: true }))
    return Item ? jumpHostFromItem(Item) : null
  }

  async putJumpHost(jumpHost: JumpHostRecord): Promise<JumpHostRecord> {
    // One update creates or replaces what an admin sets; the observed key (a fact) is not among them.
    const set = { name: jumpHost.name, host: jumpHost.host, port: jumpHost.port, user: jumpHost.user, hostKeyFingerprint: jumpHost.hostKeyFingerprint, via: jumpHost.via }
    const { Attributes } = await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: keys.jumpHost(jumpHost.name),
        UpdateExpression: `SET ${Object.keys(set).map((k) => `#${k} = :${k}`).join(', ')}`,
        ExpressionAttributeNames: Object.fromEntries(Object.keys(set).map((k) => [`#${k}`, k])),
        ExpressionAttributeValues: Object.fromEntries(Object.entries(set).map(([k, v]) => [`:${k}`, v])),
        ReturnValues: 'ALL_NEW',
      }),
    )
    if (!Attributes) throw new Error(`jump host ${jumpHost.name}: the update returned no item`)
    return jumpHostFromItem(Attributes)
  }

  async recordJumpHostFacts(name: string, facts: { observedHostKeyFingerprint: string }): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.jumpHost(name),
          UpdateExpression: 'SET observedHostKeyFingerprint = :value',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':value': facts.observedHostKeyFingerprint },
        }),
      )
    } catch (err) {
      if (!isConditionFailure(err)) throw err
    }
  }

  async deleteJumpHost(name: string): Promise<boolean> {
    const { Attributes } = await this.doc.send(new DeleteCommand({ TableName: this.table, Key: keys.jumpHost(name), ReturnValues: 'ALL_OLD' }))
    return Attributes !== undefined
  }

  // ---- revisions

  async appendRevision(rev: NewRevision, expectedLatest?: number): Promise<RevisionRecord> {
    if (expectedLatest !== undefined) requireCount(expectedLatest, 'expectedLatest')
    const partition = keys.nodePartition(rev.node)
    const manifest = storeText(partition, rev.manifest)
    if ('blob' in manifest) await this.io.batchWrite(manifest.chunkItems.map((put) => ({ put })))
    let record: RevisionRecord
    try {
      record =
        expectedLatest === undefined ? await this.appendAtNextNumber(rev, manifest) : await this.appendAfter(rev, manifest, expectedLatest)
    } catch (err) {
      // This append owns no revision: its chunks are orphans.
      if ('blob' in manifest) await deleteBlob(this.io, partition, manifest.blob).catch(() => undefined)
      throw err
    }
    await this.advanceHead(rev, record.revision)
    return record
  }

  /** Appends as number expectedLatest + 1, or CONFLICT if expectedLatest is not the newest. */
  private async appendAfter(rev: NewRevision, manifest: StoredText, expectedLatest: number): Promise<RevisionRecord> {
    const conflict = async () => {
      const latest = (await this.newestRevisions([rev], 1)).get(podKeyString(rev))?.[0]?.revision ?? 0
      return new ServiceError(
        'CONFLICT',
        `${podKeyString(rev)}: newest revision is ${latest === 0 ? 'none' : latest}, expected ${expectedLatest === 0 ? 'none' : expectedLatest}`,
      )
    }
    if (expectedLatest > 0) {
      const key = keys.revision(rev.node, rev.namespace, rev.name, expectedLatest)
      const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true, ProjectionExpression: 'pk' }))
      // Numbers have no gaps, so without item E the newest is below E.
      if (!Item) throw await conflict()
    }
    const record = await this.tryPutRevision(rev, manifest, expectedLatest + 1)
    if (!record) throw await conflict()
    return record
  }

  /** Appends as the first free number after the head, probing upwards past numbers others took. */
  private async appendAtNextNumber(rev: NewRevision, manifest: StoredText): Promise<RevisionRecord> {
    let candidate = (await this.headNumber(rev)) + 1
    for (let attempt = 1; attempt <= MAX_APPEND_ATTEMPTS; attempt++) {
      const record = await this.tryPutRevision(rev, manifest, candidate)
      if (record) return record
      candidate = attempt % PROBES_BEFORE_HEAD_REREAD === 0 ? Math.max(candidate, await this.headNumber(rev)) + 1 : candidate + 1
    }
    throw new ServiceError('CONFLICT', `${podKeyString(rev)}: gave up after ${MAX_APPEND_ATTEMPTS} concurrent appends took every number tried`)
  }

  /** Claims `revision` for this append; null when another append has it. */
  private async tryPutRevision(rev: NewRevision, manifest: StoredText, revision: number): Promise<RevisionRecord | null> {
    const record: RevisionRecord = {
      node: rev.node,
      namespace: rev.namespace,
      name: rev.name,
      revision,
      hash: rev.hash,
      manifest: rev.manifest,
      fileName: rev.fileName,
      action: rev.action,
      actor: rev.actor,
      recordedAt: rev.recordedAt,
    }
    const { manifest: _text, ...fields } = record
    const item: Item = {
      ...keys.revision(rev.node, rev.namespace, rev.name, revision),
      ...fields,
      ...('inline' in manifest ? { manifest: manifest.inline } : { manifestBlob: manifest.blob }),
    }
    try {
      await this.doc.send(new PutCommand({ TableName: this.table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }))
      return record
    } catch (err) {
      if (isConditionFailure(err)) return null
      throw err
    }
  }

  private async headNumber(key: PodKey): Promise<number> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: keys.head(key.node, key.namespace, key.name), ConsistentRead: true }),
    )
    return typeof Item?.latest === 'number' ? Item.latest : 0
  }

  /** Moves the head up to `revision`; a head already there or past it stays. */
  private async advanceHead(key: PodKey, revision: number): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.head(key.node, key.namespace, key.name),
          UpdateExpression: 'SET latest = :n',
          ConditionExpression: 'attribute_not_exists(latest) OR latest < :n',
          ExpressionAttributeValues: { ':n': revision },
        }),
      )
    } catch (err) {
      if (!isConditionFailure(err)) throw err
    }
  }

  async listRevisions(keyList: PodKey[], limit: number): Promise<Map<string, RevisionRecord[]>> {
    requireCount(limit, 'limit')
    if (keyList.length === 0 || limit === 0) return new Map()
    return this.newestRevisions(keyList, limit)
  }

  async getRevision(key: PodKey, revision: number): Promise<RevisionRecord | null> {
    if (!Number.isSafeInteger(revision) || revision < 1) return null
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: keys.revision(key.node, key.namespace, key.name, revision), ConsistentRead: true }),
    )
    if (!Item) return null
    const [record] = await this.withManifests([Item])
    return record ?? null
  }

  async latestRevisions(keyList: PodKey[]): Promise<Map<string, RevisionRecord>> {
    const byKey = new Map<string, RevisionRecord>()
    for (const [key, records] of await this.newestRevisions(keyList, 1)) byKey.set(key, records[0]!)
    return byKey
  }

  /**
   * Up to `limit` newest revisions of each key, newest first: heads in one
   * batch, then the revisions the heads point at (and one past, to catch a
   * lagging head) in another. Keys without revisions are absent.
   */
  private async newestRevisions(keyList: PodKey[], limit: number): Promise<Map<string, RevisionRecord[]>> {
    const unique = [...new Map(keyList.map((k) => [podKeyString(k), { node: k.node, namespace: k.namespace, name: k.name }])).values()]
    if (unique.length === 0) return new Map()
    const heads = await this.io.batchGet(unique.map((k) => keys.head(k.node, k.namespace, k.name)))
    const headOf = (k: PodKey): number => {
      const latest = heads.get(itemKeyString(keys.head(k.node, k.namespace, k.name)))?.latest
      return typeof latest === 'number' ? latest : 0
    }
    const wanted: ItemKey[] = []
    for (const k of unique) {
      const head = headOf(k)
      for (let n = head + 1; n >= Math.max(1, head - limit + 1); n--) wanted.push(keys.revision(k.node, k.namespace, k.name, n))
    }
    const found = await this.io.batchGet(wanted)

    const itemsByKey = new Map<string, Item[]>()
    const lagging: PodKey[] = []
    for (const k of unique) {
      const head = headOf(k)
      const at = (n: number) => found.get(itemKeyString(keys.revision(k.node, k.namespace, k.name, n)))
      const items: Item[] = []
      for (let n = head; n >= Math.max(1, head - limit + 1); n--) {
        const item = at(n)
        if (item) items.push(item)
      }
      // A revision past the head, or a hole below it (a node deleted while it was appended to): ask the key itself.
      if (at(head + 1) || items.length !== Math.min(head, limit)) lagging.push(k)
      else if (items.length > 0) itemsByKey.set(podKeyString(k), items)
    }
    await mapLimited(lagging, FALLBACK_QUERY_CONCURRENCY, async (k) => {
      const items = await this.io.queryAll(
        {
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': keys.nodePartition(k.node), ':prefix': keys.revisionPrefix(k.namespace, k.name) },
          ScanIndexForward: false,
          ConsistentRead: true,
        },
        limit,
      )
      if (items.length === 0) return
      itemsByKey.set(podKeyString(k), items)
      // Best effort: the next reader is right either way, only slower.
      await this.advanceHead(k, Number(items[0]!.revision)).catch(() => undefined)
    })

    const all = [...itemsByKey.values()].flat()
    const records = await this.withManifests(all)
    const byKey = new Map<string, RevisionRecord[]>()
    for (const record of records) {
      const key = podKeyString(record)
      const list = byKey.get(key)
      if (list) list.push(record)
      else byKey.set(key, [record])
    }
    return byKey
  }

  /** Revision items as records, chunked manifests read back whole (all of them in one batch). */
  private async withManifests(items: Item[]): Promise<RevisionRecord[]> {
    const chunked = items.filter((item) => isBlobRef(item.manifestBlob))
    const texts = await readBlobs(
      this.io,
      chunked.map((item) => ({ partition: String(item.pk), blob: item.manifestBlob as BlobRef })),
    )
    const blobText = new Map(chunked.map((item, i) => [item, texts[i]]))
    return items.map((item) => {
      let manifest = item.manifest
      if (blobText.has(item)) {
        manifest = blobText.get(item)
        // Revision chunks are written before their revision and never replaced.
        if (manifest === null) throw new Error(`revision ${String(item.sk)} of ${String(item.pk)}: a chunk of its manifest is missing`)
      }
      return revisionFromItem(item, typeof manifest === 'string' ? manifest : '')
    })
  }

  // ---- observations

  async putObservation(obs: NodeObservation): Promise<void> {
    await this.writeObservation(obs)
  }

  /**
   * Writes the observation with a new version, its chunks first, under the
   * condition when one is given; false when the condition failed (and its
   * chunks are deleted again).
   */
  private async writeObservation(obs: NodeObservation, condition?: { expression: string; values?: Record<string, unknown> }): Promise<boolean> {
    const partition = keys.nodePartition(obs.node)
    const body = storeText(partition, JSON.stringify(obs))
    if ('blob' in body) await this.io.batchWrite(body.chunkItems.map((put) => ({ put })))
    const item: Item = {
      ...keys.observation(obs.node),
      node: obs.node,
      observedAt: obs.observedAt,
      storedAt: this.clock().toISOString(),
      version: randomUUID(),
      ...('inline' in body ? { body: body.inline } : { bodyBlob: body.blob }),
    }
    let previous: Item | undefined
    try {
      const put = await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: item,
          ReturnValues: 'ALL_OLD',
          ...(condition && { ConditionExpression: condition.expression, ExpressionAttributeValues: condition.values }),
        }),
      )
      previous = put.Attributes
    } catch (err) {
      if (!isConditionFailure(err)) throw err
      // Nothing refers to this write's chunks. Best effort: deleteNode removes orphans too.
      if ('blob' in body) await deleteBlob(this.io, partition, body.blob).catch(() => undefined)
      return false
    }
    // The replaced observation's chunks are garbage now; a reader holding its
    // reference retries with the new one (getObservations).
    if (previous && isBlobRef(previous.bodyBlob)) await deleteBlob(this.io, partition, previous.bodyBlob)
    return true
  }

  async getObservations(nodes: string[]): Promise<Map<string, NodeObservation>> {
    const byNode = new Map<string, NodeObservation>()
    for (const [node, { observation }] of await this.getObservationsIfChanged(nodes, new Map())) {
      if (observation) byNode.set(node, observation)
    }
    return byNode
  }

  async getObservationsIfChanged(nodes: string[], known: ReadonlyMap<string, string>): Promise<Map<string, StoredObservation>> {
    const byNode = new Map<string, StoredObservation>()
    let pending = [...new Set(nodes)]
    for (let attempt = 1; pending.length > 0; attempt++) {
      const found = await this.io.batchGet(pending.map((n) => keys.observation(n)))
      const changed: Item[] = []
      for (const item of found.values()) {
        const version = nullableString(item.version)
        // The caller's copy is current: neither its chunks nor its text need reading.
        if (version !== null && version === known.get(String(item.node))) byNode.set(String(item.node), { version, observation: null })
        else changed.push(item)
      }
      const chunked = changed.filter((item) => isBlobRef(item.bodyBlob))
      const texts = await readBlobs(
        this.io,
        chunked.map((item) => ({ partition: String(item.pk), blob: item.bodyBlob as BlobRef })),
      )
      const blobText = new Map(chunked.map((item, i) => [item, texts[i]]))
      const replacedMeanwhile: string[] = []
      for (const item of changed) {
        const text = blobText.has(item) ? blobText.get(item) : item.body
        if (typeof text === 'string') byNode.set(String(item.node), { version: nullableString(item.version), observation: JSON.parse(text) as NodeObservation })
        else replacedMeanwhile.push(String(item.node))
      }
      if (replacedMeanwhile.length > 0 && attempt >= BLOB_READ_ATTEMPTS) {
        throw new Error(`observations of ${replacedMeanwhile.join(', ')} kept changing while being read`)
      }
      pending = replacedMeanwhile
    }
    return byNode
  }

  async putObservationIf(obs: NodeObservation, expectedVersion: string | null, events: readonly NewEvent[]): Promise<ConditionalObservationResult> {
    const fields = events.map(newEventFields)
    // attribute_not_exists covers both no item and one stored before versions existed.
    const stored = await this.writeObservation(
      obs,
      expectedVersion === null ? { expression: 'attribute_not_exists(version)' } : { expression: 'version = :expected', values: { ':expected': expectedVersion } },
    )
    if (!stored) return { stored: false }
    // A separate step, without a transaction: a crash between the write above
    // and this one loses these events. Accepted, because the observation that
    // holds the new state is stored: every instance now compares with it, so
    // the next transition is still recorded, once. Appending first instead
    // would record events for a write that may then lose the race: of
    // instances racing, each would record them.
    return { stored: true, events: await this.appendNewEvents(fields) }
  }

  async appendEvents(events: readonly NewEvent[]): Promise<EventRecord[]> {
    return this.appendNewEvents(events.map(newEventFields))
  }

  private async appendNewEvents(events: NewEvent[]): Promise<EventRecord[]> {
    const kept = await this.claimOnceKeys(events)
    if (kept.length === 0) return []
    return new Promise((resolve, reject) => {
      this.queuedAppends.push({ events: kept, resolve, reject })
      if (!this.appending) void this.runAppends()
    })
  }

  /**
   * Runs the queued appends one after another, until none is left: those
   * queued meanwhile together, after one read of the newest id, each event
   * at the first free id after the one before it.
   */
  private async runAppends(): Promise<void> {
    this.appending = true
    try {
      while (this.queuedAppends.length > 0) {
        const batch = this.queuedAppends.splice(0)
        let newest: number
        try {
          newest = Math.max(this.knownEventId, await this.newestEventId())
        } catch (err) {
          for (const append of batch) append.reject(err)
          continue
        }
        for (const append of batch) {
          try {
            const records: EventRecord[] = []
            for (const e of append.events) {
              const record = await this.putNextEvent(e, newest)
              newest = Number(record.id)
              records.push(record)
            }
            append.resolve(records)
          } catch (err) {
            // The events stored before the failure keep their ids; newest is one of them (or before them).
            append.reject(err)
          }
        }
        this.knownEventId = Math.max(this.knownEventId, newest)
      }
    } finally {
      this.appending = false
    }
  }

  /**
   * Stores the event at the first free id after `newest`, an id known to
   * exist (or 0), probing upwards past ids other instances took.
   */
  private async putNextEvent(e: NewEvent, newest: number): Promise<EventRecord> {
    const claim = randomUUID()
    let candidate = newest + 1
    for (let probe = 1; probe <= MAX_EVENT_PROBES; probe++) {
      const record = storedEvent(candidate, e)
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: { ...keys.event(candidate), ...record, onceKey: e.onceKey, claim },
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        )
        return record
      } catch (err) {
        if (!isConditionFailure(err)) throw err
        if (await this.claimedBy(err, candidate, claim)) return record
      }
      // Taken, so it exists: the next id may be tried, or the newest if others are ahead.
      candidate = probe % PROBES_BEFORE_HEAD_REREAD === 0 ? Math.max(candidate, await this.newestEventId()) + 1 : candidate + 1
    }
    throw new Error(`appending an event: gave up after ${MAX_EVENT_PROBES} ids in a row were taken by concurrent appends`)
  }

  /**
   * Whether the event at `id`, whose put failed its condition, is the one
   * this put stored: the SDK sent it more than once, and an attempt whose
   * answer was lost stored it.
   */
  private async claimedBy(err: unknown, id: number, claim: string): Promise<boolean> {
    // Unknown counts as maybe sent again.
    if ((err as { $metadata?: { attempts?: number } }).$metadata?.attempts === 1) return false
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: keys.event(id), ConsistentRead: true, ProjectionExpression: '#claim', ExpressionAttributeNames: { '#claim': 'claim' } }),
    )
    return Item?.claim === claim
  }

  /** The highest event id known to exist (0: none): the newest event's, or the highest pruned. */
  private async newestEventId(): Promise<number> {
    // PRUNED sorts after every id: the last two items are it and the newest event, or the two newest.
    const items = await this.io.queryAll(
      {
        KeyConditionExpression: 'pk = :pk AND sk <= :pruned',
        ExpressionAttributeValues: { ':pk': keys.eventsPartition, ':pruned': keys.eventsPruned.sk },
        ProjectionExpression: 'sk, #last',
        ExpressionAttributeNames: { '#last': 'last' },
        ScanIndexForward: false,
        ConsistentRead: true,
      },
      2,
    )
    let newest = 0
    for (const item of items) {
      const id = item.sk === keys.eventsPruned.sk ? Number(item.last) : Number(item.sk)
      if (!Number.isSafeInteger(id) || id < 0) throw new Error(`event item ${String(item.sk)} holds no event id`)
      newest = Math.max(newest, id)
    }
    return newest
  }

  /**
   * The events whose onceKey this append now holds (a key repeated within it:
   * the first), and those without one, in the order given. A key claimed by
   * an append that then fails stays claimed: its event is lost rather than
   * ever stored twice.
   */
  private async claimOnceKeys(events: NewEvent[]): Promise<NewEvent[]> {
    const seen = new Set<string>()
    const claimed = new Set<NewEvent>()
    const claims: NewEvent[] = []
    for (const e of events) {
      if (e.onceKey === undefined || seen.has(e.onceKey)) continue
      seen.add(e.onceKey)
      claims.push(e)
    }
    await mapLimited(claims, ONCE_KEY_CONCURRENCY, async (e) => {
      const onceKey = e.onceKey!
      try {
        await this.doc.send(new PutCommand({ TableName: this.table, Item: { ...keys.eventOnce(onceKey), onceKey }, ConditionExpression: 'attribute_not_exists(pk)' }))
        claimed.add(e)
      } catch (err) {
        if (!isConditionFailure(err)) throw err
      }
    })
    return events.filter((e) => e.onceKey === undefined || claimed.has(e))
  }

  async listEvents(query: EventQuery): Promise<EventRecord[]> {
    requireCount(query.limit, 'limit')
    const after = query.after === undefined ? undefined : eventIdBound(query.after, 'after')
    const before = query.before === undefined ? undefined : eventIdBound(query.before, 'before')
    if (query.limit === 0) return []
    // Always a range of ids: the PRUNED item sorts after them, and is no event.
    const low = after === undefined ? 1 : after + 1
    const high = before === undefined ? MAX_EVENT_ID : before - 1
    if (low > high) return []
    const values: Record<string, unknown> = { ':pk': keys.eventsPartition, ':low': keys.event(low).sk, ':high': keys.event(high).sk }
    const filters: string[] = []
    const names: Record<string, string> = {}
    if (query.node !== undefined) {
      filters.push('#node = :node')
      names['#node'] = 'node'
      values[':node'] = query.node
    }
    const types = [...new Set(query.types ?? [])]
    if (types.length > 0) {
      filters.push(`#type IN (${types.map((_, i) => `:type${i}`).join(', ')})`)
      names['#type'] = 'type'
      for (const [i, type] of types.entries()) values[`:type${i}`] = type
    }
    const input = {
      KeyConditionExpression: 'pk = :pk AND sk BETWEEN :low AND :high',
      ExpressionAttributeValues: values,
      ScanIndexForward: query.order === 'oldest',
      ConsistentRead: true,
    }
    const items =
      filters.length === 0
        ? await this.io.queryAll(input, query.limit)
        : await this.io.queryFiltered({ ...input, FilterExpression: filters.join(' AND '), ExpressionAttributeNames: names }, query.limit, LIST_EVENTS_MAX_PAGES)
    return items.map(eventFromItem)
  }

  async pruneEvents(before: string): Promise<number> {
    const bound = canonicalEventInstant(before, 'before')
    // Oldest first: ids follow the time events were stored, so the ones to
    // forget are at the start of the partition.
    const old = await this.io.queryFiltered(
      {
        KeyConditionExpression: 'pk = :pk AND sk BETWEEN :low AND :high',
        FilterExpression: '#at < :before',
        ProjectionExpression: 'pk, sk, onceKey',
        ExpressionAttributeNames: { '#at': 'at' },
        ExpressionAttributeValues: { ':pk': keys.eventsPartition, ':low': keys.event(1).sk, ':high': keys.event(MAX_EVENT_ID).sk, ':before': bound },
        ScanIndexForward: true,
        ConsistentRead: true,
      },
      PRUNE_MAX_EVENTS,
      PRUNE_MAX_PAGES,
    )
    if (old.length === 0) return 0
    // Their ids stay taken (see the top of the file): the highest is recorded
    // before they go, so that the newest id known never goes down.
    await this.recordPrunedId(Math.max(...old.map((item) => Number(item.sk))))
    await this.io.batchWrite(old.map((item) => ({ delete: item as ItemKey })))
    // The onceKeys go with their events (as SQLite's once_key column does),
    // and after them: cut short in between, a key stays claimed, never free
    // while its event is kept.
    const markers = old.flatMap((item) => (typeof item.onceKey === 'string' ? [{ delete: keys.eventOnce(item.onceKey) }] : []))
    await this.io.batchWrite(markers)
    return old.length
  }

  /** Moves the PRUNED item's id up to `id`; one already there or past it stays. */
  private async recordPrunedId(id: number): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.eventsPruned,
          UpdateExpression: 'SET #last = :id',
          ConditionExpression: 'attribute_not_exists(#last) OR #last < :id',
          ExpressionAttributeNames: { '#last': 'last' },
          ExpressionAttributeValues: { ':id': id },
        }),
      )
    } catch (err) {
      if (!isConditionFailure(err)) throw err
    }
  }

  // ---- webhooks

  async createWebhook(webhook: WebhookRecord): Promise<void> {
    try {
      await this.doc.send(new PutCommand({ TableName: this.table, Item: webhookItem(webhook), ConditionExpression: 'attribute_not_exists(pk)' }))
    } catch (err) {
      if (isConditionFailure(err)) throw new ServiceError('ALREADY_EXISTS', `webhook ${webhook.id} already exists`, ['id'])
      throw err
    }
  }

  async listWebhooks(): Promise<WebhookRecord[]> {
    const items = await this.io.queryAll({
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': keys.webhooksPartition },
      ConsistentRead: true,
    })
    // Oldest first, ties by id in code unit order (as SQLite's ORDER BY created_at, id).
    const byAge = (a: WebhookRecord, b: WebhookRecord): number =>
      a.createdAt === b.createdAt ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.createdAt < b.createdAt ? -1 : 1
    return items.map(webhookFromItem).sort(byAge)
  }

  async deleteWebhook(id: string): Promise<boolean> {
    const { Attributes } = await this.doc.send(new DeleteCommand({ TableName: this.table, Key: keys.webhook(id), ReturnValues: 'ALL_OLD' }))
    return Attributes !== undefined
  }

  async recordWebhookDelivery(id: string, outcome: WebhookDeliveryOutcome): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.webhook(id),
          UpdateExpression: `SET lastDeliveryAt = :at, lastResult = :result${outcome.gaveUp ? ' ADD failedDeliveries :one' : ''}`,
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':at': outcome.at, ':result': outcome.result, ...(outcome.gaveUp && { ':one': 1 }) },
        }),
      )
    } catch (err) {
      if (!isConditionFailure(err)) throw err
    }
  }

  // ---- audit

  async appendAudit(event: NewAuditEvent): Promise<AuditEvent> {
    // A repeated id would need the same millisecond, counter and 40 random bits; retry rather than fail.
    for (let attempt = 1; ; attempt++) {
      const stored: AuditEvent = { ...pickAuditFields(event), id: newAuditId(event.at) }
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: { ...keys.audit(stored.id), ...stored, [AUDIT_NODE_ATTRIBUTE]: stored.node ?? undefined },
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        )
        return stored
      } catch (err) {
        if (!isConditionFailure(err) || attempt >= 3) throw err
      }
    }
  }

  async listAudit(query: AuditQuery): Promise<AuditEvent[]> {
    requireCount(query.limit, 'limit')
    if (query.limit === 0) return []
    const bound = query.before === undefined ? undefined : auditCursorBound(query.before)
    const byNode = query.node !== undefined
    const values: Record<string, string> = { ':p': byNode ? query.node! : keys.auditPartition }
    if (bound !== undefined) values[':bound'] = bound
    const items = await this.io.queryAll(
      {
        ...(byNode ? { IndexName: AUDIT_BY_NODE_INDEX } : { ConsistentRead: true }),
        KeyConditionExpression: `${byNode ? AUDIT_NODE_ATTRIBUTE : 'pk'} = :p${bound === undefined ? '' : ' AND sk < :bound'}`,
        ExpressionAttributeValues: values,
        ScanIndexForward: false,
      },
      query.limit,
    )
    return items.map(auditFromItem)
  }
}

// ---- item <-> record

function nodeItem(node: NodeRecord): Item {
  return { ...keys.node(node.name), ...nodeToColumns(node) }
}

function nodeFromItem(item: Item): NodeRecord {
  const kind = item.kind as NodeKind
  const staticPodPath = String(item.staticPodPath)
  return nodeFromColumns({
    name: String(item.name),
    kind,
    host: String(item.host ?? ''),
    port: Number(item.port ?? 0),
    user: String(item.user ?? ''),
    // Items written before these existed: root, directly.
    privilege: item.privilege === 'SUDO' ? 'SUDO' : 'NONE',
    sftpServer: nullableString(item.sftpServer),
    via: nullableString(item.via),
    staticPodPath,
    staticPodPathGiven: typeof item.staticPodPathGiven === 'boolean' ? item.staticPodPathGiven : !(kind === 'ssh' && staticPodPath === LEGACY_DISCOVER_PATH),
    discoveredStaticPodPath: nullableString(item.discoveredStaticPodPath),
    hostKeyFingerprint: nullableString(item.hostKeyFingerprint),
    observedHostKeyFingerprint: nullableString(item.observedHostKeyFingerprint),
    labels: Array.isArray(item.labels) ? (item.labels as Label[]) : [],
    createdAt: String(item.createdAt),
    updatedAt: String(item.updatedAt),
  })
}

function jumpHostFromItem(item: Item): JumpHostRecord {
  return {
    name: String(item.name),
    host: String(item.host),
    port: Number(item.port),
    user: String(item.user),
    hostKeyFingerprint: nullableString(item.hostKeyFingerprint),
    observedHostKeyFingerprint: nullableString(item.observedHostKeyFingerprint),
    via: nullableString(item.via),
  }
}

function revisionFromItem(item: Item, manifest: string): RevisionRecord {
  const action = String(item.action)
  if (!(REVISION_ACTIONS as readonly string[]).includes(action)) throw new Error(`revision ${String(item.sk)} has an unknown action ${action}`)
  return {
    node: String(item.node),
    namespace: String(item.namespace),
    name: String(item.name),
    revision: Number(item.revision),
    hash: String(item.hash),
    manifest,
    fileName: String(item.fileName),
    action: action as RevisionAction,
    actor: nullableString(item.actor),
    recordedAt: String(item.recordedAt),
  }
}


function eventFromItem(item: Item): EventRecord {
  return {
    id: String(item.id),
    at: String(item.at),
    type: String(item.type) as EventType,
    node: String(item.node),
    namespace: nullableString(item.namespace),
    name: nullableString(item.name),
    message: String(item.message),
    fromHash: nullableString(item.fromHash),
    toHash: nullableString(item.toHash),
    actor: nullableString(item.actor),
  }
}

function webhookItem(w: WebhookRecord): Item {
  return {
    ...keys.webhook(w.id),
    id: w.id,
    url: w.url,
    types: [...w.types],
    nodes: [...w.nodes],
    sealedSecret: w.sealedSecret,
    createdAt: w.createdAt,
    createdBy: w.createdBy,
    lastDeliveryAt: w.lastDeliveryAt,
    lastResult: w.lastResult,
    failedDeliveries: w.failedDeliveries,
  }
}

function webhookFromItem(item: Item): WebhookRecord {
  return {
    id: String(item.id),
    url: String(item.url),
    types: Array.isArray(item.types) ? (item.types as EventType[]) : [],
    nodes: Array.isArray(item.nodes) ? (item.nodes as string[]) : [],
    sealedSecret: String(item.sealedSecret),
    createdAt: String(item.createdAt),
    createdBy: String(item.createdBy),
    lastDeliveryAt: nullableString(item.lastDeliveryAt),
    lastResult: nullableString(item.lastResult),
    failedDeliveries: Number(item.failedDeliveries ?? 0),
  }
}

function auditFromItem(item: Item): AuditEvent {
  return {
    id: String(item.id),
    at: String(item.at),
    actor: String(item.actor),
    action: String(item.action),
    node: nullableString(item.node),
    target: nullableString(item.target),
    fromHash: nullableString(item.fromHash),
    toHash: nullableString(item.toHash),
    result: String(item.result),
    message: nullableString(item.message),
    dryRun: item.dryRun === true,
  }
}

async function mapLimited<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
}
