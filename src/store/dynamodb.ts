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

import { randomUUID } from 'node:crypto'
import { ConditionalCheckFailedException, DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb'
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { ServiceError } from '../errors.ts'
import { requireCount } from './arguments.ts'
import { auditCursorBound, newAuditId, pickAuditFields } from './audit-id.ts'
import { deleteBlob, isBlobRef, readBlobs, storeText, type BlobRef, type StoredText } from './dynamodb-chunks.ts'
import { DEFAULT_RETRY, DynamoIo, itemKeyString, type Item, type ItemKey, type RetryPolicy } from './dynamodb-io.ts'
import { AUDIT_BY_NODE_INDEX, AUDIT_NODE_ATTRIBUTE, keys } from './dynamodb-table.ts'
import { podKeyString, REVISION_ACTIONS } from '../domain.ts'
import type { AuditEvent, JumpHostRecord, Label, NewAuditEvent, NewRevision, NodeFacts, NodeKind, NodeObservation, NodeRecord, PodKey, RevisionAction, RevisionRecord } from '../domain.ts'
import type { AuditQuery, Store, StoredObservation } from './store.ts'
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
/** Reads of a blob that a concurrent putObservation replaced (and deleted) under the reader. */
const BLOB_READ_ATTEMPTS = 3
/** Keys whose head lags read by Query, this many at once. */
const FALLBACK_QUERY_CONCURRENCY = 16

const isConditionFailure = (err: unknown): boolean =>
  err instanceof ConditionalCheckFailedException || (err instanceof Error && err.name === 'ConditionalCheckFailedException')

const nullableString = (v: unknown): string | null => (typeof v === 'string' ? v : null)

export class DynamoStore implements Store {
  private readonly io: DynamoIo
  private readonly doc: DynamoDBDocumentClient
  private readonly ownClient: DynamoDBClient | null
  private readonly clock: () => Date

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
    const { Attributes: previous } = await this.doc.send(new PutCommand({ TableName: this.table, Item: item, ReturnValues: 'ALL_OLD' }))
    // The replaced observation's chunks are garbage now; a reader holding its
    // reference retries with the new one (getObservations).
    if (previous && isBlobRef(previous.bodyBlob)) await deleteBlob(this.io, partition, previous.bodyBlob)
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
