// GraphQL subscriptions in the playground, in a real headless Chromium (as
// playground.browser.test.ts): the real app listening on 127.0.0.1 with tokens
// configured, a subscription typed into GraphiQL with the token in its Headers
// editor, run over the page's WebSocket (graphql-ws), and an event the app
// records while it runs shown in the result pane. Air-gapped like the other
// browser test: any request or socket that leaves 127.0.0.1 fails the test.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { chromium, type Browser, type Page } from 'playwright-core'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { makeTempDir, podYaml } from '../helper.ts'
import { testResolver } from '../support/resolver.ts'
import { bearer, TOKENS, TOKENS_DOCUMENT } from './tokens.ts'

const CHROMIUM = '/usr/bin/chromium'
/** Shown once its tab is clicked (the Variables editor is then hidden). */
const HEADERS_EDITOR = '.graphiql-editor-tool .graphiql-editor:not(.hidden)'
const SUBSCRIPTION = 'subscription { events { id type node message } }'

let app: FastifyInstance
let base: string
let dir: string
let browser: Browser

/** What a page did that it should not have: requests and sockets off 127.0.0.1, CSP refusals, page errors. */
interface Watched {
  page: Page
  offLoopback: string[]
  refused: string[]
  sockets: string[]
}

async function openPage(): Promise<Watched> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
  const watched: Watched = { page, offLoopback: [], refused: [], sockets: [] }
  await page.route('**/*', (route) => {
    const url = new URL(route.request().url())
    if (url.protocol === 'data:' || url.protocol === 'blob:' || url.hostname === '127.0.0.1') return route.continue()
    watched.offLoopback.push(route.request().url())
    return route.abort()
  })
  // page.route does not see WebSockets: each one is listed, and must go to this app.
  page.on('websocket', (socket) => {
    watched.sockets.push(socket.url())
    if (new URL(socket.url()).hostname !== '127.0.0.1') watched.offLoopback.push(socket.url())
  })
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) watched.refused.push(message.text())
  })
  page.on('pageerror', (error) => watched.refused.push(`page error: ${error.message}`))
  return watched
}

/** Sets a GraphiQL editor (a CodeMirror 5 instance) as typing would, without its auto-closed brackets. */
async function setEditor(page: Page, selector: string, text: string): Promise<void> {
  await page.waitForSelector(`${selector} .CodeMirror`)
  await page.evaluate(
    ([sel, value]) => {
      // In the page (this project compiles without the DOM's types).
      type CodeMirrorElement = { CodeMirror?: { setValue(v: string): void } }
      const dom = globalThis as unknown as { document: { querySelector(s: string): CodeMirrorElement | null } }
      const element = dom.document.querySelector(`${sel} .CodeMirror`)
      if (!element?.CodeMirror) throw new Error(`no CodeMirror under ${sel}`)
      element.CodeMirror.setValue(value as string)
    },
    [selector, text],
  )
}

/** Opens /graphiql with the query and the headers in their editors. */
async function playground(query: string, headers: string): Promise<Watched> {
  const watched = await openPage()
  const { page } = watched
  await page.goto(`${base}/graphiql`)
  await page.waitForSelector('.graphiql-container', { timeout: 20_000 })
  await setEditor(page, '.graphiql-query-editor', query)
  await page.click('.graphiql-editor-tools button[data-name="headers"]')
  await setEditor(page, HEADERS_EDITOR, headers)
  return watched
}

/** A manifest written through the API on the local node: the app records it as an event. */
let podsWritten = 0
async function writeStaticPod(): Promise<string> {
  const name = `watched-${++podsWritten}`
  const res = await app.inject({
    method: 'POST',
    url: '/graphql',
    headers: bearer(TOKENS.operator),
    payload: {
      query: 'mutation($input: CreateStaticPodInput!) { createStaticPod(input: $input) { staticPod { name } userErrors { code message } } }',
      variables: { input: { node: 'local', manifest: podYaml(name) } },
    },
  })
  assert.equal(res.statusCode, 200, res.body)
  assert.deepEqual(res.json().data.createStaticPod.userErrors, [], res.body)
  return name
}

/**
 * Writes static pods until the result pane shows an event about one of them.
 * More than one, as the subscription may not be live at the server yet when
 * the first is written (it replays nothing without `after`).
 */
async function eventShown(page: Page): Promise<{ text: string; names: string[] }> {
  const result = page.locator('.result-window')
  const names: string[] = []
  for (let attempt = 0; attempt < 20; attempt++) {
    names.push(await writeStaticPod())
    try {
      await result.getByText('STATIC_POD_ADDED').first().waitFor({ timeout: 1000 })
      return { text: await result.innerText(), names }
    } catch {
      // not yet live: write another
    }
  }
  throw new Error(`no event in the result pane after ${names.length} writes; it shows: ${await result.innerText()}`)
}

