// The embedded Store: one SQLite file, safe to share between processes on one
// host. better-sqlite3 is synchronous: reads run at once and return a settled
// promise, which keeps the Store interface the same as the DynamoDB one's.
//
// Durability: every commit is fsynced before the write that made it resolves.
// In WAL mode synchronous = NORMAL alone survives a crash of this process
// (kill -9: the committed WAL frames are in the OS page cache), but not a
// power cut, kernel panic or VM reset, which can roll back the last commits.
// So the store commits with synchronous = NORMAL and flushes the WAL itself,
// in the thread pool (wal-flush.ts), before it resolves the commit's writes:
// FULL's guarantee without FULL's pause of the event loop at every commit.
// What that gives up: another connection (a second instance on this file)
// can read a commit in the moment before it is flushed, and a power cut in
// that moment loses it; no write of this process's callers has resolved,
// and nothing has touched a node on its account. This store holds the only copy of the bytes a
// manifest had before it was changed and the audit trail of who changed it,
// recorded right before or after touching a control-plane node, exactly when a
// node crash is likely; losing them would make rollback impossible.
//
// Group commit: one operator action can fan out to many nodes at once (a
// manifest written to 50 nodes in parallel makes a revision, an observation
// and an audit event per node). One transaction each would be 150 fsyncs, and
// since better-sqlite3 is synchronous each one blocks the event loop. So the
// write methods queue their work instead, and everything queued in one turn
// of the event loop commits together: one BEGIN IMMEDIATE transaction, one
// fsync, each write inside its own savepoint so that a failing write undoes
// only itself and rejects only its own promise. A write still resolves only
// once its commit is on disk.
//
// Reads run at once, except while writes are queued: then they wait for that
// commit (no extra one), so that a read sees every write issued before it, by
// any caller, as when each write committed on the spot. Callers rely on it:
// a query's fields read node state that another field of the same query has
// just recorded (a node found unreachable must not be reported reachable).

import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import Database from 'better-sqlite3'
import type { Database as SqliteDatabase, Statement } from 'better-sqlite3'
import { ServiceError } from '../errors.ts'
import { requireCount } from './arguments.ts'
import { auditCursorBound, newAuditId, pickAuditFields } from './audit-id.ts'
import { canonicalEventInstant, eventIdBound, newEventFields, storedEvent } from './event-fields.ts'
import { migrate } from './sqlite-schema.ts'
import { WalFlusher, type FlushFile } from './wal-flush.ts'
import { deepFreeze } from '../deep-freeze.ts'
import { podKeyString } from '../domain.ts'
import type { AuditEvent, EventRecord, EventType, JumpHostRecord, Label, NewAuditEvent, NewEvent, NewRevision, NodeFacts, NodeKind, Privilege, NodeObservation, NodeRecord, PodKey, RevisionRecord, WebhookRecord } from '../domain.ts'
import { nodeFromColumns, nodeToColumns } from './node-columns.ts'
import type { AuditQuery, ConditionalObservationResult, EventQuery, Store, StoredObservation, WebhookDeliveryOutcome } from './store.ts'

export interface SqliteStoreOptions {
  /** The time recorded as stored_at of observations; tests pin it. */
  clock?: () => Date
  /** How the WAL is flushed before a commit's writes resolve (default: fsync in the thread pool); tests hold it. */
  flushWal?: FlushFile
}

/** How long a connection waits for another one's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000

/** Most writes one commit takes, so that a flush holds the write lock briefly; the rest go in the next. */
const MAX_WRITES_PER_COMMIT = 500

/** Most events one pruneEvents call deletes, so that its write holds the lock briefly; the caller calls again. */
const PRUNE_MAX_EVENTS = 10_000

interface QueuedWrite {
  run: () => unknown
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}

type WriteOutcome = { ok: true; value: unknown } | { ok: false; error: unknown }

/** What tells the database file unchanged: other connections' commits (PRAGMA data_version), and this one's. */
interface FileState {
  dataVersion: number
  commits: number
}

function sameFileState(a: FileState, b: FileState): boolean {
  return a.dataVersion === b.dataVersion && a.commits === b.commits
}

/** Most observation versions held for getObservationsIfChanged: far more than a fleet's nodes. */
const MAX_HELD_VERSIONS = 100_000

interface NodeRow {
  name: string
  kind: string
  host: string
  port: number
  user: string
  privilege: string
  sftp_server: string | null
  via: string | null
  static_pod_path: string
  static_pod_path_given: number
  discovered_static_pod_path: string | null
  host_key_fingerprint: string | null
  observed_host_key_fingerprint: string | null
  labels: string
  created_at: string
  updated_at: string
}

interface EventRow {
  at: string
  type: string
  node: string
  namespace: string | null
  name: string | null
  message: string
  from_hash: string | null
  to_hash: string | null
  actor: string | null
  once_key: string | null
}

/** The bounds of a listEvents statement; absent cursors are the widest window (ids start at 1). */
interface EventWindow {
  after: number
  before: number
  /** JSON array of the types wanted; null: every type. */
  types: string | null
  limit: number
}

interface WebhookRow {
  id: string
  url: string
  types: string
  nodes: string
  sealed_secret: string
  created_at: string
  created_by: string
  last_delivery_at: string | null
  last_result: string | null
  failed_deliveries: number
}

interface AuditRow {
  id: string
  at: string
  actor: string
  action: string
  node: string | null
  target: string | null
  from_hash: string | null
  to_hash: string | null
  result: string
  message: string | null
  dry_run: number
}

