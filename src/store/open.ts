// Opens the store that STORE_URL names. Each backend is imported only when it
// is chosen: the SQLite server never loads the AWS SDK, and the Lambda bundle
// never loads better-sqlite3 (a native module it does not ship).

import type { StoreLocation } from '../config.ts'
import type { Store } from './store.ts'

export interface StoreConnection {
  /** DYNAMODB_ENDPOINT: a local DynamoDB instead of AWS's (region still applies). */
  dynamodbEndpoint?: string | undefined
}

export async function openStore(location: StoreLocation, connection: StoreConnection = {}): Promise<Store> {
  switch (location.kind) {
    case 'sqlite': {
      const { SqliteStore } = await import('./sqlite.ts')
      return SqliteStore.open(location.path)
    }
    case 'dynamodb': {
      const { DynamoStore } = await import('./dynamodb.ts')
      return new DynamoStore({ table: location.table, endpoint: connection.dynamodbEndpoint })
    }
  }
}
