// staticpodctl, run as a child process against a real service (the local node
// and two SSH nodes on real sshd daemons, test/cli/harness.ts): the flags of
// logs that pick the container and cut by time, and those of apply, patch and
// set that read.test.ts and write.test.ts leave out: apply --strategy
// all-at-once, patch -l SELECTOR, patch --type merge, and the per-node diff
// that patch, set image and set flag print on --dry-run (writing nothing).

import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { criLogRecord } from '../support/crictl-fixture.ts'
import { fails, ok, pod, startCliBed, until, webPod as web, type CliBed } from './harness.ts'

let bed: CliBed

const sshFile = (i: number, file = 'web.yaml') => join(bed.ssh[i]!.manifests, file)
const readBoth = (file = 'web.yaml') => Promise.all([0, 1].map((i) => readFile(sshFile(i, file), 'utf8')))

/**
 * A --dry-run's output: each node's section (`--- NODE: STATUS`, then its unified diff, whose own
 * `--- PATH` and `+++ PATH` lines name the node's file), by node.
 */
/** A dry run's sections: one per SSH node, each WOULD_APPLY with change in its diff. */
function wouldApplyOnBoth(stdout: string, change: RegExp): Map<string, { status: string; diff: string }> {
  const sections = dryRunSections(stdout)
  assert.deepEqual([...sections.keys()].sort(), ['cm-1', 'cm-2'])
  for (const [node, { status, diff }] of sections) {
    assert.equal(status, 'WOULD_APPLY', node)
    assert.match(diff, change, `${node}: ${diff}`)
  }
  return sections
}

function dryRunSections(stdout: string): Map<string, { status: string; diff: string }> {
  const heads = [...stdout.matchAll(/^--- ([\w.-]+): ([A-Z_]+)\n/gm)]
  assert.equal(heads[0]?.index, 0, `a dry run's output starts with a node's section: ${stdout}`)
  const sections = new Map<string, { status: string; diff: string }>()
  heads.forEach((m, i) => sections.set(m[1]!, { status: m[2]!, diff: stdout.slice(m.index! + m[0].length, heads[i + 1]?.index ?? stdout.length) }))
  return sections
}

before(async () => {
  bed = await startCliBed({ prefix: 'cm' })
  for (const n of bed.ssh) await writeFile(join(n.manifests, 'web.yaml'), web())
})

after(async () => {
  await bed?.close()
})

