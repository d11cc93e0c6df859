// The one place where a failure becomes an exit status. Every failure the
// client meets (a service error's extensions.code, a payload's userErrors[].code,
// a node's error in a rollout, a usage error, a connection that failed) is a
// CliError carrying the service's code; exitCodeOf() is the only mapping from
// codes to the exit statuses scripts rely on (docs/staticpodctl.md).

export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  CONFLICT: 4,
  DENIED: 5,
  NODE_UNREACHABLE: 6,
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

/** The service's codes (ErrorCode enum and top-level extensions.code) that do not mean "failed" (1). */
const EXIT_BY_CODE: Readonly<Record<string, ExitCode>> = {
  NOT_FOUND: EXIT.NOT_FOUND,
  // Someone else's change got in the way: the file is not the one you read
  // (CONFLICT), it is there already (ALREADY_EXISTS), or another change to the
  // node is in progress (LOCKED). Read again, then retry.
  CONFLICT: EXIT.CONFLICT,
  ALREADY_EXISTS: EXIT.CONFLICT,
  LOCKED: EXIT.CONFLICT,
  UNAUTHENTICATED: EXIT.DENIED,
  FORBIDDEN: EXIT.DENIED,
  // The service cannot talk to the node (down, not verified, another host key).
  NODE_UNREACHABLE: EXIT.NODE_UNREACHABLE,
  NODE_UNVERIFIED: EXIT.NODE_UNREACHABLE,
  HOST_KEY_MISMATCH: EXIT.NODE_UNREACHABLE,
  // The client's own: bad arguments or flags.
  USAGE: EXIT.USAGE,
}

export function exitCodeOf(code: string): ExitCode {
  return EXIT_BY_CODE[code] ?? EXIT.FAILED
}

/** A failure to report: `error: <code>: <message>` on stderr, and exitCodeOf(code). */
export class CliError extends Error {
  override readonly name = 'CliError'
  constructor(
    readonly code: string,
    message: string,
    /** More lines for stderr (other user errors, where an edit was kept). */
    readonly details: string[] = [],
  ) {
    super(message)
  }

  get exitCode(): ExitCode {
    return exitCodeOf(this.code)
  }
}

export function usage(message: string): CliError {
  return new CliError('USAGE', message)
}

/** The service's UserError shape (payloads' userErrors, a rollout node's error). */
export interface UserError {
  code: string
  message: string
  field?: string[] | null
}

export function userErrorText(e: UserError): string {
  return `${e.code}: ${e.message}${e.field && e.field.length > 0 ? ` (field ${e.field.join('.')})` : ''}`
}

/** Throws the first of a payload's userErrors (the others go along as details). */
export function throwUserErrors(errors: readonly UserError[] | null | undefined): void {
  const [first, ...rest] = errors ?? []
  if (!first) return
  throw new CliError(first.code, `${first.message}${first.field && first.field.length > 0 ? ` (field ${first.field.join('.')})` : ''}`, rest.map((e) => `error: ${userErrorText(e)}`))
}
