// A local DynamoDB for tests: dynalite, in this process, on 127.0.0.1 and a
// port the OS picks, in memory. It lacks TransactWriteItems, which the store
// does not use.

import { createRequire } from 'node:module'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { DynamoDBClient } from '@aws-sdk/client-dynamodb'
import { createTable } from '../../src/store/dynamodb-table.ts'

// dynalite is CommonJS without types: the one function it exports, typed here.
const dynalite = createRequire(import.meta.url)('dynalite') as (options: { createTableMs?: number; deleteTableMs?: number; updateTableMs?: number }) => Server

/** Credentials dynalite accepts and AWS would not: nothing here can reach AWS. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' }
export const LOCAL_REGION = 'us-east-1'

export interface LocalDynamo {
  endpoint: string
  /** A client for this endpoint; the caller destroys it. */
  client(): DynamoDBClient
  /** Creates a table with the store's key schema under a fresh name and returns the name. */
  freshTable(prefix?: string): Promise<string>
  close(): Promise<void>
}

let tableCounter = 0

export async function startDynalite(): Promise<LocalDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const endpoint = `http://127.0.0.1:${port}`
  const client = () => new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS })
  const admin = client()
  return {
    endpoint,
    client,
    async freshTable(prefix = 'staticpod') {
      const name = `${prefix}-${process.pid}-${++tableCounter}`
      await createTable(admin, name)
      return name
    },
    async close() {
      admin.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
