// The multi-item DynamoDB calls, done completely: a Query followed through
// every LastEvaluatedKey, a BatchGetItem split into calls of at most 100 keys
// whose UnprocessedKeys are asked again, a BatchWriteItem split into calls of
// at most 25 requests whose UnprocessedItems are sent again. DynamoDB answers
// part of a batch whenever a partition is throttled or a response would pass
// 16 MB; a caller that ignored the rest would lose data silently.

import {
  BatchGetCommand,
  BatchWriteCommand,
  QueryCommand,
  type DynamoDBDocumentClient,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb'

export type Item = Record<string, unknown>
export type ItemKey = { pk: string; sk: string }

/** DynamoDB's own limits per call. */
const BATCH_GET_MAX_KEYS = 100
const BATCH_WRITE_MAX_REQUESTS = 25

export interface RetryPolicy {
  /** Calls for one batch before giving up on what is still unprocessed. */
  maxAttempts: number
  baseDelayMs: number
  maxDelayMs: number
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 10, baseDelayMs: 20, maxDelayMs: 1000 }

/** Full jitter exponential backoff (AWS's recommendation for unprocessed batch items). */
function backoff(policy: RetryPolicy, attempt: number): Promise<void> {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1))
  return new Promise((resolve) => setTimeout(resolve, Math.random() * cap))
}

function inGroups<T>(items: T[], size: number): T[][] {
  const groups: T[][] = []
  for (let i = 0; i < items.length; i += size) groups.push(items.slice(i, i + size))
  return groups
}

export class DynamoIo {
  constructor(
    readonly doc: DynamoDBDocumentClient,
    readonly table: string,
    readonly retry: RetryPolicy = DEFAULT_RETRY,
    /** Items per Query page; undefined lets DynamoDB fill pages up to 1 MB. Tests set it small to cross pages. */
    readonly pageSize: number | undefined = undefined,
  ) {}

  /**
   * Every item the query matches, in order, following LastEvaluatedKey, up to
   * `max` items when given.
   */
  async queryAll(input: Omit<QueryCommandInput, 'TableName' | 'ExclusiveStartKey' | 'Limit'>, max?: number): Promise<Item[]> {
    const items: Item[] = []
    let start: Record<string, unknown> | undefined
    do {
      const remaining = max === undefined ? undefined : max - items.length
      const limit = minDefined(remaining, this.pageSize)
      const page = await this.doc.send(new QueryCommand({ ...input, TableName: this.table, ExclusiveStartKey: start, Limit: limit }))
      items.push(...(page.Items ?? []))
      start = page.LastEvaluatedKey
    } while (start !== undefined && (max === undefined || items.length < max))
    return max === undefined ? items : items.slice(0, max)
  }

  /**
   * Up to `max` items of a query with a FilterExpression, in order, from at
   * most `maxPages` pages. A page's Limit counts the items read before the
   * filter, so it is not cut down to what is still wanted; and a filter that
   * matches little would otherwise read its whole key range in one call.
   */
  async queryFiltered(input: Omit<QueryCommandInput, 'TableName' | 'ExclusiveStartKey' | 'Limit'>, max: number, maxPages: number): Promise<Item[]> {
    const items: Item[] = []
    let start: Record<string, unknown> | undefined
    for (let page = 0; page < maxPages && items.length < max; page++) {
      const result = await this.doc.send(new QueryCommand({ ...input, TableName: this.table, ExclusiveStartKey: start, Limit: this.pageSize }))
      items.push(...(result.Items ?? []))
      start = result.LastEvaluatedKey
      if (start === undefined) break
    }
    return items.slice(0, max)
  }

  /**
   * The items at `keys` (strongly consistent), as a map from `pk sk` to item;
   * absent items are not in it. Keys asked twice are asked once.
   */
  async batchGet(keys: ItemKey[]): Promise<Map<string, Item>> {
    const unique = new Map(keys.map((k) => [itemKeyString(k), { pk: k.pk, sk: k.sk }]))
    const found = new Map<string, Item>()
    const groups = inGroups([...unique.values()], BATCH_GET_MAX_KEYS)
    await Promise.all(
      groups.map(async (group) => {
        let pending: Array<Record<string, unknown>> = group
        for (let attempt = 1; pending.length > 0; attempt++) {
          if (attempt > 1) {
            if (attempt > this.retry.maxAttempts) {
              throw new Error(`DynamoDB left ${pending.length} of ${group.length} keys unread after ${this.retry.maxAttempts} attempts`)
            }
            await backoff(this.retry, attempt - 1)
          }
          const result = await this.doc.send(
            new BatchGetCommand({ RequestItems: { [this.table]: { Keys: pending, ConsistentRead: true } } }),
          )
          for (const item of result.Responses?.[this.table] ?? []) found.set(itemKeyString(item as ItemKey), item)
          pending = result.UnprocessedKeys?.[this.table]?.Keys ?? []
        }
      }),
    )
    return found
  }

  /** Puts and deletes, in calls of 25, until DynamoDB has processed every one. */
  async batchWrite(requests: Array<{ put: Item } | { delete: ItemKey }>): Promise<void> {
    const asRequests = requests.map((r) =>
      'put' in r ? { PutRequest: { Item: r.put } } : { DeleteRequest: { Key: { pk: r.delete.pk, sk: r.delete.sk } } },
    )
    for (const group of inGroups(asRequests, BATCH_WRITE_MAX_REQUESTS)) {
      let pending: typeof asRequests = group
      for (let attempt = 1; pending.length > 0; attempt++) {
        if (attempt > 1) {
          if (attempt > this.retry.maxAttempts) {
            throw new Error(`DynamoDB left ${pending.length} of ${group.length} writes unprocessed after ${this.retry.maxAttempts} attempts`)
          }
          await backoff(this.retry, attempt - 1)
        }
        const result = await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.table]: pending } }))
        pending = (result.UnprocessedItems?.[this.table] ?? []) as typeof asRequests
      }
    }
  }
}

export const itemKeyString = (k: ItemKey): string => `${k.pk} ${k.sk}`

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return Math.min(a, b)
}
