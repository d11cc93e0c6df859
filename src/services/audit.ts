// Every mutation leaves an audit event: successes, failures and dry runs, in the
// store (auditEvents query) and as a structured log line. runMutation is the
// one wrapper all mutations go through, so none can forget it.

import type { Logger } from 'pino'
import { isServiceError, userErrorsOf, type UserError } from '../errors.ts'
import type { AuditEvent, NewAuditEvent, Store } from '../store/store.ts'

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
  actor: string
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
    const event = await this.store.appendAudit({ ...entry, at: this.clock().toISOString() })
    this.log.info({ audit: event }, `audit ${event.action} ${event.result}`)
    return event
  }

  list(query: { node?: string | undefined; limit: number; before?: string | undefined }): Promise<AuditEvent[]> {
    return this.store.listAudit({ ...query, limit: Math.max(1, Math.min(query.limit, 500)) })
  }

  /**
   * Runs a mutation and records its audit event whatever the outcome. Expected
   * failures (ServiceError) become the payload's userErrors through `failed`;
   * anything else is recorded as INTERNAL_ERROR and rethrown.
   */
  async runMutation<R>(meta: MutationMeta, body: (draft: AuditDraft) => Promise<R>, failed: (userErrors: UserError[]) => R): Promise<R> {
    const draft: AuditDraft = { node: meta.node, target: meta.target ?? null, fromHash: null, toHash: null, message: null }
    const record = (result: string, message: string | null) =>
      this.record({ actor: meta.actor, action: meta.action, dryRun: meta.dryRun, ...draft, result, message: message ?? draft.message })
    let payload: R
    try {
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
