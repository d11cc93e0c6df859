// SecretBox: webhook secrets sealed with AES-256-GCM, and the key's two written forms.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { parseSecretKey, SecretBox } from '../../src/services/secret-box.ts'

const key = randomBytes(32)

test('seal then open gives the text back; every seal is different (random IV), in the v1 form', () => {
  const box = new SecretBox(key)
  for (const plain of ['s3cret-value', '', 'ünïcødé ✓ and a long one '.repeat(40)]) {
    const a = box.seal(plain)
    const b = box.seal(plain)
    assert.notEqual(a, b)
    assert.equal(box.open(a), plain)
    assert.equal(box.open(b), plain)
    if (plain !== '') assert.ok(!a.includes(plain) && !a.includes(Buffer.from(plain).toString('base64url')), 'the plain text is not in the sealed text')
    const [version, iv, tag, ciphertext, ...rest] = a.split('.')
    assert.equal(version, 'v1')
    assert.deepEqual(rest, [])
    assert.equal(Buffer.from(iv!, 'base64url').length, 12)
    assert.equal(Buffer.from(tag!, 'base64url').length, 16)
    assert.equal(Buffer.from(ciphertext!, 'base64url').length, Buffer.byteLength(plain))
    for (const part of [iv, tag, ciphertext]) assert.match(part!, /^[A-Za-z0-9_-]*$/)
  }
})

/** The sealed text with one bit of one part flipped. */
function flipped(sealed: string, part: 1 | 2 | 3): string {
  const parts = sealed.split('.')
  const bytes = Buffer.from(parts[part]!, 'base64url')
  bytes[0] = bytes[0]! ^ 1
  parts[part] = bytes.toString('base64url')
  return parts.join('.')
}

test('a changed IV, tag or ciphertext, a cut tag, another key or no sealed text at all: open throws', () => {
  const box = new SecretBox(key)
  const sealed = box.seal('the-webhook-secret')
  for (const part of [1, 2, 3] as const) assert.throws(() => box.open(flipped(sealed, part)), /does not open with this key/)
  const [v, iv, tag, ct] = sealed.split('.') as [string, string, string, string]
  // GCM accepts shorter tags unless told otherwise: a 4-byte tag is far easier to forge.
  const shortTag = Buffer.from(tag, 'base64url').subarray(0, 4).toString('base64url')
  assert.throws(() => box.open([v, iv, shortTag, ct].join('.')), /wrong IV or tag length/)
  assert.throws(() => new SecretBox(randomBytes(32)).open(sealed), /does not open with this key/)
  for (const garbage of ['', 'the-webhook-secret', 'v2.' + sealed.slice(3), `${sealed}.x`, [v, iv, tag, `${ct}!`].join('.')]) {
    assert.throws(() => box.open(garbage), /not a sealed secret/)
  }
  assert.equal(box.open(sealed), 'the-webhook-secret')
})

test('the key must be 32 bytes', () => {
  assert.throws(() => new SecretBox(randomBytes(16)), /must be 32 bytes/)
  assert.throws(() => new SecretBox(Buffer.alloc(0)), /must be 32 bytes/)
})

test('parseSecretKey reads 64 hex characters or base64 / base64url of 32 bytes, padded or not, white space around ignored', () => {
  const raw = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 250) % 256))
  const b64 = raw.toString('base64')
  assert.ok(/[+/]/.test(b64), 'the sample has the characters base64 and base64url write differently')
  for (const text of [raw.toString('hex'), raw.toString('hex').toUpperCase(), b64, b64.replace(/=$/, ''), raw.toString('base64url'), `  ${b64}\n`]) {
    assert.deepEqual(parseSecretKey(text), raw, text)
  }
  // A key parsed either way opens what the other sealed.
  assert.equal(new SecretBox(parseSecretKey(raw.toString('hex'))).open(new SecretBox(parseSecretKey(b64)).seal('x')), 'x')
})

test('parseSecretKey refuses other lengths and forms, saying what it wants and never what it got', () => {
  const cases = [
    randomBytes(16).toString('hex'), // 32 hex: 16 bytes
    randomBytes(33).toString('hex'),
    `${randomBytes(32).toString('hex').slice(0, 63)}g`,
    randomBytes(24).toString('base64'),
    randomBytes(48).toString('base64'),
    'correct horse battery staple and more words',
    '',
  ]
  for (const text of cases) {
    assert.throws(
      () => parseSecretKey(text),
      (err: Error) => {
        assert.match(err.message, /must be 32 bytes written as 64 hexadecimal characters or as base64/)
        assert.match(err.message, new RegExp(`\\(${text.trim().length} characters\\)`))
        if (text.length > 0) assert.ok(!err.message.includes(text) && !err.message.includes(text.slice(0, 8)), err.message)
        return true
      },
    )
  }
})
