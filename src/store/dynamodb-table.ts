// The one DynamoDB table of the DynamoDB store: its key schema, the one index,
// and how the store's records map onto keys. serverless.yml declares the same
// table (test/store/dynamodb.test.ts checks that the two agree).
//
//   pk                 sk                              what
//   NODES              <node>                          a NodeRecord
//   JUMP_HOSTS         <jump host>                     a JumpHostRecord
//   NODE#<node>        HEAD#<namespace>/<name>         { latest }: newest revision number, a hint (see dynamodb.ts)
//   NODE#<node>        REV#<namespace>/<name>#<n>      a RevisionRecord, n zero-padded to 10 digits
//   NODE#<node>        OBSERVATION                     the NodeObservation
//   NODE#<node>        CHUNK#<blob id>#<i>             one piece of a value too large for one item
//   AUDIT              <audit id>                      an AuditEvent; auditNode = its node, when it has one
//   EVENTS             <event id>                      an EventRecord (with its onceKey, when it has one, and the claim token
//                                                      of the put that stored it), id zero-padded to 20 digits
//   EVENTS             PRUNED                          { last }: the highest event id pruneEvents has deleted
//   EVENT_ONCE         <sha256 of a onceKey>           { onceKey }: an event with this key is stored
//   WEBHOOKS           <webhook id>                    a WebhookRecord
//
// Everything a node owns shares its partition, so deleteNode finds it with one
// paged Query. Node records share one partition so that listNodes is a Query,
// not a Scan of the whole table; jump hosts likewise, in a partition of their
// own (listJumpHosts is a Query, and a jump host and a node may share a name);
// webhooks likewise. Audit events and events live apart from their node: they
// outlive it. Events share one partition whose sort key order is id order
// (fixed width), so that listing after or before an id is a key range and
// the newest event is the last event key. Ids are claimed by the conditional
// put of the event item itself, each only once its predecessor exists, so
// they become visible in increasing order (dynamodb.ts); PRUNED sorts after
// every id, so that one Query of the partition's last two keys reads the
// highest pruned id along with the newest event, and keeps pruned ids from
// being handed out again. (A SEQ/EVENTS counter item, which earlier versions
// wrote, is left as it is and never read.) The onceKey markers are keyed by
// a hash because a sort key holds at most 1 KB and a onceKey may be longer.
// One partition takes some 1,000 writes a second, far more events than a
// fleet's static pods make.
//
// The one index, `byNode` (auditNode, sk), exists for listAudit's node filter:
// without it, listing one node's events means reading every event of every node
// and filtering. It is sparse (events without a node are not in it), projects
// everything (an event is small), and is eventually consistent: a node-filtered
// audit list can miss an event written in the last fraction of a second.
//
// Names and namespaces are URI-encoded inside keys, so `#` and `/` only ever
// appear as separators and no name can be a prefix that matches another's items.

import { createHash } from 'node:crypto'
import {
  CreateTableCommand,
  DescribeTableCommand,
  ResourceInUseException,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb'

const PARTITION_KEY = 'pk'
const SORT_KEY = 'sk'
export const AUDIT_BY_NODE_INDEX = 'byNode'
export const AUDIT_NODE_ATTRIBUTE = 'auditNode'

const part = (value: string): string => encodeURIComponent(value)
const REVISION_DIGITS = 10
/** Wider than any safe integer (16 digits), so every id an event can get sorts by its number. */
const EVENT_ID_DIGITS = 20

export const keys = {
  nodesPartition: 'NODES',
  node: (name: string) => ({ pk: 'NODES', sk: name }),
  jumpHostsPartition: 'JUMP_HOSTS',
  jumpHost: (name: string) => ({ pk: 'JUMP_HOSTS', sk: name }),
  nodePartition: (node: string) => `NODE#${part(node)}`,
  head: (node: string, namespace: string, name: string) => ({ pk: `NODE#${part(node)}`, sk: `HEAD#${part(namespace)}/${part(name)}` }),
  revisionPrefix: (namespace: string, name: string) => `REV#${part(namespace)}/${part(name)}#`,
  revision: (node: string, namespace: string, name: string, revision: number) => ({
    pk: `NODE#${part(node)}`,
    sk: `REV#${part(namespace)}/${part(name)}#${String(revision).padStart(REVISION_DIGITS, '0')}`,
  }),
  observation: (node: string) => ({ pk: `NODE#${part(node)}`, sk: 'OBSERVATION' }),
  chunk: (partition: string, blobId: string, index: number) => ({ pk: partition, sk: `CHUNK#${blobId}#${String(index).padStart(5, '0')}` }),
  auditPartition: 'AUDIT',
  audit: (id: string) => ({ pk: 'AUDIT', sk: id }),
  eventsPartition: 'EVENTS',
  event: (id: number) => ({ pk: 'EVENTS', sk: String(id).padStart(EVENT_ID_DIGITS, '0') }),
  /** Sorts after every event id (letters after digits). */
  eventsPruned: { pk: 'EVENTS', sk: 'PRUNED' },
  eventOnce: (onceKey: string) => ({ pk: 'EVENT_ONCE', sk: createHash('sha256').update(onceKey, 'utf8').digest('hex') }),
  webhooksPartition: 'WEBHOOKS',
  webhook: (id: string) => ({ pk: 'WEBHOOKS', sk: id }),
} as const

/** The table as CreateTable wants it; serverless.yml mirrors this (with PITR, which CreateTable cannot set). */
export function tableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: PARTITION_KEY, AttributeType: 'S' },
      { AttributeName: SORT_KEY, AttributeType: 'S' },
      { AttributeName: AUDIT_NODE_ATTRIBUTE, AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: PARTITION_KEY, KeyType: 'HASH' },
      { AttributeName: SORT_KEY, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: AUDIT_BY_NODE_INDEX,
        KeySchema: [
          { AttributeName: AUDIT_NODE_ATTRIBUTE, KeyType: 'HASH' },
          { AttributeName: SORT_KEY, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  }
}

/**
 * Creates the table (for tests and local development; production creates it
 * through serverless.yml) and waits until it is ACTIVE. An existing table is
 * left as it is.
 */
export async function createTable(client: DynamoDBClient, tableName: string, opts: { timeoutMs?: number } = {}): Promise<void> {
  try {
    await client.send(new CreateTableCommand(tableDefinition(tableName)))
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000)
  for (;;) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }))
    const indexesActive = (Table?.GlobalSecondaryIndexes ?? []).every((i) => i.IndexStatus === 'ACTIVE')
    if (Table?.TableStatus === 'ACTIVE' && indexesActive) return
    if (Date.now() > deadline) throw new Error(`table ${tableName} is not ACTIVE after waiting (status ${Table?.TableStatus})`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
