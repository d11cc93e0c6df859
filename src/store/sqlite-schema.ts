// The SQLite schema as an ordered list of migration steps. PRAGMA user_version
// holds how many steps a file has had. A release that needs a schema change
// appends a step; it never edits a published one, because files in the field
// have already run it.

import type { Database } from 'better-sqlite3'
import { LEGACY_DISCOVER_PATH } from './node-columns.ts'

export const MIGRATIONS: readonly string[] = [
  // 1: the initial schema.
  `
  CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    user TEXT NOT NULL,
    static_pod_path TEXT NOT NULL,
    host_key_fingerprint TEXT,
    observed_host_key_fingerprint TEXT,
    labels TEXT NOT NULL, -- JSON array of {key, value}, order kept
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  ) STRICT;

  -- No foreign key to nodes: the DynamoDB store cannot enforce one, and both
  -- stores must accept the same calls. deleteNode removes the rows itself.
  -- The primary key is the last line of defence against two writers picking
  -- the same revision number.
  CREATE TABLE revisions (
    node TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL CHECK (revision > 0),
    hash TEXT NOT NULL,
    manifest TEXT NOT NULL, -- the exact text; SQLite keeps TEXT byte for byte (UTF-8)
    file_name TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (node, namespace, name, revision)
  ) STRICT;

  CREATE TABLE observations (
    node TEXT PRIMARY KEY,
    observed_at TEXT, -- NodeObservation.observedAt, for queries without parsing the JSON
    stored_at TEXT NOT NULL,
    observation TEXT NOT NULL -- the NodeObservation as JSON
  ) STRICT;

  -- Audit events outlive their node: they are the audit trail. The id starts
  -- with the canonical \`at\` (see audit-id.ts), so the primary key is the
  -- index on (at) and audit_events_by_node the one on (node, at), each with
  -- the tie-breaker that makes paging exact.
  CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    node TEXT,
    target TEXT,
    from_hash TEXT,
    to_hash TEXT,
    result TEXT NOT NULL,
    message TEXT,
    dry_run INTEGER NOT NULL CHECK (dry_run IN (0, 1))
  ) STRICT, WITHOUT ROWID;

  CREATE INDEX audit_events_by_node ON audit_events (node, id);
  `,
  // 2: a token each putObservation replaces, so that a reader holding a
  // parsed observation can tell it is still current without reading it again
  // (getObservationsIfChanged). NULL on rows stored before: read in full.
  `ALTER TABLE observations ADD COLUMN version TEXT;`,
  // 3: what an admin set and what the service learns from the node, apart
  // (see node-columns.ts), and nodes registered without a path told by the
  // rule of the release before.
  `
  ALTER TABLE nodes ADD COLUMN static_pod_path_given INTEGER NOT NULL DEFAULT 1 CHECK (static_pod_path_given IN (0, 1));
  ALTER TABLE nodes ADD COLUMN discovered_static_pod_path TEXT;
  UPDATE nodes SET static_pod_path_given = 0 WHERE kind = 'ssh' AND static_pod_path = '${LEGACY_DISCOVER_PATH}';
  `,
  // 4: nodes reached as an unprivileged user with sudo, and through jump hosts.
  `
  ALTER TABLE nodes ADD COLUMN privilege TEXT NOT NULL DEFAULT 'NONE' CHECK (privilege IN ('NONE', 'SUDO'));
  ALTER TABLE nodes ADD COLUMN sftp_server TEXT;
  ALTER TABLE nodes ADD COLUMN via TEXT;
  `,
  // 5: jump hosts (bastions). No foreign keys for via (to another jump host,
  // or from nodes.via): the DynamoDB store cannot enforce them either, and the
  // jump host service checks references before it writes.
  `
  CREATE TABLE jump_hosts (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    user TEXT NOT NULL,
    host_key_fingerprint TEXT,
    observed_host_key_fingerprint TEXT, -- a fact: the key it last presented
    via TEXT
  ) STRICT;
  `,
  // 6: events (for subscribers and webhooks) and webhooks. Events outlive
  // their node, like audit events: deleteNode leaves them, pruneEvents
  // forgets them by age. AUTOINCREMENT, so that an id is never handed out
  // twice, even after the newest events are pruned: readers resume after an
  // id. A once_key is unique while its event is kept (NULLs never collide).
  `
  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, -- canonical (toISOString), so that string order is time order
    type TEXT NOT NULL,
    node TEXT NOT NULL,
    namespace TEXT,
    name TEXT,
    message TEXT NOT NULL,
    from_hash TEXT,
    to_hash TEXT,
    actor TEXT,
    once_key TEXT UNIQUE
  ) STRICT;

  CREATE INDEX events_by_node ON events (node, id);
  CREATE INDEX events_by_at ON events (at);

  CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    types TEXT NOT NULL, -- JSON array of event types; empty: every type
    nodes TEXT NOT NULL, -- JSON array of node name globs; empty: every node
    sealed_secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    last_delivery_at TEXT,
    last_result TEXT,
    failed_deliveries INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  `,
]

/** The file was written by a newer release: reading it could lose what that release stores. */
export class StoreSchemaTooNewError extends Error {
  override readonly name = 'StoreSchemaTooNewError'
  readonly fileVersion: number
  readonly knownVersion: number

  constructor(location: string, fileVersion: number, knownVersion: number) {
    super(
      `store ${location} has schema version ${fileVersion}, but this release of staticpod-api only knows versions up to ` +
        `${knownVersion}: it was written by a newer release. Run that release (or newer), or restore a backup taken before the upgrade.`,
    )
    this.fileVersion = fileVersion
    this.knownVersion = knownVersion
  }
}

function userVersion(db: Database): number {
  return db.pragma('user_version', { simple: true }) as number
}

/**
 * Brings the file up to `steps.length`, one step per IMMEDIATE transaction
 * (the step and its version bump commit together or not at all). The version
 * is read again under the write lock, so two processes opening the same old
 * file at once apply each step exactly once.
 */
export function migrate(db: Database, location: string, steps: readonly string[] = MIGRATIONS): void {
  const known = steps.length
  const applyNextStep = db.transaction((): boolean => {
    const version = userVersion(db)
    if (version > known) throw new StoreSchemaTooNewError(location, version, known)
    const step = steps[version]
    if (step === undefined) return false
    db.exec(step)
    // PRAGMA takes no bound parameters; the value is an integer we computed.
    db.pragma(`user_version = ${version + 1}`)
    return true
  })
  // Bounded: each pass either applies a step or returns.
  for (let pass = 0; pass <= known; pass++) {
    if (!applyNextStep.immediate()) return
  }
}

export function schemaVersion(db: Database): number {
  return userVersion(db)
}