// Revision rows come back already shaped as RevisionRecord (aliases in SQL).
const REVISION_COLUMNS = `r.node, r.namespace, r.name, r.revision, r.hash, r.manifest,
  r.file_name AS fileName, r.action, r.actor, r.recorded_at AS recordedAt`

// Many keys travel as one JSON parameter and json_each turns them into a
// table, so one statement serves any number of keys without approaching
// SQLite's limit on bound variables (and without chunking).
const WANTED_KEYS = `wanted AS (
  SELECT value ->> 0 AS node, value ->> 1 AS namespace, value ->> 2 AS name FROM json_each(?)
)`

const AUDIT_SELECT = `SELECT id, at, actor, action, node, target, from_hash, to_hash, result, message, dry_run FROM audit_events`

// Event rows come back shaped as EventRecord but for the id (an integer here, a string in the record).
const EVENT_SELECT = `SELECT id, at, type, node, namespace, name, message, from_hash AS fromHash, to_hash AS toHash, actor FROM events`
// Ranges on the id (the rowid, or the second column of events_by_node), then the type filter.
const EVENT_WINDOW = `id > @after AND id < @before AND (@types IS NULL OR type IN (SELECT value FROM json_each(@types)))`

// Jump host rows come back already shaped as JumpHostRecord.
const JUMP_HOST_COLUMNS = `name, host, port, user, host_key_fingerprint AS hostKeyFingerprint,
  observed_host_key_fingerprint AS observedHostKeyFingerprint, via`

function nodeFromRow(row: NodeRow): NodeRecord {
  return nodeFromColumns({
    name: row.name,
    kind: row.kind as NodeKind,
    host: row.host,
    port: row.port,
    user: row.user,
    privilege: row.privilege as Privilege,
    sftpServer: row.sftp_server,
    via: row.via,
    staticPodPath: row.static_pod_path,
    staticPodPathGiven: row.static_pod_path_given === 1,
    discoveredStaticPodPath: row.discovered_static_pod_path,
    hostKeyFingerprint: row.host_key_fingerprint,
    observedHostKeyFingerprint: row.observed_host_key_fingerprint,
    labels: JSON.parse(row.labels) as Label[],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  })
}

function nodeParams(node: NodeRecord): NodeRow {
  const c = nodeToColumns(node)
  return {
    name: c.name,
    kind: c.kind,
    host: c.host,
    port: c.port,
    user: c.user,
    privilege: c.privilege,
    sftp_server: c.sftpServer,
    via: c.via,
    static_pod_path: c.staticPodPath,
    static_pod_path_given: c.staticPodPathGiven ? 1 : 0,
    discovered_static_pod_path: c.discoveredStaticPodPath,
    host_key_fingerprint: c.hostKeyFingerprint,
    observed_host_key_fingerprint: c.observedHostKeyFingerprint,
    labels: JSON.stringify(c.labels),
    created_at: c.createdAt,
    updated_at: c.updatedAt,
  }
}

function webhookFromRow(row: WebhookRow): WebhookRecord {
  return {
    id: row.id,
    url: row.url,
    types: JSON.parse(row.types) as EventType[],
    nodes: JSON.parse(row.nodes) as string[],
    sealedSecret: row.sealed_secret,
    createdAt: row.created_at,
    createdBy: row.created_by,
    lastDeliveryAt: row.last_delivery_at,
    lastResult: row.last_result,
    failedDeliveries: row.failed_deliveries,
  }
}

function eventParams(e: NewEvent): EventRow {
  return {
    at: e.at,
    type: e.type,
    node: e.node,
    namespace: e.namespace,
    name: e.name,
    message: e.message,
    from_hash: e.fromHash,
    to_hash: e.toHash,
    actor: e.actor,
    once_key: e.onceKey ?? null,
  }
}

function auditFromRow(row: AuditRow): AuditEvent {
  return {
    id: row.id,
    at: row.at,
    actor: row.actor,
    action: row.action,
    node: row.node,
    target: row.target,
    fromHash: row.from_hash,
    toHash: row.to_hash,
    result: row.result,
    message: row.message,
    dryRun: row.dry_run === 1,
  }
}

/** The keys as one JSON parameter, each once (a key asked twice must not double its rows). */
function keysParam(keys: PodKey[]): string {
  const unique = new Map<string, [string, string, string]>()
  for (const k of keys) unique.set(podKeyString(k), [k.node, k.namespace, k.name])
  return JSON.stringify([...unique.values()])
}

function isPrimaryKeyViolation(err: unknown): boolean {
  return err instanceof Database.SqliteError && err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
}

export class SqliteStore implements Store {
  private readonly db: SqliteDatabase
  private readonly clock: () => Date

