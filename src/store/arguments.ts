// Checks on the arguments of Store calls that both stores make alike.

import { ServiceError } from '../errors.ts'

/** A count or a revision number: a non-negative safe integer, else VALIDATION_FAILED naming the argument. */
export function requireCount(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ServiceError('VALIDATION_FAILED', `${what} must be a non-negative integer, got ${value}`, [what])
  }
}
