// docs/alerts.yaml is valid Prometheus rules, and each alert fires on the
// series docs/alerts.test.yaml feeds it (promtool from Debian's prometheus
// package; .ci/run installs it, as it installs sshd for the SSH tests).

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const docs = fileURLToPath(new URL('../../docs/', import.meta.url))

async function promtool(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: docs, timeout: 60_000 })
    return `${stdout}${stderr}`
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string }
    if (e.code === 'ENOENT') throw new Error('promtool is not installed (apt-get install prometheus, as .ci/run does)', { cause: err })
    assert.fail(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`)
  }
}

describe('docs/alerts.yaml', () => {
  it('passes promtool check rules', async () => {
    const out = await promtool('check', 'rules', 'alerts.yaml')
    assert.match(out, /SUCCESS: 5 rules found/)
  })

  it('fires each alert on the series of docs/alerts.test.yaml, and only there (promtool test rules)', async () => {
    const out = await promtool('test', 'rules', 'alerts.test.yaml')
    assert.match(out, /SUCCESS/)
  })
})