  private readonly pingStatement: Statement<[], unknown>
  private readonly listNodesStatement: Statement<[], NodeRow>
  private readonly dataVersionStatement: Statement<[], number>
  private readonly getNodeStatement: Statement<[string], NodeRow>
  private readonly insertNodeStatement: Statement<[NodeRow], unknown>
  private readonly updateNodeStatement: Statement<[NodeRow], unknown>
  private readonly pinNodeHostKeyStatement: Statement<[{ name: string; fingerprint: string; at: string }], unknown>
  private readonly nodeHostKeyStatement: Statement<[string], { host_key_fingerprint: string | null }>
  private readonly recordNodeFactsStatement: Statement<
    [{ name: string; observed_host_key_fingerprint: string | null; discovered_static_pod_path: string | null }],
    unknown
  >
  private readonly deleteNodeRevisionsStatement: Statement<[string], unknown>
  private readonly deleteNodeObservationStatement: Statement<[string], unknown>
  private readonly deleteNodeStatement: Statement<[string], unknown>
  private readonly listJumpHostsStatement: Statement<[], JumpHostRecord>
  private readonly getJumpHostStatement: Statement<[string], JumpHostRecord>
  private readonly putJumpHostStatement: Statement<[Omit<JumpHostRecord, 'observedHostKeyFingerprint'>], JumpHostRecord>
  private readonly recordJumpHostFactsStatement: Statement<[{ name: string; observedHostKeyFingerprint: string }], unknown>
  private readonly deleteJumpHostStatement: Statement<[string], unknown>
  private readonly latestRevisionNumberStatement: Statement<[string, string, string], { latest: number }>
  private readonly insertRevisionStatement: Statement<[RevisionRecord], unknown>
  private readonly listRevisionsStatement: Statement<[string, number], RevisionRecord>
  private readonly getRevisionStatement: Statement<[string, string, string, number], RevisionRecord>
  private readonly latestRevisionsStatement: Statement<[string], RevisionRecord>
  private readonly putObservationStatement: Statement<[{ node: string; observed_at: string | null; stored_at: string; observation: string }], unknown>
  private readonly getObservationsStatement: Statement<[string], { observation: string }>
  private readonly getObservationsIfChangedStatement: Statement<[string], { node: string; version: string | null; observation: string | null }>
  private readonly observationVersionStatement: Statement<[string], { version: string | null }>
  private readonly insertEventStatement: Statement<[EventRow], { id: number }>
  /** listEvents by order, with a node filter or not: each gets its own statement so each uses its index. */
  private readonly listEventsStatements: {
    newest: Statement<[EventWindow], Omit<EventRecord, 'id'> & { id: number }>
    oldest: Statement<[EventWindow], Omit<EventRecord, 'id'> & { id: number }>
    nodeNewest: Statement<[EventWindow & { node: string }], Omit<EventRecord, 'id'> & { id: number }>
    nodeOldest: Statement<[EventWindow & { node: string }], Omit<EventRecord, 'id'> & { id: number }>
  }
  private readonly pruneEventsStatement: Statement<[string, number], unknown>
  private readonly insertWebhookStatement: Statement<[WebhookRow], unknown>
  private readonly listWebhooksStatement: Statement<[], WebhookRow>
  private readonly deleteWebhookStatement: Statement<[string], unknown>
  private readonly recordWebhookDeliveryStatement: Statement<[{ id: string; at: string; result: string; failed: number }], unknown>
  private readonly insertAuditStatement: Statement<[AuditRow], unknown>
  /** listAudit has four shapes (node filter or not, cursor or not); each gets its own statement so each uses its index. */
  private readonly listAuditStatements: {
    all: Statement<[number], AuditRow>
    before: Statement<[string, number], AuditRow>
    node: Statement<[string, number], AuditRow>
    nodeBefore: Statement<[string, string, number], AuditRow>
  }

  /** Commits this connection has attempted; with PRAGMA data_version (other connections'), tells the file unchanged. */
  private commitsAttempted = 0
  /**
   * The node list as last read, and the state of the file it was read at: every
   * GraphQL read of static pods lists the nodes, and 1,000 rows made into records
   * each time cost more than the rest of the store's part of that read. Any
   * commit, of any table, by this connection or another, makes it read again.
   */
  private nodeList: { file: FileState; nodes: readonly NodeRecord[] } | null = null
  /**
   * The version of each node's observation as last read (null: none stored; an
   * observation stored without a version is not held), at
   * that state of the file, for getObservationsIfChanged: while the file is
   * unchanged, a caller holding those versions is answered without a query.
   */
  private observationVersions: { file: FileState; byNode: Map<string, string | null> } | null = null

  /** Writes waiting for the next commit, in the order they were made. */
  private readonly queuedWrites: QueuedWrite[] = []
  /** Settles (never rejects) when the newest queued write has; reads wait for it. */
  private newestQueuedWrite: Promise<unknown> = Promise.resolve()
  private flushScheduled = false
  /** Runs a batch of writes in one IMMEDIATE transaction, each in its own savepoint. */
  private readonly commitWrites: (batch: QueuedWrite[]) => WriteOutcome[]

  /** Opens (creating if needed) the store at `path`, or an in-memory one for ':memory:', and migrates it. */
  static open(path: string, opts: SqliteStoreOptions = {}): SqliteStore {
    const inMemory = path === ':memory:'
    if (!inMemory) mkdirSync(dirname(resolve(path)), { recursive: true })
    const db = new Database(path)
    try {
      // First, so that everything after it waits for other processes' locks instead of failing.
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
      const journalMode = db.pragma('journal_mode = WAL', { simple: true }) as string
      if (!inMemory && journalMode !== 'wal') {
        throw new Error(`store ${path}: could not switch to WAL journal mode (got ${journalMode})`)
      }
      // The migration commits on its own, flushed as it goes; the store's writes flush through walFlusher.
      db.pragma('synchronous = FULL')
      db.pragma('foreign_keys = ON')
      migrate(db, path)
      db.pragma('synchronous = NORMAL')
      return new SqliteStore(db, opts.clock ?? (() => new Date()), inMemory ? null : new WalFlusher(`${resolve(path)}-wal`, opts.flushWal))
    } catch (err) {
      db.close()
      throw err
    }
  }

