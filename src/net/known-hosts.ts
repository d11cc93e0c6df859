// OpenSSH known_hosts documents (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"; the
// reading is OpenSSH's hostfile.c and match.c), for importKnownHosts. Pure:
// text in, parsed lines and matches out, no file, socket or store (node:crypto
// only, for the HMAC of hashed names and the fingerprints).
//
// A line is `[marker] hosts keytype base64-key [comment]`:
// - hosts: a comma-separated pattern list (`*` and `?` wildcards, `!`
//   negation, case-insensitive, as match_pattern_list in match.c), or one
//   hashed name `|1|base64 salt|base64 HMAC-SHA1(salt, name)` (ssh-keygen -H,
//   ssh-keyscan -H). A name is `host` on port 22 and `[host]:port` otherwise
//   (put_host_port in OpenSSH's misc.c), hashed or not.
// - keytype: one of HOST_KEY_TYPES; anything else (DSA, security keys,
//   certificates, SSH1 RSA) is reported, never guessed at.
// - marker: @revoked (the key must never be accepted) or @cert-authority
//   (not supported here: ssh2 does not verify host certificates).
// Every line that cannot be used is reported with its number and why; lines
// that match no host are simply not used (a known_hosts file names others too).
//
// Wildcards are honoured as OpenSSH honours them, negation included: a node
// is matched by a line exactly when `ssh` given that document would look the
// line up for it. A @revoked key is revoked for every host, whatever the
// line's host field says (stricter than OpenSSH, which revokes it for the
// hosts the line matches): a revoked host key is a leaked private key, and
// pinning it anywhere would be wrong.

import { createHmac } from 'node:crypto'
import { openSshFingerprint } from '../agents/host-key.ts'
import { ServiceError } from '../errors.ts'

/** The document's bounds, checked before anything is parsed. */
export const KNOWN_HOSTS_LIMITS = {
  /** UTF-8 bytes: ssh-keyscan of 5,000 hosts with three key types each is about 5 MB. */
  maxBytes: 8 * 1024 * 1024,
  lines: 100_000,
  /** A 16384-bit RSA key (OpenSSH's largest) is under 3,000 base64 characters; the rest is room for host lists. */
  lineChars: 16 * 1024,
} as const

/**
 * The host key types that can be pinned, in the order one is chosen when a
 * host has several: ssh2 (src/agents/ssh-pool.ts connects with its default
 * algorithms) offers ssh-ed25519 first, then ECDSA P-256, P-384, P-521, then
 * RSA, and a node serves the first of those it has. So the key chosen is the
 * one the node presents to the service, and the connection finds its pin.
 */
const HOST_KEY_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'] as const
type HostKeyType = (typeof HOST_KEY_TYPES)[number]

/** A plain line's key, for the hosts its host field matches. */
export interface HostKeyLine {
  line: number
  keyType: HostKeyType
  /** `SHA256:...`, as `ssh-keygen -lf` prints it. */
  fingerprint: string
  hosts: HostField
}

/** A @revoked line's key: never pinned, for any host. */
export interface RevokedKey {
  line: number
  keyType: HostKeyType
  fingerprint: string
}

interface IgnoredLine {
  line: number
  /** Why, in words an admin acts on; names no key material beyond the fingerprint. */
  reason: string
}

export interface KnownHostsDocument {
  keys: HostKeyLine[]
  revoked: RevokedKey[]
  ignored: IgnoredLine[]
}

type HostField =
  | { kind: 'hashed'; salt: Buffer; hashed: string }
  | { kind: 'patterns'; positive: string[]; negative: string[]; wildcard: boolean }

/** Longest subpattern OpenSSH matches (match_pattern_list's buffer); a longer one makes its whole list match nothing. */
const MAX_SUBPATTERN_CHARS = 1023
/** HMAC-SHA1's salt and digest length (hostfile.c's extract_salt insists on it). */
const SHA1_BYTES = 20
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
const KNOWN_TYPES = `known: ${HOST_KEY_TYPES.join(', ')}`
const ECDSA_CURVES: Partial<Record<HostKeyType, { curve: string; pointBytes: number }>> = {
  'ecdsa-sha2-nistp256': { curve: 'nistp256', pointBytes: 65 },
  'ecdsa-sha2-nistp384': { curve: 'nistp384', pointBytes: 97 },
  'ecdsa-sha2-nistp521': { curve: 'nistp521', pointBytes: 133 },
}
/** OpenSSH refuses shorter RSA keys (SSH_RSA_MINIMUM_MODULUS_SIZE) and cannot make longer ones. */
const RSA_BITS = { min: 1024, max: 16384 }

