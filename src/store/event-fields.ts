// What both stores check and copy of events alike, so that they accept the
// same calls and answer the same records.

import type { EventRecord, NewEvent } from '../domain.ts'
import { ServiceError } from '../errors.ts'

const DECIMAL = /^\d+$/
const CANONICAL_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/**
 * The number an `after` or `before` cursor names; VALIDATION_FAILED naming
 * the field when it is not a decimal integer. One past every id the store can
 * hand out (a safe integer) bounds like the largest of them: nothing is after
 * it, everything before it.
 */
export function eventIdBound(value: string, field: 'after' | 'before'): number {
  if (!DECIMAL.test(value)) {
    throw new ServiceError('VALIDATION_FAILED', `${field} must be an event id (a decimal integer), got ${JSON.stringify(value)}`, [field])
  }
  return Math.min(Number(value), Number.MAX_SAFE_INTEGER)
}

/**
 * An instant in toISOString's form. Both stores compare an event's `at` with
 * pruneEvents' bound as strings, which orders instants only in this one
 * fixed-width form.
 */
export function canonicalEventInstant(value: string, field: string): string {
  const ms = Date.parse(value)
  // Years outside 0000-9999 get a sign and six digits, which breaks the fixed width.
  const iso = Number.isNaN(ms) ? '' : new Date(ms).toISOString()
  if (!CANONICAL_INSTANT.test(iso)) throw new ServiceError('VALIDATION_FAILED', `${field} is not a date-time in range: ${JSON.stringify(value)}`, [field])
  return iso
}

/**
 * A new event's fields, copied now (the caller may reuse its objects before
 * the write runs; extra properties must not reach the store), `at` canonical.
 */
export function newEventFields(e: NewEvent): NewEvent {
  const fields: NewEvent = {
    at: canonicalEventInstant(e.at, 'at'),
    type: e.type,
    node: e.node,
    namespace: e.namespace,
    name: e.name,
    message: e.message,
    fromHash: e.fromHash,
    toHash: e.toHash,
    actor: e.actor,
  }
  if (e.onceKey !== undefined) fields.onceKey = e.onceKey
  return fields
}

/** The record an appended event is answered as: its id, without its onceKey. */
export function storedEvent(id: number, e: NewEvent): EventRecord {
  return {
    id: String(id),
    at: e.at,
    type: e.type,
    node: e.node,
    namespace: e.namespace,
    name: e.name,
    message: e.message,
    fromHash: e.fromHash,
    toHash: e.toHash,
    actor: e.actor,
  }
}