  private constructor(
    db: SqliteDatabase,
    clock: () => Date,
    /** Flushes the WAL before a commit's writes resolve; null in memory. */
    private readonly walFlusher: WalFlusher | null,
  ) {
    this.db = db
    this.clock = clock

    this.pingStatement = db.prepare('SELECT 1')
    this.listNodesStatement = db.prepare('SELECT * FROM nodes ORDER BY name')
    this.dataVersionStatement = db.prepare<[], number>('PRAGMA data_version').pluck()
    this.getNodeStatement = db.prepare('SELECT * FROM nodes WHERE name = ?')
    this.insertNodeStatement = db.prepare(`
      INSERT INTO nodes (name, kind, host, port, user, privilege, sftp_server, via, static_pod_path, static_pod_path_given,
                         discovered_static_pod_path, host_key_fingerprint, observed_host_key_fingerprint, labels, created_at, updated_at)
      VALUES (@name, @kind, @host, @port, @user, @privilege, @sftp_server, @via, @static_pod_path, @static_pod_path_given,
              @discovered_static_pod_path, @host_key_fingerprint, @observed_host_key_fingerprint, @labels, @created_at, @updated_at)
      ON CONFLICT (name) DO NOTHING`)
    // What an admin sets, and nothing the service learnt from the node (node-columns.ts).
    this.updateNodeStatement = db.prepare(`
      UPDATE nodes SET kind = @kind, host = @host, port = @port, user = @user, privilege = @privilege,
        sftp_server = @sftp_server, via = @via, static_pod_path = @static_pod_path,
        static_pod_path_given = @static_pod_path_given, host_key_fingerprint = @host_key_fingerprint,
        labels = @labels, created_at = @created_at, updated_at = @updated_at
      WHERE name = @name`)
    // A discovered path is kept only while the node still discovers its path: an admin's path wins.
    this.pinNodeHostKeyStatement = db.prepare(`
      UPDATE nodes SET host_key_fingerprint = @fingerprint, updated_at = @at
      WHERE name = @name AND kind = 'ssh' AND host_key_fingerprint IS NULL`)
    this.nodeHostKeyStatement = db.prepare("SELECT host_key_fingerprint FROM nodes WHERE name = ? AND kind = 'ssh'")
    this.recordNodeFactsStatement = db.prepare(`
      UPDATE nodes SET
        observed_host_key_fingerprint = coalesce(@observed_host_key_fingerprint, observed_host_key_fingerprint),
        discovered_static_pod_path = CASE WHEN static_pod_path_given = 0
          THEN coalesce(@discovered_static_pod_path, discovered_static_pod_path) ELSE discovered_static_pod_path END
      WHERE name = @name AND kind = 'ssh'`)
    this.deleteNodeRevisionsStatement = db.prepare('DELETE FROM revisions WHERE node = ?')
    this.deleteNodeObservationStatement = db.prepare('DELETE FROM observations WHERE node = ?')
    this.deleteNodeStatement = db.prepare('DELETE FROM nodes WHERE name = ?')

    this.listJumpHostsStatement = db.prepare(`SELECT ${JUMP_HOST_COLUMNS} FROM jump_hosts ORDER BY name`)
    this.getJumpHostStatement = db.prepare(`SELECT ${JUMP_HOST_COLUMNS} FROM jump_hosts WHERE name = ?`)
    // What an admin sets; the observed key (a fact) stays as stored.
    this.putJumpHostStatement = db.prepare(`
      INSERT INTO jump_hosts (name, host, port, user, host_key_fingerprint, via)
      VALUES (@name, @host, @port, @user, @hostKeyFingerprint, @via)
      ON CONFLICT (name) DO UPDATE SET
        host = excluded.host, port = excluded.port, user = excluded.user,
        host_key_fingerprint = excluded.host_key_fingerprint, via = excluded.via
      RETURNING ${JUMP_HOST_COLUMNS}`)
    this.recordJumpHostFactsStatement = db.prepare(
      'UPDATE jump_hosts SET observed_host_key_fingerprint = @observedHostKeyFingerprint WHERE name = @name',
    )
    this.deleteJumpHostStatement = db.prepare('DELETE FROM jump_hosts WHERE name = ?')

    this.latestRevisionNumberStatement = db.prepare(
      'SELECT coalesce(max(revision), 0) AS latest FROM revisions WHERE node = ? AND namespace = ? AND name = ?',
    )
    this.insertRevisionStatement = db.prepare(`
      INSERT INTO revisions (node, namespace, name, revision, hash, manifest, file_name, action, actor, recorded_at)
      VALUES (@node, @namespace, @name, @revision, @hash, @manifest, @fileName, @action, @actor, @recordedAt)`)
    // Rank on the primary key index alone, then read the (possibly large) rows
    // of the ranks kept: old revisions' manifests are never loaded.
    this.listRevisionsStatement = db.prepare(`
      WITH ${WANTED_KEYS},
      ranked AS (
        SELECT r.node, r.namespace, r.name, r.revision,
               row_number() OVER (PARTITION BY r.node, r.namespace, r.name ORDER BY r.revision DESC) AS rank
        FROM wanted w
        JOIN revisions r ON r.node = w.node AND r.namespace = w.namespace AND r.name = w.name
      )
      SELECT ${REVISION_COLUMNS}
      FROM ranked k
      JOIN revisions r ON r.node = k.node AND r.namespace = k.namespace AND r.name = k.name AND r.revision = k.revision
      WHERE k.rank <= ?
      ORDER BY r.node, r.namespace, r.name, r.revision DESC`)
    this.getRevisionStatement = db.prepare(
      `SELECT ${REVISION_COLUMNS} FROM revisions r WHERE r.node = ? AND r.namespace = ? AND r.name = ? AND r.revision = ?`,
    )
    this.latestRevisionsStatement = db.prepare(`
      WITH ${WANTED_KEYS}
      SELECT ${REVISION_COLUMNS}
      FROM wanted w
      JOIN revisions r ON r.node = w.node AND r.namespace = w.namespace AND r.name = w.name
       AND r.revision = (SELECT max(m.revision) FROM revisions m
                         WHERE m.node = w.node AND m.namespace = w.namespace AND m.name = w.name)`)

    this.putObservationStatement = db.prepare(`
      INSERT INTO observations (node, observed_at, stored_at, observation, version)
      VALUES (@node, @observed_at, @stored_at, @observation, lower(hex(randomblob(16))))
      ON CONFLICT (node) DO UPDATE SET
        observed_at = excluded.observed_at, stored_at = excluded.stored_at, observation = excluded.observation, version = excluded.version`)
    this.getObservationsStatement = db.prepare(`
      SELECT o.observation FROM (SELECT DISTINCT value AS node FROM json_each(?)) w
      JOIN observations o ON o.node = w.node`)
    // The text only where the version is not the caller's (a NULL version never matches).
    this.getObservationsIfChangedStatement = db.prepare(`
      SELECT o.node, o.version, CASE WHEN o.version = w.known THEN NULL ELSE o.observation END AS observation
      FROM (SELECT value ->> 0 AS node, value ->> 1 AS known FROM json_each(?)) w
      JOIN observations o ON o.node = w.node`)
    this.observationVersionStatement = db.prepare('SELECT version FROM observations WHERE node = ?')

    // A repeated once_key inserts nothing and returns no row.
    this.insertEventStatement = db.prepare(`
      INSERT INTO events (at, type, node, namespace, name, message, from_hash, to_hash, actor, once_key)
      VALUES (@at, @type, @node, @namespace, @name, @message, @from_hash, @to_hash, @actor, @once_key)
      ON CONFLICT (once_key) DO NOTHING
      RETURNING id`)
    this.listEventsStatements = {
      newest: db.prepare(`${EVENT_SELECT} WHERE ${EVENT_WINDOW} ORDER BY id DESC LIMIT @limit`),
      oldest: db.prepare(`${EVENT_SELECT} WHERE ${EVENT_WINDOW} ORDER BY id LIMIT @limit`),
      nodeNewest: db.prepare(`${EVENT_SELECT} WHERE node = @node AND ${EVENT_WINDOW} ORDER BY id DESC LIMIT @limit`),
      nodeOldest: db.prepare(`${EVENT_SELECT} WHERE node = @node AND ${EVENT_WINDOW} ORDER BY id LIMIT @limit`),
    }
    // SQLite's DELETE takes no LIMIT unless compiled to; the oldest ones by events_by_at instead.
    this.pruneEventsStatement = db.prepare('DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ? ORDER BY at LIMIT ?)')

    this.insertWebhookStatement = db.prepare(`
      INSERT INTO webhooks (id, url, types, nodes, sealed_secret, created_at, created_by, last_delivery_at, last_result, failed_deliveries)
      VALUES (@id, @url, @types, @nodes, @sealed_secret, @created_at, @created_by, @last_delivery_at, @last_result, @failed_deliveries)
      ON CONFLICT (id) DO NOTHING`)
    this.listWebhooksStatement = db.prepare('SELECT * FROM webhooks ORDER BY created_at, id')
    this.deleteWebhookStatement = db.prepare('DELETE FROM webhooks WHERE id = ?')
    this.recordWebhookDeliveryStatement = db.prepare(`
      UPDATE webhooks SET last_delivery_at = @at, last_result = @result, failed_deliveries = failed_deliveries + @failed
      WHERE id = @id`)

    this.insertAuditStatement = db.prepare(`
      INSERT INTO audit_events (id, at, actor, action, node, target, from_hash, to_hash, result, message, dry_run)
      VALUES (@id, @at, @actor, @action, @node, @target, @from_hash, @to_hash, @result, @message, @dry_run)`)
    this.listAuditStatements = {
      all: db.prepare(`${AUDIT_SELECT} ORDER BY id DESC LIMIT ?`),
      before: db.prepare(`${AUDIT_SELECT} WHERE id < ? ORDER BY id DESC LIMIT ?`),
      node: db.prepare(`${AUDIT_SELECT} WHERE node = ? ORDER BY id DESC LIMIT ?`),
      nodeBefore: db.prepare(`${AUDIT_SELECT} WHERE node = ? AND id < ? ORDER BY id DESC LIMIT ?`),
    }

    // Inside a transaction, a better-sqlite3 transaction function is a savepoint.
    const inSavepoint = db.transaction((run: () => unknown): unknown => run())
    const commitWrites = db.transaction((batch: QueuedWrite[]): WriteOutcome[] =>
      batch.map((write): WriteOutcome => {
        try {
          return { ok: true, value: inSavepoint(write.run) }
        } catch (error) {
          // Some errors (SQLITE_FULL, SQLITE_IOERR ...) roll back the whole
          // transaction: then no write of the batch can commit.
          if (!db.inTransaction) throw error
          return { ok: false, error }
        }
      }),
    )
    // IMMEDIATE: take the write lock before the first read, so no other
    // connection can append between our read of the newest number and our insert.
    this.commitWrites = (batch) => commitWrites.immediate(batch)
  }

