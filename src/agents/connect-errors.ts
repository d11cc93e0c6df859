// What the API says when an SSH node cannot be reached, or its connection or
// a request over it fails: a few fixed phrases, never the library's own text.
//
// The raw error of ssh2 (or of the socket under it) tells apart far more than
// an operator needs, and far more than an admin should learn from registering
// 127.0.0.1:<port>: parser internals ("Invalid typed array length: -92"),
// banners, what answered instead of sshd. So every such error is mapped here
// to one of the phrases below; the raw error goes to the service log (debug
// level, bounded) through the pool, and nowhere else.
//
// HOST_KEY_MISMATCH keeps its own message (the pool builds it): it names only
// fingerprints, and an admin needs both to decide what to pin.

import { AddressLookupError } from '../net/address-allow.ts'

/** The reasons a connection to a node failed, as the API words them. */
export const CONNECT_FAILURE = {
  refused: 'connection refused',
  timedOut: 'timed out',
  unreachable: 'host unreachable',
  notSsh: 'not an SSH server',
  authFailed: 'SSH authentication failed',
  notResolved: 'host name not resolved',
  notAllowed: 'address not allowed by NODE_ADDRESS_ALLOW',
  failed: 'connection failed',
} as const

export type ConnectFailure = (typeof CONNECT_FAILURE)[keyof typeof CONNECT_FAILURE]

/** Every phrase a connection failure can start with (tests check messages against these). */
export const CONNECT_FAILURES: readonly ConnectFailure[] = Object.values(CONNECT_FAILURE)

const REFUSED = new Set(['ECONNREFUSED'])
const TIMED_OUT = new Set(['ETIMEDOUT'])
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN'])
const NOT_RESOLVED = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_NODATA', 'EAI_FAIL', 'ENODATA', 'ESERVFAIL'])
/** The peer hung up (or reset) before the SSH handshake was through: whatever it was, it did not speak SSH to us. */
const HUNG_UP = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])

/**
 * The reason for an error that ended a connection attempt before it was
 * ready (TCP connect, SSH identification, key exchange, authentication).
 * Anything the parser or the key exchange threw is "not an SSH server": a
 * real sshd does not make ssh2 choke.
 */
export function connectFailure(err: unknown): ConnectFailure {
  if (err instanceof AddressLookupError) return CONNECT_FAILURE.notResolved
  const { code, level } = errorFields(err)
  if (level === 'client-authentication') return CONNECT_FAILURE.authFailed
  if (level === 'client-timeout') return CONNECT_FAILURE.timedOut
  if (level === 'client-dns') return CONNECT_FAILURE.notResolved
  if (code !== undefined) {
    if (REFUSED.has(code)) return CONNECT_FAILURE.refused
    if (TIMED_OUT.has(code)) return CONNECT_FAILURE.timedOut
    if (UNREACHABLE.has(code)) return CONNECT_FAILURE.unreachable
    if (NOT_RESOLVED.has(code)) return CONNECT_FAILURE.notResolved
    if (HUNG_UP.has(code)) return CONNECT_FAILURE.notSsh
  }
  // Other socket errors (EADDRNOTAVAIL, EACCES, ...) are the connection's, not the peer's.
  if (level === 'client-socket') return CONNECT_FAILURE.failed
  // 'protocol', 'handshake', and what ssh2's parser threw (no level at all).
  if (err instanceof Error) return CONNECT_FAILURE.notSsh
  return CONNECT_FAILURE.failed
}

/** The reason an established connection went away, for "the SSH connection was lost (...)". */
export function connectionLost(err: unknown): string {
  const { code, level } = errorFields(err)
  if (level === 'client-timeout') return 'the node stopped answering keepalives'
  if (code !== undefined && HUNG_UP.has(code)) return 'the connection was reset'
  if (code !== undefined && (TIMED_OUT.has(code) || UNREACHABLE.has(code))) return 'the node became unreachable'
  return 'the connection failed'
}

/**
 * Why a channel (an SFTP session, a command, a port forward) could not be
 * opened on an established connection, from the SSH reason code ssh2 puts on
 * the error (RFC 4254 5.1); the node's own description is not repeated.
 */
export function channelFailure(err: unknown): string {
  const reason = typeof err === 'object' && err !== null && 'reason' in err ? err.reason : undefined
  switch (reason) {
    case 1:
      return 'administratively prohibited by the node'
    case 2:
      return 'the node could not connect'
    case 3:
      return 'not supported by the node'
    case 4:
      return 'the node is out of resources'
    default:
      return 'the node refused the channel'
  }
}

/** Bounded, for the debug log: the error's name, code, level and message (at most ~500 characters), and its cause's. */
export function loggableError(err: unknown, depth = 0): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: truncate(String(err)) }
  const { code, level } = errorFields(err)
  const out: Record<string, unknown> = { type: err.name, message: truncate(err.message) }
  if (code !== undefined) out.code = code
  if (level !== undefined) out.level = level
  if (depth < 2 && err.cause !== undefined) out.cause = loggableError(err.cause, depth + 1)
  return out
}

const LOGGED_MESSAGE_MAX_CHARS = 500

function truncate(text: string): string {
  return text.length > LOGGED_MESSAGE_MAX_CHARS ? `${text.slice(0, LOGGED_MESSAGE_MAX_CHARS)}…` : text
}

function errorFields(err: unknown): { code: string | undefined; level: string | undefined } {
  if (typeof err !== 'object' || err === null) return { code: undefined, level: undefined }
  const code = 'code' in err && typeof err.code === 'string' ? err.code : undefined
  const level = 'level' in err && typeof err.level === 'string' ? err.level : undefined
  return { code, level }
}
