// Logger options: pino JSON (pretty on a TTY), request ids, and redaction of
// everything secret: Authorization headers, tokens, private keys, and
// Secret-looking values that could reach a log line inside an error message
// (a YAML error quotes the manifest line it failed on).

import type { FastifyServerOptions } from 'fastify'
import type { LoggerOptions } from 'pino'

const REDACTED = '[REDACTED]'

/** Paths pino removes wherever they appear in a log object. */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.authorization',
  '*.privateKey',
  '*.sshPrivateKey',
  '*.token',
  '*.tokens',
  '*.authTokens',
  '*.password',
  'config.sshPrivateKey',
  'config.authTokens',
  'config.tokens',
]

/** A key that names a secret: password, client_secret, AUTH_TOKENS, api-key, privateKey, credentials ... */
const SECRET_KEY = String.raw`[\w.-]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key|credentials?)[\w.-]*`
/** A value not already masked (so scrubbing twice changes nothing). */
const UNMASKED = String.raw`(?!\[REDACTED\])`
const QUOTED = String.raw`"[^"]*"|'[^']*'`
const BARE = String.raw`[^\s,;"'})\]]+`

// Values are masked, prose is not. A secret-named key followed by "=" or by a
// quoted value is a value anywhere. After "key:" alone, a word with digits or
// signs in it is a value, and so is a single word ending the phrase (line end,
// comma, bracket), as in an error that says `bad token: expired`; words
// running on are prose, as in the start message of src/app.ts (`no
// AUTH_TOKENS_FILE or AUTH_TOKENS: every caller is the anonymous admin ...`).
// A line of YAML quoted into a message (a parse error shows the lines it
// failed on, each after a newline) is masked to its end, multi-word values
// included.
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  // PEM blocks: private keys and certificates' keys.
  [/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g, REDACTED],
  // Bearer tokens in a header value quoted into a message.
  [/\b(Bearer\s+)[^\s"',]+/gi, `$1${REDACTED}`],
  // A quoted YAML line: `\n  password: two words` (and `- token: x` in a list).
  [new RegExp(String.raw`(\n[ \t]*(?:-[ \t]+)?["']?${SECRET_KEY}["']?[ \t]*:[ \t]*)${UNMASKED}[^\s][^\n]*`, 'gi'), `$1${REDACTED}`],
  // key=value, key = "value" (--token=..., password="...").
  [new RegExp(String.raw`\b(${SECRET_KEY}["']?[ \t]*=[ \t]*)${UNMASKED}(?:${QUOTED}|${BARE})`, 'gi'), `$1${REDACTED}`],
  // key: "value", "token":"value" (JSON).
  [new RegExp(String.raw`\b(${SECRET_KEY}["']?[ \t]*:[ \t]*)(?:${QUOTED})`, 'gi'), `$1${REDACTED}`],
  // key: value, the value a bare word with more than letters in it (abc123, sk-1f3e), wherever it stands ...
  [new RegExp(String.raw`\b(${SECRET_KEY}["']?[ \t]*:[ \t]*)${UNMASKED}(?=[^\s,;"'})\]]*[^A-Za-z\s,;"'})\]])${BARE}`, 'gi'), `$1${REDACTED}`],
  // ... or any bare word that ends the phrase.
  [new RegExp(String.raw`\b(${SECRET_KEY}["']?[ \t]*:[ \t]*)${UNMASKED}${BARE}(?=[ \t]*(?:[\r\n,;})\]]|$))`, 'gi'), `$1${REDACTED}`],
]

/** Masks Secret-looking values in free text. */
export function scrubSecrets(text: string): string {
  let out = text
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement)
  return out
}

/** Longest string a log line carries: one request must not be able to write megabytes to the log. */
const MAX_LOGGED_STRING = 4096

function scrubDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubSecrets(boundedString(value))
  if (depth > 6 || value === null || typeof value !== 'object') return value
  // Errors, requests and the like have serializers of their own; only plain data is walked here.
  const prototype = Object.getPrototypeOf(value) as unknown
  if (!Array.isArray(value) && prototype !== Object.prototype && prototype !== null) return value
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, depth + 1))
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrubDeep(v, depth + 1)]))
}

function boundedString(text: string): string {
  return text.length > MAX_LOGGED_STRING ? `${text.slice(0, MAX_LOGGED_STRING)}…(${text.length} chars)` : text
}

export function loggerOptions(level: string, destination?: FastifyServerOptions['logger']): FastifyServerOptions['logger'] {
  if (destination !== undefined) return destination
  const options: LoggerOptions = {
    level,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    formatters: { log: (object) => scrubDeep(object) as Record<string, unknown> },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? scrubSecrets(boundedString(a)) : a)) as Parameters<typeof method>)
      },
    },
    serializers: {
      err: (err: Error & { code?: unknown }) => ({
        type: err.name,
        message: scrubSecrets(boundedString(err.message)),
        code: err.code,
        stack: err.stack && scrubSecrets(boundedString(err.stack)),
      }),
    },
  }
  if (process.stdout.isTTY && process.env.NODE_ENV !== 'production') {
    options.transport = { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }
  }
  return options
}

/** A logger that writes JSON lines to a stream (tests capture log lines this way). */
export function streamLogger(level: string, stream: { write(line: string): void }): FastifyServerOptions['logger'] {
  const options = loggerOptions(level) as LoggerOptions
  delete options.transport
  return { ...options, stream } as FastifyServerOptions['logger']
}