/**
 * Parses a known_hosts document. VALIDATION_FAILED (field knownHosts) when it
 * is over KNOWN_HOSTS_LIMITS in bytes or lines, decided before any line is read.
 */
export function parseKnownHosts(text: string): KnownHostsDocument {
  checkBounds(text)
  const doc: KnownHostsDocument = { keys: [], revoked: [], ignored: [] }
  let start = 0
  for (let number = 1; start <= text.length; number++) {
    const end = text.indexOf('\n', start)
    const raw = text.slice(start, end === -1 ? text.length : end)
    start = end === -1 ? text.length + 1 : end + 1
    parseLine(raw.endsWith('\r') ? raw.slice(0, -1) : raw, number, doc)
  }
  return doc
}

function checkBounds(text: string): void {
  // A UTF-16 length is never more than the UTF-8 length, so the cheap test goes first.
  if (text.length > KNOWN_HOSTS_LIMITS.maxBytes || Buffer.byteLength(text, 'utf8') > KNOWN_HOSTS_LIMITS.maxBytes) {
    throw new ServiceError('VALIDATION_FAILED', `knownHosts: the document is larger than ${KNOWN_HOSTS_LIMITS.maxBytes} bytes; import it in parts`, ['knownHosts'])
  }
  const tooMany = (): ServiceError =>
    new ServiceError('VALIDATION_FAILED', `knownHosts: the document has more than ${KNOWN_HOSTS_LIMITS.lines} lines; import it in parts`, ['knownHosts'])
  let newlines = 0
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) {
    if (++newlines > KNOWN_HOSTS_LIMITS.lines) throw tooMany()
  }
  // A final newline ends the last line; it does not start another.
  if ((text.endsWith('\n') ? newlines : newlines + 1) > KNOWN_HOSTS_LIMITS.lines) throw tooMany()
}

function parseLine(line: string, number: number, doc: KnownHostsDocument): void {
  const ignore = (reason: string): void => {
    doc.ignored.push({ line: number, reason })
  }
  if (line.length > KNOWN_HOSTS_LIMITS.lineChars) return ignore(`longer than ${KNOWN_HOSTS_LIMITS.lineChars} characters`)
  const fields = line.split(/[ \t]+/).filter((f) => f !== '')
  if (fields.length === 0 || fields[0]?.startsWith('#')) return // blank or comment
  let marker: '@revoked' | '@cert-authority' | null = null
  if (fields[0]?.startsWith('@')) {
    const given = fields.shift() as string
    if (given !== '@revoked' && given !== '@cert-authority') {
      return ignore(`unknown marker ${quote(given)} (OpenSSH knows @cert-authority and @revoked)`)
    }
    marker = given
  }
  const [hostsText, keyType, keyText] = fields
  if (hostsText === undefined || keyType === undefined || keyText === undefined || keyType.startsWith('#') || keyText.startsWith('#')) {
    return ignore('not a known_hosts line (expected: [marker] hosts key-type base64-key [comment])')
  }
  if (marker === '@cert-authority') {
    return ignore(`@cert-authority ${quote(hostsText)} is not supported (ssh2 does not verify host certificates); pin each host's own key instead`)
  }
  if (!(HOST_KEY_TYPES as readonly string[]).includes(keyType)) {
    const legacy = /^\d+$/.test(keyType) ? ' (an SSH protocol 1 RSA key)' : ''
    return ignore(`key type ${quote(keyType)}${legacy} is not supported (${KNOWN_TYPES})`)
  }
  const type = keyType as HostKeyType
  const blob = keyBlob(type, keyText)
  if (typeof blob === 'string') return ignore(`the ${type} key ${blob}`)
  const fingerprint = openSshFingerprint(blob)
  if (marker === '@revoked') {
    // Honoured whatever the host field says, even one that does not parse: revocation must not be lost to a typo.
    doc.revoked.push({ line: number, keyType: type, fingerprint })
    return
  }
  const hosts = hostField(hostsText)
  if (typeof hosts === 'string') return ignore(hosts)
  doc.keys.push({ line: number, keyType: type, fingerprint, hosts })
}