describe('playground subscriptions in a browser', () => {
  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium); .ci/run does`)
    }
    dir = await makeTempDir()
    const config = loadConfig({
      STORE_URL: `sqlite:${join(dir, 'db.sqlite')}`,
      LOCAL_NODE_PATH: join(dir, 'manifests'),
      LOCAL_NODE_NAME: 'local',
      LOCAL_NODE_STATE_DIR: join(dir, 'state'),
      LOCAL_KUBELET_HEALTHZ_URL: 'http://127.0.0.1:9/healthz',
      AUTH_TOKENS: TOKENS_DOCUMENT,
      LOG_LEVEL: 'warn',
    })
    app = await buildApp(config, { logger: false, resolveHost: testResolver })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
    // The node's first observation is the baseline, which yields no events: the writes below each yield one.
    const baseline = await app.inject({ method: 'POST', url: '/graphql', headers: bearer(TOKENS.viewer), payload: { query: '{ staticPods(node: "local", maxAgeSeconds: 0) { name } }' } })
    assert.equal(baseline.statusCode, 200, baseline.body)
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    })
  })

  after(async () => {
    await browser?.close()
    await app?.close()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('serves the graphql-ws browser build, which defines graphqlWs.createClient', async () => {
    const res = await fetch(`${base}/graphiql/assets/graphql-ws.min.js`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/javascript/)
    assert.match(await res.text(), /graphqlWs/)
    const { page, offLoopback, refused } = await openPage()
    await page.goto(`${base}/graphiql`)
    await page.waitForSelector('.graphiql-container', { timeout: 20_000 })
    assert.equal(await page.evaluate('typeof graphqlWs.createClient'), 'function')
    await page.close()
    assert.deepEqual(offLoopback, [])
    assert.deepEqual(refused, [])
  })

  it('runs a subscription with the Headers editor token over the WebSocket and shows the events as they come', async () => {
    const { page, offLoopback, refused, sockets } = await playground(SUBSCRIPTION, JSON.stringify({ Authorization: `Bearer ${TOKENS.viewer}` }))
    await page.click('.graphiql-execute-button')
    const { text, names } = await eventShown(page)
    assert.match(text, /"type": "STATIC_POD_ADDED"/)
    assert.match(text, /"node": "local"/)
    assert.ok(names.some((name) => text.includes(name)), `the event is about one of ${names.join(', ')}: ${text}`)
    // A second event replaces the first in the pane while the subscription keeps running.
    const next = await writeStaticPod()
    await page.locator('.result-window').getByText(next).first().waitFor({ timeout: 10_000 })
    // Over one WebSocket to this app's /graphql, allowed by the page's CSP (connect-src 'self').
    assert.deepEqual(sockets, [`${base.replace(/^http/, 'ws')}/graphql`])
    // The execute button stops it; a query then goes over HTTP with the same headers, also when run at
    // once after the edit (GraphiQL's parsed document then still is the subscription's).
    await page.click('.graphiql-execute-button')
    await setEditor(page, '.graphiql-query-editor', '{ events(limit: 1) { type node } }')
    await page.click('.graphiql-execute-button')
    await page.locator('.result-window').getByText('"events": [').waitFor({ timeout: 10_000 })
    await page.close()
    assert.deepEqual(offLoopback, [], 'nothing left 127.0.0.1')
    assert.deepEqual(refused, [], 'no CSP refusal nor page error')
  })

  it('a subscription without a valid token in the Headers editor is refused, and GraphiQL says so', async () => {
    const { page, offLoopback, refused } = await playground(SUBSCRIPTION, JSON.stringify({ Authorization: 'Bearer not-a-token' }))
    await page.click('.graphiql-execute-button')
    const result = page.locator('.result-window')
    await result.getByText('the server refused the subscription connection (Forbidden)').first().waitFor({ timeout: 20_000 })
    assert.doesNotMatch(await result.innerText(), /STATIC_POD/)
    // Other headers, another client: the same page then subscribes with a good token.
    await page.click('.graphiql-editor-tools button[data-name="headers"]')
    await setEditor(page, HEADERS_EDITOR, JSON.stringify({ Authorization: `Bearer ${TOKENS.viewer}` }))
    await page.click('.graphiql-execute-button')
    const { text } = await eventShown(page)
    assert.match(text, /"type": "STATIC_POD_ADDED"/)
    await page.close()
    assert.deepEqual(offLoopback, [])
    assert.deepEqual(refused, [])
  })
})