  /** Queues `run` for the next commit; resolves with its result once that commit is on disk. */
  private enqueueWrite<T>(run: () => T): Promise<T> {
    const write = new Promise<T>((resolve, reject) => {
      this.queuedWrites.push({ run, resolve: resolve as (value: unknown) => void, reject })
      this.scheduleFlush()
    })
    this.newestQueuedWrite = write.catch(() => undefined)
    return write
  }

  /** Waits, if writes are queued, until they are committed (commits are in queue order). */
  private async queuedWritesSettled(): Promise<void> {
    if (this.queuedWrites.length > 0) await this.newestQueuedWrite
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    // setImmediate, not a microtask: writes issued by many callbacks of one
    // event-loop turn (50 node writes finishing together) share the commit.
    setImmediate(() => {
      this.flushScheduled = false
      this.flushWrites()
      if (this.queuedWrites.length > 0) this.scheduleFlush()
    })
  }

  /** Commits the oldest queued writes (at most MAX_WRITES_PER_COMMIT) and settles their promises. */
  private flushWrites(): void {
    const batch = this.queuedWrites.splice(0, MAX_WRITES_PER_COMMIT)
    if (batch.length === 0) return
    this.commitsAttempted++
    let outcomes: WriteOutcome[]
    try {
      outcomes = this.commitWrites(batch)
    } catch (err) {
      // Nothing of the batch committed (busy past the timeout, disk full, closed).
      for (const write of batch) write.reject(err)
      return
    }
    const settle = (): void => {
      for (const [i, outcome] of outcomes.entries()) {
        if (outcome.ok) batch[i]!.resolve(outcome.value)
        else batch[i]!.reject(outcome.error)
      }
    }
    if (!this.walFlusher) return settle()
    // Committed, and not on disk until the flush: a flush that fails fails every write of the commit.
    this.walFlusher.flushed().then(settle, (err: unknown) => {
      for (const write of batch) write.reject(err)
    })
  }