describe('staticpodctl logs -c and --since', () => {
  it('-c CONTAINER (or --container) picks the container of a pod that has two; without it, or with one it lacks, it says so', async () => {
    const n1 = bed.ssh[0]!
    bed.runtime.setLogs(n1.name, 'app', ['app: listening on :8080'])
    bed.runtime.setLogs(n1.name, 'sidecar', ['sidecar: shipping logs', 'sidecar: 3 files'], 'stdout')
    await writeFile(
      sshFile(0, 'duo.yaml'),
      `apiVersion: v1
kind: Pod
metadata:
  name: duo
spec:
  containers:
  - name: app
    image: nginx:1.27
  - name: sidecar
    image: busybox:1.36
`,
    )
    // Both containers have started (and so have a log), as the service sees it.
    await until('both containers to log', async () => {
      const res = await bed.gql(`{ staticPod(node: "${n1.name}", name: "duo", maxAgeSeconds: 0) { app: logs(container: "app") { lines } sidecar: logs(container: "sidecar") { lines } } }`)
      const p = res.data?.staticPod as { app: { lines: string[] } | null; sidecar: { lines: string[] } | null } | null
      return (p?.app?.lines.length ?? 0) > 0 && (p?.sidecar?.lines.length ?? 0) > 0
    })

    assert.equal(ok(await bed.run(['logs', 'duo', '--node', n1.name, '-c', 'sidecar'])).stdout, 'sidecar: shipping logs\nsidecar: 3 files\n')
    assert.equal(ok(await bed.run(['logs', 'pod/duo', '--node', n1.name, '--container', 'app'])).stdout, 'app: listening on :8080\n')
    const which = fails(await bed.run(['logs', 'duo', '--node', n1.name]), 1, 'VALIDATION_FAILED')
    assert.match(which.stderr, /has 2 containers \(app, sidecar\)/)
    const none = fails(await bed.run(['logs', 'duo', '--node', n1.name, '-c', 'nope']), 3, 'NOT_FOUND')
    assert.match(none.stderr, /has no container "?nope"?/)
  })

  it('--since 10m leaves out the lines stamped before then (crictl logs --since, on the node)', async (t) => {
    const n2 = bed.ssh[1]!
    bed.runtime.setLogs(n2.name, 'chatty', ['placeholder'])
    await writeFile(sshFile(1, 'chatty.yaml'), pod('chatty'))
    await until('chatty to run and log', async () => {
      const res = await bed.gql(`{ staticPod(node: "${n2.name}", name: "chatty", maxAgeSeconds: 0) { logs { lines } } }`)
      return (res.data?.staticPod?.logs?.lines?.length ?? 0) > 0
    })
    // The runtime stand-in stamps every line of an attempt at its start (just now): it is held still, and
    // the running container's log file given records written over the last 20 minutes.
    await bed.runtime.stop()
    t.after(() => bed.runtime.start(100))
    const state = JSON.parse(await readFile(n2.crictlStateFile!, 'utf8')) as { containers: Array<{ state: string; labels: Record<string, string>; log?: string[] }> }
    const running = state.containers.filter((c) => c.labels['io.kubernetes.container.name'] === 'chatty' && c.state === 'CONTAINER_RUNNING')
    assert.equal(running.length, 1, `one running chatty container: ${JSON.stringify(state.containers)}`)
    const stamp = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString().replace('Z', '000000Z')
    const at = { old: stamp(20), recent: stamp(5), latest: stamp(0.5) }
    running[0]!.log = [criLogRecord(at.old, 'stderr', 'twenty minutes ago'), criLogRecord(at.recent, 'stderr', 'five minutes ago'), criLogRecord(at.latest, 'stdout', 'half a minute ago')]
    await n2.setCrictlState(state)

    assert.equal(ok(await bed.run(['logs', 'chatty', '--node', n2.name])).stdout, 'twenty minutes ago\nfive minutes ago\nhalf a minute ago\n')
    assert.equal(ok(await bed.run(['logs', 'chatty', '--node', n2.name, '--since', '10m'])).stdout, 'five minutes ago\nhalf a minute ago\n')
    assert.equal(ok(await bed.run(['logs', 'chatty', '--node', n2.name, '--since', '1h'])).stdout, 'twenty minutes ago\nfive minutes ago\nhalf a minute ago\n')
    assert.equal(ok(await bed.run(['logs', 'chatty', '--node', n2.name, '--since', '2m', '--timestamps'])).stdout, `${at.latest} half a minute ago\n`)
    fails(await bed.run(['logs', 'chatty', '--node', n2.name, '--since', 'soon']), 2, 'USAGE')
  })
})