/** The host field, or why it cannot be used. */
function hostField(text: string): HostField | string {
  if (text.startsWith('|')) {
    const parts = text.split('|')
    const [, magic, salt, hash] = parts
    const saltBytes = salt !== undefined && BASE64.test(salt) ? Buffer.from(salt, 'base64') : null
    if (parts.length !== 4 || magic !== '1' || saltBytes?.length !== SHA1_BYTES || hash === undefined || !BASE64.test(hash)) {
      return `${quote(text)} is not a hashed host name as OpenSSH writes them (|1|base64 salt|base64 HMAC-SHA1)`
    }
    // OpenSSH compares the whole re-encoded field: a salt written another way than base64's own never matches.
    return { kind: 'hashed', salt: saltBytes, hashed: text }
  }
  const positive: string[] = []
  const negative: string[] = []
  for (const item of text.split(',')) {
    const negated = item.startsWith('!')
    const pattern = asciiLowercase(negated ? item.slice(1) : item)
    if (pattern.length >= MAX_SUBPATTERN_CHARS) {
      return `host pattern ${quote(pattern)} is ${MAX_SUBPATTERN_CHARS} characters or longer (OpenSSH matches nothing with such a list)`
    }
    ;(negated ? negative : positive).push(pattern)
  }
  return { kind: 'patterns', positive, negative, wildcard: [...positive, ...negative].some((p) => /[*?]/.test(p)) }
}

/** The decoded public key blob, or why it is not a `type` key (structure checked as OpenSSH's sshkey_read would). */
function keyBlob(type: HostKeyType, text: string): Buffer | string {
  if (!BASE64.test(text) || text.length % 4 !== 0) return 'is not base64'
  const blob = Buffer.from(text, 'base64')
  const reader = new WireReader(blob)
  if (reader.string()?.toString('latin1') !== type) return `does not parse (its blob is not an ${type} key)`
  if (type === 'ssh-ed25519') {
    if (reader.string()?.length !== 32 || !reader.done) return 'does not parse (an Ed25519 key is 32 bytes)'
    return blob
  }
  const ecdsa = ECDSA_CURVES[type]
  if (ecdsa) {
    const curve = reader.string()?.toString('latin1')
    const point = reader.string()
    if (curve !== ecdsa.curve || point?.length !== ecdsa.pointBytes || point[0] !== 0x04 || !reader.done) {
      return `does not parse (not an uncompressed ${ecdsa.curve} point)`
    }
    return blob
  }
  const exponent = reader.string()
  const modulus = reader.string()
  if (!exponent?.length || !modulus?.length || !reader.done) return 'does not parse (expected an exponent and a modulus)'
  const bits = mpintBits(modulus)
  if (bits < RSA_BITS.min || bits > RSA_BITS.max) return `has ${bits} bits (OpenSSH accepts ${RSA_BITS.min} to ${RSA_BITS.max})`
  return blob
}

