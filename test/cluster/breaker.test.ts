// The circuit breaker in front of the API server: fail fast while open, one
// probe after retryAfterMs, and only outages open it.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BreakerOpenError, CircuitBreaker } from '../../src/cluster/breaker.ts'

class Outage extends Error {}
class Answer extends Error {}

function breaker(retryAfterMs = 1000) {
  let now = Date.parse('2025-01-01T00:00:00Z')
  const b = new CircuitBreaker({ retryAfterMs, clock: () => new Date(now), isOutage: (err) => err instanceof Outage })
  return { b, advance: (ms: number) => (now += ms) }
}

test('closed: calls go through and their outcome is recorded', async () => {
  const { b } = breaker()
  assert.equal(b.lastOutcome, null)
  assert.equal(await b.run(async () => 42), 42)
  assert.deepEqual(b.lastOutcome, { ok: true, at: '2025-01-01T00:00:00.000Z', error: null })
  assert.equal(b.isOpen, false)
})

test('an outage opens it: later calls fail at once without running, until retryAfterMs', async () => {
  const { b, advance } = breaker()
  await assert.rejects(b.run(async () => Promise.reject(new Outage('connect ECONNREFUSED'))), Outage)
  assert.equal(b.isOpen, true)
  let ran = 0
  const call = () => b.run(async () => ++ran)
  await assert.rejects(call(), (err: unknown) => err instanceof BreakerOpenError && /ECONNREFUSED/.test(err.message))
  advance(999)
  await assert.rejects(call(), BreakerOpenError)
  assert.equal(ran, 0)
  advance(1)
  assert.equal(await call(), 1, 'the probe after retryAfterMs goes through')
  assert.equal(b.isOpen, false)
  assert.equal(await call(), 2)
})

test('calls made while the probe runs wait for it: they fail with a failed probe, and go through after a good one', async () => {
  const { b, advance } = breaker()
  await assert.rejects(b.run(async () => Promise.reject(new Outage('down'))))
  advance(1000)
  let failProbe!: () => void
  const probe = b.run(() => new Promise<void>((_, reject) => (failProbe = () => reject(new Outage('still down')))))
  let ran = 0
  const waiting = b.run(async () => ++ran)
  failProbe()
  await assert.rejects(probe, Outage)
  await assert.rejects(waiting, BreakerOpenError)
  assert.equal(ran, 0)
  assert.equal(b.isOpen, true)
  advance(500)
  await assert.rejects(b.run(async () => 'x'), BreakerOpenError, 'a failed probe starts another period')

  advance(500)
  let passProbe!: () => void
  const good = b.run(() => new Promise<string>((resolve) => (passProbe = () => resolve('probe'))))
  const after = b.run(async () => 'other')
  passProbe()
  assert.deepEqual(await Promise.all([good, after]), ['probe', 'other'])
  assert.equal(b.isOpen, false)
})

test('an answer that is an error (404, 403) proves the server is up: it does not open', async () => {
  const { b } = breaker()
  await assert.rejects(b.run(async () => Promise.reject(new Answer('404'))), Answer)
  assert.equal(b.isOpen, false)
  assert.equal(b.lastOutcome?.ok, true)
})

test('state: closed, open until retryAfterMs, half-open when due a probe and while it runs, then closed or open again', async () => {
  const { b, advance } = breaker()
  assert.equal(b.state, 'closed')
  await assert.rejects(b.run(async () => Promise.reject(new Outage('down'))))
  assert.equal(b.state, 'open')
  advance(999)
  assert.equal(b.state, 'open')
  advance(1)
  assert.equal(b.state, 'half-open', 'the next call is the probe')

  let failProbe!: () => void
  const probe = b.run(() => new Promise<void>((_, reject) => (failProbe = () => reject(new Outage('still down')))))
  advance(-1000) // the probe runs, whatever the time says
  assert.equal(b.state, 'half-open')
  advance(1000)
  failProbe()
  await assert.rejects(probe, Outage)
  assert.equal(b.state, 'open', 'a failed probe opens it again')

  advance(1000)
  await b.run(async () => 'up')
  assert.equal(b.state, 'closed')
})