  async ping(): Promise<void> {
    this.pingStatement.get()
  }

  /** Commits the queued writes first. Idempotent: closing twice is harmless. */
  async close(): Promise<void> {
    while (this.queuedWrites.length > 0) this.flushWrites()
    await this.walFlusher?.idle()
    if (this.db.open) this.db.close()
  }

  async listNodes(): Promise<NodeRecord[]> {
    await this.queuedWritesSettled()
    const file = this.fileState()
    if (this.nodeList && sameFileState(this.nodeList.file, file)) return [...this.nodeList.nodes]
    // Shared by every caller until the next commit, so frozen (Store.listNodes).
    const nodes = this.listNodesStatement.all().map((row) => deepFreeze(nodeFromRow(row)))
    this.nodeList = { file, nodes }
    return [...nodes]
  }

  /**
   * Read before what it stands for is read: a commit in between is then taken
   * for a change next time (a needless read), never the other way round.
   */
  private fileState(): FileState {
    return { dataVersion: this.dataVersionStatement.get() as number, commits: this.commitsAttempted }
  }

  async getNode(name: string): Promise<NodeRecord | null> {
    await this.queuedWritesSettled()
    const row = this.getNodeStatement.get(name)
    return row ? nodeFromRow(row) : null
  }

  async createNode(node: NodeRecord): Promise<void> {
    const row = nodeParams(node)
    return this.enqueueWrite(() => {
      if (this.insertNodeStatement.run(row).changes === 0) {
        throw new ServiceError('ALREADY_EXISTS', `node ${node.name} already exists`, ['name'])
      }
    })
  }

  async updateNode(node: NodeRecord): Promise<void> {
    const row = nodeParams(node)
    return this.enqueueWrite(() => {
      if (this.updateNodeStatement.run(row).changes === 0) {
        throw new ServiceError('NOT_FOUND', `node ${node.name} not found`, ['name'])
      }
    })
  }

  async pinNodeHostKey(name: string, fingerprint: string, at: string): Promise<string | null> {
    return this.enqueueWrite(() => {
      this.pinNodeHostKeyStatement.run({ name, fingerprint, at })
      return this.nodeHostKeyStatement.get(name)?.host_key_fingerprint ?? null
    })
  }

  async recordNodeFacts(name: string, facts: NodeFacts): Promise<void> {
    const params = {
      name,
      observed_host_key_fingerprint: facts.observedHostKeyFingerprint ?? null,
      discovered_static_pod_path: facts.discoveredStaticPodPath ?? null,
    }
    return this.enqueueWrite(() => {
      this.recordNodeFactsStatement.run(params)
    })
  }

  async deleteNode(name: string): Promise<boolean> {
    return this.enqueueWrite(() => {
      this.deleteNodeRevisionsStatement.run(name)
      this.deleteNodeObservationStatement.run(name)
      return this.deleteNodeStatement.run(name).changes > 0
    })
  }

  async listJumpHosts(): Promise<JumpHostRecord[]> {
    await this.queuedWritesSettled()
    return this.listJumpHostsStatement.all().map((row) => ({ ...row }))
  }

  async getJumpHost(name: string): Promise<JumpHostRecord | null> {
    await this.queuedWritesSettled()
    const row = this.getJumpHostStatement.get(name)
    return row ? { ...row } : null
  }

  async putJumpHost(jumpHost: JumpHostRecord): Promise<JumpHostRecord> {
    // Copied now: the caller may reuse its object before the write runs.
    const { name, host, port, user, hostKeyFingerprint, via } = jumpHost
    return this.enqueueWrite(() => {
      const stored = this.putJumpHostStatement.get({ name, host, port, user, hostKeyFingerprint, via })
      if (!stored) throw new Error(`jump host ${name}: the upsert returned no row`)
      return { ...stored }
    })
  }

