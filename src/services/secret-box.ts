// Webhook secrets at rest: sealed with AES-256-GCM under the service's key
// (WEBHOOK_SECRET_KEY / WEBHOOK_SECRET_KEY_FILE) before they reach the store,
// so a copy of the SQLite file or the DynamoDB table does not give away the
// secrets that sign deliveries. The store keeps the sealed text and never sees
// a secret in clear.
//
// Sealed form: v1.<iv>.<tag>.<ciphertext>, each part base64url, a random
// 12-byte IV per seal and the full 16-byte tag. Opening checks the tag: a
// changed part, a shortened tag or another key is refused. No error message
// carries key material or the secret.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

const ALGORITHM = 'aes-256-gcm'
const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16
const VERSION = 'v1'
const BASE64URL = /^[A-Za-z0-9_-]*$/

export class SecretBox {
  readonly #key: Buffer

  /** `key`: 32 bytes (parseSecretKey reads them from the configuration). */
  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error(`a secret box key must be ${KEY_BYTES} bytes (AES-256), not ${key.length}`)
    this.#key = Buffer.from(key)
  }

  seal(plain: string): string {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv(ALGORITHM, this.#key, iv, { authTagLength: TAG_BYTES })
    const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
    return [VERSION, iv, cipher.getAuthTag(), ciphertext].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.')
  }

  /** The plain text of what seal made with this key; throws for anything else (changed, cut, another key, not sealed at all). */
  open(sealed: string): string {
    const parts = sealed.split('.')
    if (parts.length !== 4 || parts[0] !== VERSION || !parts.slice(1).every((p) => BASE64URL.test(p))) {
      throw new Error(`not a sealed secret (expected ${VERSION}.<iv>.<tag>.<ciphertext>)`)
    }
    const [iv, tag, ciphertext] = parts.slice(1).map((p) => Buffer.from(p, 'base64url')) as [Buffer, Buffer, Buffer]
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new Error('not a sealed secret (wrong IV or tag length)')
    const decipher = createDecipheriv(ALGORITHM, this.#key, iv, { authTagLength: TAG_BYTES })
    decipher.setAuthTag(tag)
    try {
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8')
    } catch {
      throw new Error('the sealed secret does not open with this key: it was changed, or sealed with another WEBHOOK_SECRET_KEY')
    }
  }
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/
/** base64 or base64url of 32 bytes: 43 characters, with or without the one "=" of padding. */
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/

/**
 * The 32-byte key in WEBHOOK_SECRET_KEY (or the file WEBHOOK_SECRET_KEY_FILE
 * names): 64 hexadecimal characters, or base64 / base64url of 32 bytes.
 * Surrounding white space (a file's newline) is ignored. The error says what
 * is expected and how long the value was, never the value.
 */
export function parseSecretKey(text: string): Buffer {
  const value = text.trim()
  if (HEX_KEY.test(value)) return Buffer.from(value, 'hex')
  if (BASE64_KEY.test(value)) {
    const key = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
    if (key.length === KEY_BYTES) return key
  }
  throw new Error(
    `the webhook secret key must be ${KEY_BYTES} bytes written as 64 hexadecimal characters or as base64 (make one with \`openssl rand -hex 32\`); ` +
      `the value given (${value.length} characters) is neither`,
  )
}
