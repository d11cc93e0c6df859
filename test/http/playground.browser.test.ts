// The playground and the OpenAPI UI in a real headless Chromium (Debian's
// chromium, driven by playwright-core), air-gapped: any request that leaves
// 127.0.0.1 fails the test. Screenshots are saved under the test's temp dir.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { chromium, type Browser, type Page } from 'playwright-core'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { makeTempDir, podYaml } from '../helper.ts'
import { writeFile } from 'node:fs/promises'
import { testResolver } from '../support/resolver.ts'

const CHROMIUM = '/usr/bin/chromium'

let app: FastifyInstance
let base: string
let dir: string
let browser: Browser
const offLoopback: string[] = []

async function openPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
  await page.route('**/*', (route) => {
    const url = new URL(route.request().url())
    if (url.protocol === 'data:' || url.protocol === 'blob:' || url.hostname === '127.0.0.1') return route.continue()
    offLoopback.push(route.request().url())
    return route.abort()
  })
  return page
}

describe('playground in a browser', () => {
  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium); .ci/run does`)
    }
    dir = await makeTempDir()
    const config = loadConfig({
      STORE_URL: `sqlite:${join(dir, 'db.sqlite')}`,
      LOCAL_NODE_PATH: join(dir, 'manifests'),
      LOCAL_NODE_STATE_DIR: join(dir, 'state'),
      LOCAL_KUBELET_HEALTHZ_URL: 'http://127.0.0.1:9/healthz',
      LOG_LEVEL: 'warn',
    })
    app = await buildApp(config, { logger: false, resolveHost: testResolver })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
    await writeFile(join(dir, 'manifests', 'kube-scheduler.yaml'), podYaml('kube-scheduler', 'registry.k8s.io/kube-scheduler:v1.31.0', '  namespace: kube-system\n'))
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

  it('/graphiql renders from local assets, runs the example query and shows the result', async () => {
    const page = await openPage()
    await page.goto(`${base}/graphiql`)
    await page.waitForSelector('.graphiql-container', { timeout: 20_000 })
    // The example query opens in the editor; run it with the execute button.
    await page.waitForSelector('.graphiql-execute-button')
    await page.click('.graphiql-execute-button')
    const result = page.locator('.result-window')
    await result.getByText('kube-scheduler').first().waitFor({ timeout: 20_000 })
    const text = await result.innerText()
    assert.match(text, /"nodeCount": 1/)
    assert.match(text, /registry\.k8s\.io\/kube-scheduler:v1\.31\.0/)
    const shot = join(dir, 'graphiql.png')
    await page.screenshot({ path: shot })
    assert.ok((await stat(shot)).size > 10_000)
    await page.close()
    assert.deepEqual(offLoopback, [], 'no request left 127.0.0.1')
  })

  it('the docs explorer shows the SDL descriptions', async () => {
    const page = await openPage()
    await page.goto(`${base}/graphiql`)
    await page.waitForSelector('.graphiql-container', { timeout: 20_000 })
    await page.click('button[aria-label="Show Documentation Explorer"]')
    await page.getByText('Query', { exact: true }).first().click()
    await page.getByText(/Registered nodes, from this service's store/).first().waitFor({ timeout: 10_000 })
    await page.close()
    assert.deepEqual(offLoopback, [])
  })

  it('/docs renders the OpenAPI UI from local assets', async () => {
    const page = await openPage()
    await page.goto(`${base}/docs`)
    await page.waitForSelector('.swagger-ui .info', { timeout: 20_000 })
    await page.getByText('/api/v1/nodes/{node}/staticpods/{namespace}/{name}').first().waitFor({ timeout: 10_000 })
    const shot = join(dir, 'docs.png')
    await page.screenshot({ path: shot })
    assert.ok((await stat(shot)).size > 10_000)
    await page.close()
    assert.deepEqual(offLoopback, [], 'no request left 127.0.0.1')
  })
})