  async recordJumpHostFacts(name: string, facts: { observedHostKeyFingerprint: string }): Promise<void> {
    const params = { name, observedHostKeyFingerprint: facts.observedHostKeyFingerprint }
    return this.enqueueWrite(() => {
      this.recordJumpHostFactsStatement.run(params)
    })
  }

  async deleteJumpHost(name: string): Promise<boolean> {
    return this.enqueueWrite(() => this.deleteJumpHostStatement.run(name).changes > 0)
  }

  async appendRevision(rev: NewRevision, expectedLatest?: number): Promise<RevisionRecord> {
    if (expectedLatest !== undefined) requireCount(expectedLatest, 'expectedLatest')
    // Copied now: the caller may reuse its object before the write runs.
    const { node, namespace, name, hash, manifest, fileName, action, actor, recordedAt } = rev
    try {
      return await this.enqueueWrite((): RevisionRecord => {
        const { latest } = this.latestRevisionNumberStatement.get(node, namespace, name) ?? { latest: 0 }
        if (expectedLatest !== undefined && latest !== expectedLatest) {
          throw new ServiceError(
            'CONFLICT',
            `${podKeyString({ node, namespace, name })}: newest revision is ${latest === 0 ? 'none' : latest}, expected ${expectedLatest === 0 ? 'none' : expectedLatest}`,
          )
        }
        const record: RevisionRecord = { node, namespace, name, revision: latest + 1, hash, manifest, fileName, action, actor, recordedAt }
        this.insertRevisionStatement.run(record)
        return record
      })
    } catch (err) {
      // Unreachable while every writer reads the newest number under the
      // write lock, as the commit above does; kept so that a writer that does
      // not still gets CONFLICT, not a crash.
      if (isPrimaryKeyViolation(err)) {
        throw new ServiceError('CONFLICT', `${podKeyString(rev)}: another writer appended the same revision number`)
      }
      throw err
    }
  }

  async listRevisions(keys: PodKey[], limit: number): Promise<Map<string, RevisionRecord[]>> {
    await this.queuedWritesSettled()
    requireCount(limit, 'limit')
    const byKey = new Map<string, RevisionRecord[]>()
    if (keys.length === 0 || limit === 0) return byKey
    for (const row of this.listRevisionsStatement.all(keysParam(keys), limit)) {
      const key = podKeyString(row)
      const list = byKey.get(key)
      if (list) list.push(row)
      else byKey.set(key, [row])
    }
    return byKey
  }

  async getRevision(key: PodKey, revision: number): Promise<RevisionRecord | null> {
    await this.queuedWritesSettled()
    const row = this.getRevisionStatement.get(key.node, key.namespace, key.name, revision)
    return row ? row : null
  }

  async latestRevisions(keys: PodKey[]): Promise<Map<string, RevisionRecord>> {
    await this.queuedWritesSettled()
    const byKey = new Map<string, RevisionRecord>()
    if (keys.length === 0) return byKey
    for (const row of this.latestRevisionsStatement.all(keysParam(keys))) byKey.set(podKeyString(row), row)
    return byKey
  }

  async putObservation(obs: NodeObservation): Promise<void> {
    const row = {
      node: obs.node,
      observed_at: obs.observedAt,
      stored_at: this.clock().toISOString(),
      observation: JSON.stringify(obs),
    }
    return this.enqueueWrite(() => {
      this.putObservationStatement.run(row)
    })
  }

  async getObservations(nodes: string[]): Promise<Map<string, NodeObservation>> {
    await this.queuedWritesSettled()
    const byNode = new Map<string, NodeObservation>()
    if (nodes.length === 0) return byNode
    for (const row of this.getObservationsStatement.all(JSON.stringify(nodes))) {
      const obs = JSON.parse(row.observation) as NodeObservation
      byNode.set(obs.node, obs)
    }
    return byNode
  }

  async getObservationsIfChanged(nodes: string[], known: ReadonlyMap<string, string>): Promise<Map<string, StoredObservation>> {
    await this.queuedWritesSettled()
    const byNode = new Map<string, StoredObservation>()
    if (nodes.length === 0) return byNode
    const file = this.fileState()
    const held = this.observationVersions && sameFileState(this.observationVersions.file, file) ? this.observationVersions.byNode : null
    const toRead: string[] = []
    for (const node of new Set(nodes)) {
      const version = held?.get(node)
      // Nothing committed since it was read: none stored, or the caller holds the version stored.
      if (version === null) continue
      if (version !== undefined && version === known.get(node)) byNode.set(node, { version, observation: null })
      else toRead.push(node)
    }
    if (toRead.length === 0) return byNode
    // Bounded by the names asked between two commits; started anew past a fleet's worth.
    const versions = held && held.size + toRead.length <= MAX_HELD_VERSIONS ? held : new Map<string, string | null>()
    for (const node of toRead) versions.set(node, null)
    const wanted = toRead.map((node) => [node, known.get(node) ?? null])
    for (const row of this.getObservationsIfChangedStatement.all(JSON.stringify(wanted))) {
      byNode.set(row.node, { version: row.version, observation: row.observation === null ? null : (JSON.parse(row.observation) as NodeObservation) })
      // Stored by an older release, without a version: read every time, as it cannot be told unchanged.
      if (row.version === null) versions.delete(row.node)
      else versions.set(row.node, row.version)
    }
    this.observationVersions = { file, byNode: versions }
    return byNode
  }

