// Audit event ids and the `before` cursor of listAudit, shared by every Store
// implementation so that they order and page audit events identically.
//
// An id is the event's instant in canonical form (toISOString: fixed width, so
// string order is time order) followed by a tie-breaker:
//
//   2024-05-01T12:00:00.000Z-000000002a-5f0c9e1b7d
//   └──────── at ──────────┘ └counter─┘ └random──┘
//
// Ordering events by id therefore orders them by `at`, and events sharing an
// `at` by the order this process appended them (the counter); the random part
// keeps ids from two processes unique. One string comparison serves both forms
// of `before`:
//
// - an instant T: every id of an event at T has T as a strict prefix, so it
//   sorts after T, and `id < T` keeps exactly the events strictly older than T;
// - an event id: `id < cursor` keeps exactly the events after that one in
//   newest-first order. Paging with `before: lastEvent.id` visits every event
//   exactly once even when many share an `at`; paging with `before:
//   lastEvent.at` skips the rest of a tie, because an instant cannot tell
//   apart events that share it.

import { randomHex } from '../random-hex.ts'
import type { NewAuditEvent } from '../domain.ts'
import { ServiceError } from '../errors.ts'

const CANONICAL_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/
const AUDIT_ID = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z-[0-9a-f]{10}-[0-9a-f]{10}$/

let appendCounter = 0

function canonicalInstant(value: string, what: string): string {
  const ms = Date.parse(value)
  if (Number.isNaN(ms)) throw new ServiceError('VALIDATION_FAILED', `${what} is not a date-time: ${JSON.stringify(value)}`)
  const iso = new Date(ms).toISOString()
  // Years outside 0000-9999 get a sign and six digits, which breaks the fixed width.
  if (!CANONICAL_INSTANT.test(iso)) throw new ServiceError('VALIDATION_FAILED', `${what} is out of range: ${JSON.stringify(value)}`)
  return iso
}

/** A new, unique id for an event at `at`; ids sort as the events should (oldest first). */
export function newAuditId(at: string): string {
  appendCounter = (appendCounter + 1) % 0x10000000000
  const counter = appendCounter.toString(16).padStart(10, '0')
  const random = randomHex(5)
  return `${canonicalInstant(at, 'at')}-${counter}-${random}`
}

function isAuditId(value: string): boolean {
  return AUDIT_ID.test(value)
}

/**
 * The bound to compare ids against (`id < bound`) for a listAudit `before`:
 * an event id as is, an instant in canonical form.
 */
export function auditCursorBound(before: string): string {
  return isAuditId(before) ? before : canonicalInstant(before, 'before')
}

/**
 * Only the interface's fields are stored: a caller's extra properties must not
 * leak into the returned event or the backing store.
 */
export function pickAuditFields(e: NewAuditEvent): NewAuditEvent {
  return {
    at: e.at,
    actor: e.actor,
    action: e.action,
    node: e.node,
    target: e.target,
    fromHash: e.fromHash,
    toHash: e.toHash,
    result: e.result,
    message: e.message,
    dryRun: e.dryRun,
  }
}
