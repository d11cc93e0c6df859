// The one error module. Every expected failure is a ServiceError with a code
// from the contract's ErrorCode enum; GraphQL payloads turn it into a UserError,
// REST into {"error": {...}} with the status below, and the errorFormatter into
// extensions.code. Anything that is not a ServiceError is a bug and is reported
// as INTERNAL_SERVER_ERROR without its message or stack.

export type ErrorCode =
  | 'VALIDATION_FAILED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'CONFLICT'
  | 'NODE_UNREACHABLE'
  | 'NODE_UNVERIFIED'
  | 'LOCKED'
  | 'HOST_KEY_MISMATCH'
  | 'API_SERVER_UNAVAILABLE'
  | 'MIRROR_POD_READ_ONLY'
  | 'WRITE_FAILED'
  | 'TIMEOUT'
  | 'FORBIDDEN'
  | 'UNAUTHENTICATED'
  | 'PRIVILEGE_DENIED'
  // Not in the contract's ErrorCode enum: top-level errors only (GraphQL
  // extensions.code, REST error.code), never a UserError.
  | 'RATE_LIMITED'
  | 'BUSY'

/** HTTP status for each code, as the contract's REST section gives them. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  VALIDATION_FAILED: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  // The node refused the service root (sudo -n said no) or a file: the service's access to the node, not the caller's, is at fault.
  PRIVILEGE_DENIED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  CONFLICT: 412,
  LOCKED: 423,
  NODE_UNREACHABLE: 502,
  NODE_UNVERIFIED: 502,
  HOST_KEY_MISMATCH: 502,
  API_SERVER_UNAVAILABLE: 503,
  MIRROR_POD_READ_ONLY: 405,
  WRITE_FAILED: 500,
  TIMEOUT: 504,
  RATE_LIMITED: 429,
  BUSY: 503,
}

export class ServiceError extends Error {
  override readonly name = 'ServiceError'
  readonly code: ErrorCode
  /** Path to the input field at fault, e.g. ['manifest', 'spec', 'containers', '0', 'image']. */
  readonly field: string[] | undefined

  constructor(code: ErrorCode, message: string, field?: Array<string | number>) {
    super(message)
    this.code = code
    this.field = field?.map(String)
  }

  get statusCode(): number {
    return HTTP_STATUS[this.code]
  }
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof ServiceError
}

/** The contract's UserError shape. */
export interface UserError {
  code: ErrorCode
  message: string
  field: string[] | null
}

export function toUserError(err: ServiceError): UserError {
  return { code: err.code, message: err.message, field: err.field ?? null }
}

/** Several validation problems at once (a manifest can have many). */
export class ValidationErrors extends ServiceError {
  readonly problems: ServiceError[]

  constructor(problems: ServiceError[]) {
    const first = problems[0]
    super('VALIDATION_FAILED', first ? first.message : 'invalid input', first?.field)
    this.problems = problems
  }
}

/** Every UserError an error stands for: one, or each problem of a ValidationErrors. */
export function userErrorsOf(err: ServiceError): UserError[] {
  return err instanceof ValidationErrors ? err.problems.map(toUserError) : [toUserError(err)]
}

/**
 * A piece of the caller's input quoted in a message: JSON-quoted, and cut to
 * `max` characters with the full length said, so that a 2 MB label selector or
 * node name is not echoed back, logged or stored whole.
 */
export function quoteInput(value: string, max = 64): string {
  if (value.length <= max) return JSON.stringify(value)
  return `${JSON.stringify(value.slice(0, max))}…(${value.length} characters)`
}

/** The message of whatever was thrown, for a reason or a log line. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
