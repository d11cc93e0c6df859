// Log redaction (src/logging.ts): secret values are masked wherever they reach
// a log line, in messages, fields and errors, and the prose around them is
// left as written.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import pino from 'pino'
import { scrubSecrets, streamLogger } from '../src/logging.ts'

test('values after a secret-named key are masked', () => {
  const cases: Array<[string, string]> = [
    ['curl --token=abc123 -d x', 'curl --token=[REDACTED] -d x'],
    ["password = 'two words' here", 'password = [REDACTED] here'],
    ['{"token":"abc","name":"web"}', '{"token":[REDACTED],"name":"web"}'],
    ['client_secret: "s3cr3t value"', 'client_secret: [REDACTED]'],
    ['bad token: abc123', 'bad token: [REDACTED]'],
    ['bad token: expired, try again', 'bad token: [REDACTED], try again'],
    ['api_key: sk-1f3e (revoked)', 'api_key: [REDACTED] (revoked)'],
    ['volumes[0]: secretName: db-password', 'volumes[0]: secretName: [REDACTED]'],
    ['Authorization: Bearer abc.def.ghi', 'Authorization: Bearer [REDACTED]'],
    ['key -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY----- end', 'key [REDACTED] end'],
  ]
  for (const [text, masked] of cases) assert.equal(scrubSecrets(text), masked, text)
})

test('a YAML line quoted into a message is masked to its end', () => {
  // The message the yaml parser gives for a duplicate key: the lines it failed on, after the first line.
  const error = 'Map keys must be unique at line 3, column 1:\n\npassword: correct horse battery\n  - token: abc def\npassword: x\n^\n'
  assert.equal(scrubSecrets(error), 'Map keys must be unique at line 3, column 1:\n\npassword: [REDACTED]\n  - token: [REDACTED]\npassword: [REDACTED]\n^\n')
})

test('prose that names a secret setting is left as written', () => {
  for (const text of [
    'no AUTH_TOKENS_FILE or AUTH_TOKENS: every caller is the anonymous admin (served on a loopback address only)',
    'Invalid AUTH_TOKENS: the document must be a list of tokens',
    'the token: it is missing from the request',
    'SSH_PRIVATE_KEY_FILE or SSH_PRIVATE_KEY: set one of them to reach SSH nodes',
  ]) {
    assert.equal(scrubSecrets(text), text)
  }
})

test('masking twice changes nothing', () => {
  for (const text of ['token=abc', 'bad token: abc123', 'x\npassword: a b', 'Bearer abc', '"token":"abc"']) {
    const once = scrubSecrets(text)
    assert.notEqual(once, text)
    assert.equal(scrubSecrets(once), once)
  }
})

test('the logger masks messages, fields and errors, and keeps prose', () => {
  const lines: string[] = []
  // What Fastify does with these options: pino writing to the stream given.
  const { stream, ...options } = streamLogger('info', { write: (line) => void lines.push(line) }) as pino.LoggerOptions & { stream: pino.DestinationStream }
  const log = pino(options, stream)
  log.warn('no AUTH_TOKENS_FILE or AUTH_TOKENS: every caller is the anonymous admin (served on a loopback address only)')
  log.info({ detail: 'ssh -o password=hunter2', headers: { authorization: 'Bearer abc' } }, 'node answered token: abc123')
  log.error({ err: new Error('parse failed:\n\n  secretName: db-password\n') }, 'mutation failed')
  const [warning, info, error] = lines.map((line) => JSON.parse(line))
  assert.equal(warning.msg, 'no AUTH_TOKENS_FILE or AUTH_TOKENS: every caller is the anonymous admin (served on a loopback address only)')
  assert.equal(info.msg, 'node answered token: [REDACTED]')
  assert.equal(info.detail, 'ssh -o password=[REDACTED]')
  assert.equal(info.headers.authorization, '[REDACTED]')
  assert.equal(error.err.message, 'parse failed:\n\n  secretName: [REDACTED]\n')
  assert.ok(!lines.join('').includes('hunter2') && !lines.join('').includes('db-password') && !lines.join('').includes('abc123'))
})
