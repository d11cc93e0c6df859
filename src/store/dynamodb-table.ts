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
//
// Everything a node owns shares its partition, so deleteNode finds it with one
// paged Query. Node records share one partition so that listNodes is a Query,
// not a Scan of the whole table; jump hosts likewise, in a partition of their
// own (listJumpHosts is a Query, and a jump host and a node may share a name).
// Audit events live apart from their node: they outlive it.
//
// The one index, `byNode` (auditNode, sk), exists for listAudit's node filter:
// without it, listing one node's events means reading every event of every node
// and filtering. It is sparse (events without a node are not in it), projects
// everything (an event is small), and is eventually consistent: a node-filtered
// audit list can miss an event written in the last fraction of a second.
//
// Names and namespaces are URI-encoded inside keys, so `#` and `/` only ever
// appear as separators and no name can be a prefix that matches another's items.

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
