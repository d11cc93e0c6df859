// State (revisions, audit) survives a restart of the service: a second app on
// the same SQLite file and directory sees everything the first one recorded.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { describe, it } from 'node:test'
import { build, makeTempDir, podYaml } from '../helper.ts'

describe('persistence', () => {
  it('revisions and audit events survive a restart', async (t) => {
    const dir = await makeTempDir()
    t.after(() => rm(dir, { recursive: true, force: true }))
    const first = await build(t, { dir })
    await first.gql('mutation($m: String!) { createStaticPod(input: {node: "local", manifest: $m}) { userErrors { code } } }', { m: podYaml('web', 'nginx:1') })
    await first.gql('mutation($m: String!) { updateStaticPod(input: {node: "local", name: "web", manifest: $m}) { userErrors { code } } }', { m: podYaml('web', 'nginx:2') })
    await first.app.close()

    const second = await build(t, { dir })
    const res = await second.gql('{ staticPod(node: "local", name: "web") { revision managed history { revision action manifest } } auditEvents { action result } }')
    assert.equal(res.data.staticPod.revision, 2)
    assert.deepEqual(
      res.data.staticPod.history.map((r: { revision: number; action: string }) => [r.revision, r.action]),
      [
        [2, 'UPDATE'],
        [1, 'CREATE'],
      ],
    )
    assert.equal(res.data.staticPod.history[1].manifest, podYaml('web', 'nginx:1'))
    assert.deepEqual(
      res.data.auditEvents.map((e: { action: string }) => e.action),
      ['updateStaticPod', 'createStaticPod'],
    )
  })
})