  async putObservationIf(obs: NodeObservation, expectedVersion: string | null, events: readonly NewEvent[]): Promise<ConditionalObservationResult> {
    const row = {
      node: obs.node,
      observed_at: obs.observedAt,
      stored_at: this.clock().toISOString(),
      observation: JSON.stringify(obs),
    }
    const fields = events.map(newEventFields)
    // One savepoint: the check, the observation and its events commit together or not at all.
    return this.enqueueWrite((): ConditionalObservationResult => {
      const stored = this.observationVersionStatement.get(obs.node)?.version ?? null
      if (stored !== expectedVersion) return { stored: false }
      this.putObservationStatement.run(row)
      return { stored: true, events: this.insertEvents(fields) }
    })
  }

  async appendEvents(events: readonly NewEvent[]): Promise<EventRecord[]> {
    const fields = events.map(newEventFields)
    return this.enqueueWrite(() => this.insertEvents(fields))
  }

  /** Inside a write: inserts the events in order, answering those whose onceKey was not taken. */
  private insertEvents(events: NewEvent[]): EventRecord[] {
    const stored: EventRecord[] = []
    for (const e of events) {
      const inserted = this.insertEventStatement.get(eventParams(e))
      if (inserted) stored.push(storedEvent(inserted.id, e))
    }
    return stored
  }

  async listEvents(query: EventQuery): Promise<EventRecord[]> {
    await this.queuedWritesSettled()
    requireCount(query.limit, 'limit')
    const window: EventWindow = {
      after: query.after === undefined ? 0 : eventIdBound(query.after, 'after'),
      before: query.before === undefined ? Number.MAX_SAFE_INTEGER : eventIdBound(query.before, 'before'),
      types: query.types === undefined || query.types.length === 0 ? null : JSON.stringify(query.types),
      limit: query.limit,
    }
    if (query.limit === 0) return []
    const statements = this.listEventsStatements
    const oldest = query.order === 'oldest'
    const rows =
      query.node === undefined
        ? (oldest ? statements.oldest : statements.newest).all(window)
        : (oldest ? statements.nodeOldest : statements.nodeNewest).all({ ...window, node: query.node })
    return rows.map((row) => ({ ...row, id: String(row.id) }))
  }

  async pruneEvents(before: string): Promise<number> {
    const bound = canonicalEventInstant(before, 'before')
    return this.enqueueWrite(() => this.pruneEventsStatement.run(bound, PRUNE_MAX_EVENTS).changes)
  }

  async createWebhook(webhook: WebhookRecord): Promise<void> {
    const row: WebhookRow = {
      id: webhook.id,
      url: webhook.url,
      types: JSON.stringify(webhook.types),
      nodes: JSON.stringify(webhook.nodes),
      sealed_secret: webhook.sealedSecret,
      created_at: webhook.createdAt,
      created_by: webhook.createdBy,
      last_delivery_at: webhook.lastDeliveryAt,
      last_result: webhook.lastResult,
      failed_deliveries: webhook.failedDeliveries,
    }
    return this.enqueueWrite(() => {
      if (this.insertWebhookStatement.run(row).changes === 0) {
        throw new ServiceError('ALREADY_EXISTS', `webhook ${webhook.id} already exists`, ['id'])
      }
    })
  }

  async listWebhooks(): Promise<WebhookRecord[]> {
    await this.queuedWritesSettled()
    return this.listWebhooksStatement.all().map(webhookFromRow)
  }

  async deleteWebhook(id: string): Promise<boolean> {
    return this.enqueueWrite(() => this.deleteWebhookStatement.run(id).changes > 0)
  }

  async recordWebhookDelivery(id: string, outcome: WebhookDeliveryOutcome): Promise<void> {
    const params = { id, at: outcome.at, result: outcome.result, failed: outcome.gaveUp ? 1 : 0 }
    return this.enqueueWrite(() => {
      this.recordWebhookDeliveryStatement.run(params)
    })
  }

  async appendAudit(event: NewAuditEvent): Promise<AuditEvent> {
    const fields = pickAuditFields(event)
    return this.enqueueWrite(() => {
      // A repeated id would need the same millisecond, counter and 40 random
      // bits; retry rather than fail if it ever happens.
      for (let attempt = 1; ; attempt++) {
        const stored: AuditEvent = { ...fields, id: newAuditId(fields.at) }
        try {
          this.insertAuditStatement.run(auditParams(stored))
          return stored
        } catch (err) {
          if (!isPrimaryKeyViolation(err) || attempt >= 3) throw err
        }
      }
    })
  }

  async listAudit(query: AuditQuery): Promise<AuditEvent[]> {
    await this.queuedWritesSettled()
    requireCount(query.limit, 'limit')
    if (query.limit === 0) return []
    const bound = query.before === undefined ? undefined : auditCursorBound(query.before)
    const statements = this.listAuditStatements
    let rows: AuditRow[]
    if (query.node !== undefined) {
      rows = bound === undefined ? statements.node.all(query.node, query.limit) : statements.nodeBefore.all(query.node, bound, query.limit)
    } else {
      rows = bound === undefined ? statements.all.all(query.limit) : statements.before.all(bound, query.limit)
    }
    return rows.map(auditFromRow)
  }
}


function auditParams(e: AuditEvent): AuditRow {
  return {
    id: e.id,
    at: e.at,
    actor: e.actor,
    action: e.action,
    node: e.node,
    target: e.target,
    from_hash: e.fromHash,
    to_hash: e.toHash,
    result: e.result,
    message: e.message,
    dry_run: e.dryRun ? 1 : 0,
  }
}