describe('staticpodctl apply --strategy, patch -l and --type merge', () => {
  it('apply --strategy all-at-once: every node is written before any has finished (rolling does one after another)', async () => {
    const file = join(bed.dir, 'batch.yaml')
    await writeFile(file, pod('batch'))
    const r = ok(await bed.run(['apply', '-f', file, '-l', 'tier=edge', '--strategy', 'all-at-once']))
    assert.match(r.stdout, /^cm-1: APPLIED \(revision 1\)\ncm-2: APPLIED \(revision 1\)\n/m)
    const id = /^rollout ([0-9a-f-]{36}) SUCCEEDED$/m.exec(r.stdout)?.[1]
    assert.ok(id, `no rollout id in: ${r.stdout}`)
    const res = await bed.gql(`query($id: ID!) { rollout(id: $id) { strategy nodes { node status startedAt finishedAt } } }`, { id })
    const rollout = res.data.rollout as { strategy: string; nodes: Array<{ node: string; status: string; startedAt: string; finishedAt: string }> }
    assert.equal(rollout.strategy, 'ALL_AT_ONCE')
    assert.deepEqual(rollout.nodes.map((n) => [n.node, n.status]).sort(), [
      ['cm-1', 'APPLIED'],
      ['cm-2', 'APPLIED'],
    ])
    // Each node waits for its pod to run ready (0.3 s at least): at once, the last starts before the first ends.
    const lastStart = Math.max(...rollout.nodes.map((n) => Date.parse(n.startedAt)))
    const firstEnd = Math.min(...rollout.nodes.map((n) => Date.parse(n.finishedAt)))
    assert.ok(lastStart < firstEnd, `the nodes were done one after another: ${JSON.stringify(rollout.nodes)}`)
    assert.deepEqual(await readBoth('batch.yaml'), [pod('batch'), pod('batch')])
  })

  it('patch -l SELECTOR: only the nodes with those labels are patched', async () => {
    const [before1] = await readBoth()
    const r = ok(await bed.run(['patch', 'pod', 'web', '-l', 'zone=z2', '--timeout', '0', '-p', '{"metadata":{"labels":{"patched":"z2-only"}}}']))
    assert.match(r.stdout, /^cm-2: APPLIED \(revision 2\)\nrollout [0-9a-f-]{36} SUCCEEDED\n$/m)
    assert.doesNotMatch(r.stdout, /^cm-1: /m, 'cm-1 (zone=z1) is not in the rollout')
    const [after1, after2] = await readBoth()
    assert.equal(after1, before1, 'cm-1 is not written')
    assert.equal(after2, web().replace('    app: web\n', '    app: web\n    patched: z2-only\n'))
  })

  it('patch --type merge: a list is replaced whole (RFC 7386), where strategic merges it by name', async () => {
    for (const n of bed.ssh) await writeFile(join(n.manifests, 'lists.yaml'), web().replace('name: web\n  labels', 'name: lists\n  labels'))
    const change = '{"spec":{"containers":[{"name":"web","image":"nginx:1.30"}]}}'
    ok(await bed.run(['patch', 'pod', 'lists', '--node', 'cm-1', '--type', 'merge', '--timeout', '0', '-p', change]))
    ok(await bed.run(['patch', 'pod', 'lists', '--node', 'cm-2', '--type', 'strategic', '--timeout', '0', '-p', change]))
    const [merged, strategic] = await readBoth('lists.yaml')
    assert.equal(merged, pod('web', 'nginx:1.30').replace('name: web\nspec', 'name: lists\n  labels:\n    app: web\nspec'), 'merge: the container is the patch\'s, its command gone')
    assert.equal(strategic, web('nginx:1.30').replace('name: web\n  labels', 'name: lists\n  labels'), 'strategic: the container merged by name, its command kept')
  })
})

describe('staticpodctl patch, set image, set flag --dry-run', () => {
  it("patch --dry-run: each node's own diff, nothing written", async () => {
    const files = await readBoth()
    const r = ok(await bed.run(['patch', 'pod', 'web', '-l', 'tier=edge', '--dry-run', '-p', '{"metadata":{"labels":{"app":"www"}}}']))
    const sections = wouldApplyOnBoth(r.stdout, /^- {4}app: web\n\+ {4}app: www$/m)
    // Each node's diff is of its own file: only cm-2 has the label the patch above gave it.
    assert.doesNotMatch(sections.get('cm-1')!.diff, /patched: z2-only/)
    assert.match(sections.get('cm-2')!.diff, /^ {5}patched: z2-only$/m)
    for (const [i, node] of ['cm-1', 'cm-2'].entries()) {
      const path = sshFile(i).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      assert.match(sections.get(node)!.diff, new RegExp(`^--- ${path}\\t?\\n\\+\\+\\+ ${path}\\t?\\n@@ `, 'm'), `${node}'s diff is of its own file`)
    }
    assert.doesNotMatch(r.stdout, /SUCCEEDED|APPLIED/)
    assert.deepEqual(await readBoth(), files, 'nothing is written')
  })

  it("set image --dry-run: each node's diff, nothing written", async () => {
    const files = await readBoth()
    const r = ok(await bed.run(['set', 'image', 'pod', 'web', 'web=:1.32', '--node', 'cm-1,cm-2', '--dry-run']))
    wouldApplyOnBoth(r.stdout, /^- {4}image: nginx:1\.27\n\+ {4}image: nginx:1\.32$/m)
    assert.deepEqual(await readBoth(), files, 'nothing is written')
  })

  it("set flag --dry-run: each node's diff, nothing written", async () => {
    const files = await readBoth()
    const r = ok(await bed.run(['set', 'flag', 'pod', 'web', '-l', 'tier=edge', '--dry-run', '--', '--v=4', '--added=1']))
    wouldApplyOnBoth(r.stdout, /^- {4}- --v=1\n\+ {4}- --v=4\n\+ {4}- --added=1$/m)
    assert.deepEqual(await readBoth(), files, 'nothing is written')
  })
})
