// Every mutation leaves an audit event: successes, failures and dry runs, in the
// store (auditEvents query) and as a structured log line. runMutation is the
// one wrapper all mutations go through, so none can forget it.

import type { Logger } from 'pino'
import { isServiceError, userErrorsOf, type UserError } from '../errors.ts'
import type { AuditEvent, NewAuditEvent } from '../domain.ts'
import type { Store } from '../store/store.ts'
import { authorize, canSeeNode, type Actor, type Role } from './actor.ts'

export type AuditEntry = Omit<NewAuditEvent, 'at'>

/** The audit event of a mutation, filled in by the mutation as it learns more. */
export interface AuditDraft {
  node: string | null
  target: string | null
  fromHash: string | null
  toHash: string | null
  message: string | null
}

export interface MutationMeta {
  /** The mutation's name, e.g. updateStaticPod. */
  action: string
  actor: Actor
  /** The role the mutation needs; checked (with the node) before anything else. */
  requires: Role
  node: string | null
  target?: string | null
  dryRun: boolean
}

export class AuditService {
  constructor(
    private readonly store: Store,
    private readonly clock: () => Date,
    private readonly log: Logger,
  ) {}

  async record(entry: AuditEntry): Promise<AuditEvent> {
    const event = await this.store.appendAudit({ ...boundedEntry(entry), at: this.clock().toISOString() })
    this.log.info({ audit: event }, `audit ${event.action} ${event.result}`)
    return event
  }

  /** Newest first; an actor limited to some nodes sees only their events. */
  async list(query: { node?: string | undefined; limit: number; before?: string | undefined }, actor: Actor): Promise<AuditEvent[]> {
    const limit = Math.max(1, Math.min(query.limit, 500))
    if (query.node !== undefined) authorize(actor, 'viewer', query.node)
    if (actor.nodes === null || query.node !== undefined) return this.store.listAudit({ ...query, limit })
    // Restricted actor, all nodes: page through until the limit is filled (bounded).
    const visible: AuditEvent[] = []
    let before = query.before
    for (let page = 0; page < 20 && visible.length < limit; page++) {
      const events = await this.store.listAudit({ before, limit: 500 })
      visible.push(...events.filter((e) => e.node !== null && canSeeNode(actor, e.node)))
      if (events.length < 500) break
      before = events[events.length - 1]?.id
    }
    return visible.slice(0, limit)
  }

  /**
   * Runs a mutation and records its audit event whatever the outcome. Expected
   * failures (ServiceError) become the payload's userErrors through `failed`;
   * anything else is recorded as INTERNAL_ERROR and rethrown.
   */
  async runMutation<R>(meta: MutationMeta, body: (draft: AuditDraft) => Promise<R>, failed: (userErrors: UserError[]) => R): Promise<R> {
    const draft: AuditDraft = { node: meta.node, target: meta.target ?? null, fromHash: null, toHash: null, message: null }
    const record = (result: string, message: string | null) =>
      this.record({ actor: meta.actor.name, action: meta.action, dryRun: meta.dryRun, ...draft, result, message: message ?? draft.message })
    let payload: R
    try {
      authorize(meta.actor, meta.requires, meta.node)
      payload = await body(draft)
    } catch (err) {
      if (!isServiceError(err)) {
        this.log.error({ err, action: meta.action }, 'mutation failed unexpectedly')
        await record('INTERNAL_ERROR', 'unexpected error (see the service log)').catch(() => undefined)
        throw err
      }
      await record(err.code, err.message)
      return failed(userErrorsOf(err))
    }
    await record('OK', null)
    return payload
  }
}

// ------------------------------------------------------------------ bounds

/** Longest identifier kept as given: namespace (63) / name (253), with room. */
const MAX_IDENTIFIER = 320
const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9._:@/-]*$/
const MAX_MESSAGE = 1024

/**
 * The audit event as stored: a mutation may be refused because its input is
 * not an identifier at all (a 1 MB node name), and what it named must not be
 * copied into the store and the log whole. Identifiers keep their value when
 * they have the shape of one; anything else is a short prefix marked as cut.
 */
function boundedEntry(entry: AuditEntry): AuditEntry {
  return { ...entry, node: auditIdentifier(entry.node), target: auditIdentifier(entry.target), message: entry.message && bounded(entry.message, MAX_MESSAGE) }
}

function auditIdentifier(value: string | null): string | null {
  if (value === null || (value.length <= MAX_IDENTIFIER && IDENTIFIER.test(value))) return value
  return `${value.slice(0, 32).replace(/[^A-Za-z0-9._:@/-]/g, '?')}…(invalid, ${value.length} characters)`
}

function bounded(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length} characters)`
}