/** SSH wire strings (RFC 4251 5: uint32 length, then the bytes), read without running past the end. */
class WireReader {
  #at = 0
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.#at === this.buf.length
  }

  string(): Buffer | null {
    if (this.#at + 4 > this.buf.length) return null
    const length = this.buf.readUInt32BE(this.#at)
    if (this.#at + 4 + length > this.buf.length) return null
    const value = this.buf.subarray(this.#at + 4, this.#at + 4 + length)
    this.#at += 4 + length
    return value
  }
}

function mpintBits(value: Buffer): number {
  let first = 0
  while (first < value.length && value[first] === 0) first++
  if (first === value.length) return 0
  return (value.length - first - 1) * 8 + (32 - Math.clz32(value[first] as number))
}

// ------------------------------------------------------------------ matching

/**
 * How OpenSSH names a host in known_hosts (put_host_port, lowercased as ssh
 * does before it looks a host up): `host` on port 22, `[host]:port` otherwise.
 */
export function knownHostsName(host: string, port: number): string {
  const name = asciiLowercase(host)
  return port === 22 ? name : `[${name}]:${port}`
}

/** Whether the line's host field matches the name (from knownHostsName), as OpenSSH's match_maybe_hashed decides. */
export function hostFieldMatches(hosts: HostField, name: string): boolean {
  if (hosts.kind === 'hashed') {
    const hmac = createHmac('sha1', hosts.salt).update(name).digest('base64')
    return `|1|${hosts.salt.toString('base64')}|${hmac}` === hosts.hashed
  }
  if (hosts.negative.some((p) => globMatches(name, p))) return false
  return hosts.positive.some((p) => globMatches(name, p))
}

/**
 * The document's plain keys, looked up by host name: lines naming hosts
 * literally are found through a map; hashed lines and lines with wildcards are
 * tried one by one (`slowLines` of them for each name looked up, which the
 * caller bounds).
 */
export class KnownHostsIndex {
  readonly #literal = new Map<string, HostKeyLine[]>()
  readonly #slow: HostKeyLine[] = []

  constructor(keys: readonly HostKeyLine[]) {
    for (const key of keys) {
      if (key.hosts.kind === 'hashed' || key.hosts.wildcard) {
        this.#slow.push(key)
        continue
      }
      for (const name of new Set(key.hosts.positive)) {
        const lines = this.#literal.get(name)
        if (lines) lines.push(key)
        else this.#literal.set(name, [key])
      }
    }
  }

  /** Lines tried one by one for each lookup (hashed, or with wildcards). */
  get slowLines(): number {
    return this.#slow.length
  }

  /** The lines whose host field matches the name (from knownHostsName), in document order. */
  lookup(name: string): HostKeyLine[] {
    const literal = (this.#literal.get(name) ?? []).filter((k) => k.hosts.kind === 'patterns' && !k.hosts.negative.includes(name))
    const slow = this.#slow.filter((k) => hostFieldMatches(k.hosts, name))
    return [...literal, ...slow].sort((a, b) => a.line - b.line)
  }
}

export type PinChoice =
  | { kind: 'none' }
  | { kind: 'one'; key: HostKeyLine }
  /** Two or more different keys of the most preferred type the host has: nothing is chosen. */
  | { kind: 'ambiguous'; keys: HostKeyLine[] }

/**
 * The key to pin from a host's usable lines: the first of HOST_KEY_TYPES the
 * host has a key of. Two different keys of that type cannot both be what the
 * node presents, and guessing one could pin the wrong one: ambiguous.
 */
export function choosePin(keys: readonly HostKeyLine[]): PinChoice {
  for (const type of HOST_KEY_TYPES) {
    const ofType = keys.filter((k) => k.keyType === type)
    if (ofType.length === 0) continue
    const distinct = ofType.filter((k, i) => ofType.findIndex((o) => o.fingerprint === k.fingerprint) === i)
    return distinct.length === 1 ? { kind: 'one', key: distinct[0] as HostKeyLine } : { kind: 'ambiguous', keys: distinct }
  }
  return { kind: 'none' }
}

/**
 * OpenSSH's match_pattern: `*` any run of characters, `?` one, the rest
 * literal. Iterative with one backtrack point, so a pattern of many stars
 * costs at most length × length steps, never an exponential search.
 */
function globMatches(text: string, pattern: string): boolean {
  let t = 0
  let p = 0
  let star = -1
  let resume = 0
  while (t < text.length) {
    const c = pattern[p]
    if (c === '*') {
      star = p++
      resume = t
    } else if (c !== undefined && (c === '?' || c === text[t])) {
      t++
      p++
    } else if (star !== -1) {
      p = star + 1
      t = ++resume
    } else {
      return false
    }
  }
  while (pattern[p] === '*') p++
  return p === pattern.length
}

/** Lowercases A-Z only, as OpenSSH's tolower() in the C locale does. */
function asciiLowercase(text: string): string {
  return text.replace(/[A-Z]+/g, (s) => s.toLowerCase())
}

/** A piece of the document quoted in a reason: JSON-quoted, at most 64 characters. */
function quote(text: string): string {
  return text.length <= 64 ? JSON.stringify(text) : `${JSON.stringify(text.slice(0, 64))}…`
}
