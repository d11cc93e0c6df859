import { createRequire as __createRequire } from 'node:module'; import { fileURLToPath as __fileURLToPath } from 'node:url'; import { dirname as __pathDirname } from 'node:path'; const require = __createRequire(import.meta.url); const __filename = __fileURLToPath(import.meta.url); const __dirname = __pathDirname(__filename);
import{a as h,b as T}from"./chunk-QPZEP7W5.mjs";import{b as s,h as d}from"./chunk-7TRNTSUJ.mjs";import"./chunk-72WH55O6.mjs";import{mkdirSync as A}from"node:fs";import{dirname as L,resolve as w}from"node:path";import O from"better-sqlite3";var y=[`
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
  `],c=class extends Error{name="StoreSchemaTooNewError";fileVersion;knownVersion;constructor(e,n,a){super(`store ${e} has schema version ${n}, but this release of staticpod-api only knows versions up to ${a}: it was written by a newer release. Run that release (or newer), or restore a backup taken before the upgrade.`),this.fileVersion=n,this.knownVersion=a}};function b(t){return t.pragma("user_version",{simple:!0})}function v(t,e,n=y){let a=n.length,o=t.transaction(()=>{let r=b(t);if(r>a)throw new c(e,r,a);let i=n[r];return i===void 0?!1:(t.exec(i),t.pragma(`user_version = ${r+1}`),!0)});for(let r=0;r<=a;r++)if(!o.immediate())return}var k=5e3,p=`r.node, r.namespace, r.name, r.revision, r.hash, r.manifest,
  r.file_name AS fileName, r.action, r.actor, r.recorded_at AS recordedAt`,E=`wanted AS (
  SELECT value ->> 0 AS node, value ->> 1 AS namespace, value ->> 2 AS name FROM json_each(?)
)`,u="SELECT id, at, actor, action, node, target, from_hash, to_hash, result, message, dry_run FROM audit_events";function g(t){return{name:t.name,kind:t.kind,host:t.host,port:t.port,user:t.user,staticPodPath:t.static_pod_path,hostKeyFingerprint:t.host_key_fingerprint,observedHostKeyFingerprint:t.observed_host_key_fingerprint,labels:JSON.parse(t.labels),createdAt:t.created_at,updatedAt:t.updated_at}}function R(t){return{name:t.name,kind:t.kind,host:t.host,port:t.port,user:t.user,static_pod_path:t.staticPodPath,host_key_fingerprint:t.hostKeyFingerprint,observed_host_key_fingerprint:t.observedHostKeyFingerprint,labels:JSON.stringify(t.labels.map(({key:e,value:n})=>({key:e,value:n}))),created_at:t.createdAt,updated_at:t.updatedAt}}function I(t){return{id:t.id,at:t.at,actor:t.actor,action:t.action,node:t.node,target:t.target,fromHash:t.from_hash,toHash:t.to_hash,result:t.result,message:t.message,dryRun:t.dry_run===1}}function S(t){let e=new Map;for(let n of t)e.set(d(n),[n.node,n.namespace,n.name]);return JSON.stringify([...e.values()])}function l(t,e){if(!Number.isSafeInteger(t)||t<0)throw new s("VALIDATION_FAILED",`${e} must be a non-negative integer, got ${t}`,[e])}function _(t){return t instanceof O.SqliteError&&t.code==="SQLITE_CONSTRAINT_PRIMARYKEY"}var f=class t{db;clock;pingStatement;listNodesStatement;getNodeStatement;insertNodeStatement;updateNodeStatement;deleteNodeRevisionsStatement;deleteNodeObservationStatement;deleteNodeStatement;latestRevisionNumberStatement;insertRevisionStatement;listRevisionsStatement;getRevisionStatement;latestRevisionsStatement;putObservationStatement;getObservationsStatement;insertAuditStatement;listAuditStatements;appendRevisionTransaction;deleteNodeTransaction;static open(e,n={}){let a=e===":memory:";a||A(L(w(e)),{recursive:!0});let o=new O(e);try{o.pragma(`busy_timeout = ${k}`);let r=o.pragma("journal_mode = WAL",{simple:!0});if(!a&&r!=="wal")throw new Error(`store ${e}: could not switch to WAL journal mode (got ${r})`);return o.pragma("synchronous = FULL"),o.pragma("foreign_keys = ON"),v(o,e),new t(o,n.clock??(()=>new Date))}catch(r){throw o.close(),r}}constructor(e,n){this.db=e,this.clock=n,this.pingStatement=e.prepare("SELECT 1"),this.listNodesStatement=e.prepare("SELECT * FROM nodes ORDER BY name"),this.getNodeStatement=e.prepare("SELECT * FROM nodes WHERE name = ?"),this.insertNodeStatement=e.prepare(`
      INSERT INTO nodes (name, kind, host, port, user, static_pod_path, host_key_fingerprint,
                         observed_host_key_fingerprint, labels, created_at, updated_at)
      VALUES (@name, @kind, @host, @port, @user, @static_pod_path, @host_key_fingerprint,
              @observed_host_key_fingerprint, @labels, @created_at, @updated_at)
      ON CONFLICT (name) DO NOTHING`),this.updateNodeStatement=e.prepare(`
      UPDATE nodes SET kind = @kind, host = @host, port = @port, user = @user, static_pod_path = @static_pod_path,
        host_key_fingerprint = @host_key_fingerprint, observed_host_key_fingerprint = @observed_host_key_fingerprint,
        labels = @labels, created_at = @created_at, updated_at = @updated_at
      WHERE name = @name`),this.deleteNodeRevisionsStatement=e.prepare("DELETE FROM revisions WHERE node = ?"),this.deleteNodeObservationStatement=e.prepare("DELETE FROM observations WHERE node = ?"),this.deleteNodeStatement=e.prepare("DELETE FROM nodes WHERE name = ?"),this.latestRevisionNumberStatement=e.prepare("SELECT coalesce(max(revision), 0) AS latest FROM revisions WHERE node = ? AND namespace = ? AND name = ?"),this.insertRevisionStatement=e.prepare(`
      INSERT INTO revisions (node, namespace, name, revision, hash, manifest, file_name, action, actor, recorded_at)
      VALUES (@node, @namespace, @name, @revision, @hash, @manifest, @fileName, @action, @actor, @recordedAt)`),this.listRevisionsStatement=e.prepare(`
      WITH ${E},
      ranked AS (
        SELECT r.node, r.namespace, r.name, r.revision,
               row_number() OVER (PARTITION BY r.node, r.namespace, r.name ORDER BY r.revision DESC) AS rank
        FROM wanted w
        JOIN revisions r ON r.node = w.node AND r.namespace = w.namespace AND r.name = w.name
      )
      SELECT ${p}
      FROM ranked k
      JOIN revisions r ON r.node = k.node AND r.namespace = k.namespace AND r.name = k.name AND r.revision = k.revision
      WHERE k.rank <= ?
      ORDER BY r.node, r.namespace, r.name, r.revision DESC`),this.getRevisionStatement=e.prepare(`SELECT ${p} FROM revisions r WHERE r.node = ? AND r.namespace = ? AND r.name = ? AND r.revision = ?`),this.latestRevisionsStatement=e.prepare(`
      WITH ${E}
      SELECT ${p}
      FROM wanted w
      JOIN revisions r ON r.node = w.node AND r.namespace = w.namespace AND r.name = w.name
       AND r.revision = (SELECT max(m.revision) FROM revisions m
                         WHERE m.node = w.node AND m.namespace = w.namespace AND m.name = w.name)`),this.putObservationStatement=e.prepare(`
      INSERT INTO observations (node, observed_at, stored_at, observation)
      VALUES (@node, @observed_at, @stored_at, @observation)
      ON CONFLICT (node) DO UPDATE SET
        observed_at = excluded.observed_at, stored_at = excluded.stored_at, observation = excluded.observation`),this.getObservationsStatement=e.prepare(`
      SELECT o.observation FROM (SELECT DISTINCT value AS node FROM json_each(?)) w
      JOIN observations o ON o.node = w.node`),this.insertAuditStatement=e.prepare(`
      INSERT INTO audit_events (id, at, actor, action, node, target, from_hash, to_hash, result, message, dry_run)
      VALUES (@id, @at, @actor, @action, @node, @target, @from_hash, @to_hash, @result, @message, @dry_run)`),this.listAuditStatements={all:e.prepare(`${u} ORDER BY id DESC LIMIT ?`),before:e.prepare(`${u} WHERE id < ? ORDER BY id DESC LIMIT ?`),node:e.prepare(`${u} WHERE node = ? ORDER BY id DESC LIMIT ?`),nodeBefore:e.prepare(`${u} WHERE node = ? AND id < ? ORDER BY id DESC LIMIT ?`)};let a=e.transaction((r,i)=>{let{latest:m}=this.latestRevisionNumberStatement.get(r.node,r.namespace,r.name)??{latest:0};if(i!==void 0&&m!==i)throw new s("CONFLICT",`${d(r)}: newest revision is ${m===0?"none":m}, expected ${i===0?"none":i}`);let N={node:r.node,namespace:r.namespace,name:r.name,revision:m+1,hash:r.hash,manifest:r.manifest,fileName:r.fileName,action:r.action,actor:r.actor,recordedAt:r.recordedAt};return this.insertRevisionStatement.run(N),N});this.appendRevisionTransaction=(r,i)=>a.immediate(r,i);let o=e.transaction(r=>(this.deleteNodeRevisionsStatement.run(r),this.deleteNodeObservationStatement.run(r),this.deleteNodeStatement.run(r).changes>0));this.deleteNodeTransaction=r=>o.immediate(r)}async ping(){this.pingStatement.get()}async close(){this.db.open&&this.db.close()}async listNodes(){return this.listNodesStatement.all().map(g)}async getNode(e){let n=this.getNodeStatement.get(e);return n?g(n):null}async createNode(e){if(this.insertNodeStatement.run(R(e)).changes===0)throw new s("ALREADY_EXISTS",`node ${e.name} already exists`,["name"])}async updateNode(e){if(this.updateNodeStatement.run(R(e)).changes===0)throw new s("NOT_FOUND",`node ${e.name} not found`,["name"])}async deleteNode(e){return this.deleteNodeTransaction(e)}async appendRevision(e,n){n!==void 0&&l(n,"expectedLatest");try{return this.appendRevisionTransaction(e,n)}catch(a){throw _(a)?new s("CONFLICT",`${d(e)}: another writer appended the same revision number`):a}}async listRevisions(e,n){l(n,"limit");let a=new Map;if(e.length===0||n===0)return a;for(let o of this.listRevisionsStatement.all(S(e),n)){let r=d(o),i=a.get(r);i?i.push(o):a.set(r,[o])}return a}async getRevision(e,n){let a=this.getRevisionStatement.get(e.node,e.namespace,e.name,n);return a||null}async latestRevisions(e){let n=new Map;if(e.length===0)return n;for(let a of this.latestRevisionsStatement.all(S(e)))n.set(d(a),a);return n}async putObservation(e){this.putObservationStatement.run({node:e.node,observed_at:e.observedAt,stored_at:this.clock().toISOString(),observation:JSON.stringify(e)})}async getObservations(e){let n=new Map;if(e.length===0)return n;for(let a of this.getObservationsStatement.all(JSON.stringify(e))){let o=JSON.parse(a.observation);n.set(o.node,o)}return n}async appendAudit(e){for(let n=1;;n++){let a={...D(e),id:h(e.at)};try{return this.insertAuditStatement.run(C(a)),a}catch(o){if(!_(o)||n>=3)throw o}}}async listAudit(e){if(l(e.limit,"limit"),e.limit===0)return[];let n=e.before===void 0?void 0:T(e.before),a=this.listAuditStatements,o;return e.node!==void 0?o=n===void 0?a.node.all(e.node,e.limit):a.nodeBefore.all(e.node,n,e.limit):o=n===void 0?a.all.all(e.limit):a.before.all(n,e.limit),o.map(I)}};function D(t){return{at:t.at,actor:t.actor,action:t.action,node:t.node,target:t.target,fromHash:t.fromHash,toHash:t.toHash,result:t.result,message:t.message,dryRun:t.dryRun}}function C(t){return{id:t.id,at:t.at,actor:t.actor,action:t.action,node:t.node,target:t.target,from_hash:t.fromHash,to_hash:t.toHash,result:t.result,message:t.message,dry_run:t.dryRun?1:0}}export{f as SqliteStore};
