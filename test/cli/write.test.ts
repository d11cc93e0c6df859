// staticpodctl's changes, run as a child process against a real service (the
// local node and two SSH nodes on real sshd daemons, test/cli/harness.ts):
// edit with $EDITOR (in a pseudo-terminal, and with a change made on the node
// in between), apply, patch, set image and set flag as rollouts with their
// progress (plain lines without a terminal, a redrawn block with one),
// rollout history, undo and status, restart and delete.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { cliLine, ok, pod, script, startCliBed, webPod, type CliBed } from './harness.ts'

// With a comment, which every write here must keep.
const web = (image?: string) => `# the web pod (kept by hand)\n${webPod(image)}`

let bed: CliBed

const ESC = '\u001b'
/** A pattern of terminal output: ESC, then this. */
const terminal = (pattern: string) => new RegExp(ESC + pattern)

before(async () => {
  bed = await startCliBed({ prefix: 'cw' })
  await writeFile(join(bed.localManifests, 'app.yaml'), pod('app'))
  for (const n of bed.ssh) await writeFile(join(n.manifests, 'web.yaml'), web())
})

after(async () => {
  await bed?.close()
})

const sshFile = (i: number, file = 'web.yaml') => join(bed.ssh[i]!.manifests, file)

describe('staticpodctl edit', () => {
  it('in a terminal: $EDITOR changes the manifest, and it is written to the node', async () => {
    const editor = await script(join(bed.dir, 'editor-image.sh'), `sed -i 's/nginx:1.27/nginx:1.28/' "$1"`)
    const { code, output } = await bed.runTty(cliLine(['edit', 'pod', 'web', '--node', 'cw-1']), { env: { EDITOR: editor } })
    assert.equal(code, 0, output)
    assert.match(output, /pod\/web edited on cw-1 \(revision 2\)/)
    assert.equal(await readFile(sshFile(0), 'utf8'), web('nginx:1.28'))
  })

  it('--wait: the new pod runs ready before it returns (a spinner on the terminal meanwhile)', async () => {
    const editor = await script(join(bed.dir, 'editor-wait.sh'), `sed -i 's/nginx:1.28/nginx:1.29/' "$1"`)
    const { code, output } = await bed.runTty(cliLine(['edit', 'pod/web', '--node', 'cw-1', '--wait', '--auto-rollback', '--timeout', '60s']), { env: { EDITOR: editor } })
    assert.equal(code, 0, output)
    assert.match(output, /waiting for web on cw-1 to run ready/)
    assert.match(output, /pod\/web edited on cw-1 \(revision 3\)/)
    assert.equal(await readFile(sshFile(0), 'utf8'), web('nginx:1.29'))
  })

  it('a change on the node while the editor is open: exit 4, nothing written, the edit kept in a file whose path is printed', async () => {
    const nodeFile = join(bed.localManifests, 'app.yaml')
    // Someone fixes the node by hand while this edit is open; then the editor saves.
    const editor = await script(
      join(bed.dir, 'editor-conflict.sh'),
      `sed -i 's/nginx:1.27/nginx:hotfix/' "${nodeFile}"\nsed -i 's/nginx:1.27/nginx:mine/' "$1"`,
    )
    const r = await bed.run(['edit', 'pod', 'app', '--node', 'local'], { env: { EDITOR: editor } })
    assert.equal(r.code, 4, r.stderr)
    assert.match(r.stderr, /^error: CONFLICT: .*changed since you read it/m)
    const kept = /^your edit is kept in (\S+)$/m.exec(r.stderr)?.[1]
    assert.ok(kept, r.stderr)
    assert.equal(await readFile(kept, 'utf8'), pod('app', 'nginx:mine'))
    assert.equal(await readFile(nodeFile, 'utf8'), pod('app', 'nginx:hotfix'))

    // The same in a terminal: the message and the path are on the screen.
    await writeFile(nodeFile, pod('app'))
    const tty = await bed.runTty(cliLine(['edit', 'pod', 'app', '--node', 'local']), { env: { EDITOR: editor } })
    assert.equal(tty.code, 4, tty.output)
    assert.match(tty.output, /your edit is kept in \S+app\.yaml/)
  })

  it('an editor that changes nothing: cancelled, exit 0; one that fails: exit 1, nothing written', async () => {
    const before = await readFile(sshFile(1), 'utf8')
    const r = ok(await bed.run(['edit', 'pod', 'web', '--node', 'cw-2'], { env: { EDITOR: 'true' } }))
    assert.match(r.stderr, /Edit cancelled, no changes made/)
    const failed = await bed.run(['edit', 'pod', 'web', '--node', 'cw-2'], { env: { EDITOR: 'false' } })
    assert.equal(failed.code, 1)
    assert.match(failed.stderr, /^error: EDITOR_FAILED: /m)
    assert.equal(await readFile(sshFile(1), 'utf8'), before)
  })
})

describe('staticpodctl apply, patch, set', () => {
  it('apply --dry-run: each node\'s diff, nothing written', async () => {
    const file = join(bed.dir, 'api.yaml')
    await writeFile(file, pod('api'))
    const r = ok(await bed.run(['apply', '-f', file, '-l', 'tier=edge', '--dry-run']))
    assert.match(r.stdout, /^--- cw-1: WOULD_APPLY\n/m)
    assert.match(r.stdout, /^--- cw-2: WOULD_APPLY\n/m)
    assert.match(r.stdout, /^\+ {4}image: nginx:1\.27$/m)
    assert.equal(existsSync(sshFile(0, 'api.yaml')), false)
  })

  it('apply without a terminal: a plain line for each step, then each node\'s result', async () => {
    const file = join(bed.dir, 'api.yaml')
    await writeFile(file, pod('api'))
    const r = ok(await bed.run(['apply', '-f', file, '-l', 'tier=edge']))
    assert.ok(!r.stdout.includes(ESC), 'no terminal codes in a pipe')
    assert.match(r.stdout, /^rollout [0-9a-f]{8}: started: default\/api /m)
    assert.match(r.stdout, /^rollout [0-9a-f]{8} node cw-1: WAITING_FOR_READY/m)
    assert.match(r.stdout, /^rollout [0-9a-f]{8} node cw-2: APPLIED$/m)
    assert.match(r.stdout, /^cw-1: APPLIED \(revision 1\)\ncw-2: APPLIED \(revision 1\)\nrollout [0-9a-f-]{36} SUCCEEDED\n$/m)
    assert.equal(await readFile(sshFile(1, 'api.yaml'), 'utf8'), pod('api'))
  })

  it('set image in a terminal: the progress block is redrawn in place', async () => {
    const { code, output } = await bed.runTty(cliLine(['set', 'image', 'pod', 'api', 'api=:1.28', '-l', 'tier=edge', '--strategy', 'rolling']))
    assert.equal(code, 0, output)
    assert.ok(output.includes(`${ESC}[3A`), 'cursor up over the three lines of the block')
    // Each line of the block is cleared (ESC [2K) and written again.
    assert.match(output, terminal('\\[2Krollout [0-9a-f]{8} default/api \\(PATCH, ROLLING\\): RUNNING'))
    assert.match(output, terminal('\\[2K {2}[|/\\\\-] cw-1 {2}WAITING_FOR_READY'))
    assert.match(output, terminal('\\[2K {2}\\+ cw-2 {2}APPLIED'))
    assert.match(output, /cw-1: APPLIED \(revision 2\)\r?\ncw-2: APPLIED \(revision 2\)/)
    for (const i of [0, 1]) assert.equal(await readFile(sshFile(i, 'api.yaml'), 'utf8'), pod('api', 'nginx:1.28'))
  })

  it('-o json: the payload as the service answers it (progress, if any, on stderr)', async () => {
    const r = ok(await bed.run(['set', 'image', 'pod/api', 'api=nginx:1.29', '--node', 'cw-1,cw-2', '--timeout', '0', '-o', 'json']))
    const payload = JSON.parse(r.stdout)
    assert.deepEqual(Object.keys(payload), ['rolloutId', 'results', 'userErrors'])
    assert.deepEqual(
      payload.results.map((x: { node: string; status: string; staticPod: { revision: number } }) => [x.node, x.status, x.staticPod.revision]),
      [
        ['cw-1', 'APPLIED', 3],
        ['cw-2', 'APPLIED', 3],
      ],
    )
    assert.deepEqual(Object.keys(payload.results[0]), ['node', 'status', 'diff', 'error', 'staticPod'])
    assert.match(payload.results[0].diff, /^- {4}image: nginx:1\.28$/m)
  })

  it('set flag: FLAG=VALUE replaces or appends, FLAG- removes, in place', async () => {
    ok(await bed.run(['set', 'flag', 'pod', 'web', '--node', 'cw-2', '--timeout', '0', '--', '--v=2', '--new-flag=x']))
    assert.equal(await readFile(sshFile(1), 'utf8'), web().replace('    - --v=1\n', '    - --v=2\n    - --new-flag=x\n'))
    ok(await bed.run(['set', 'flag', 'pod', 'web', '--node', 'cw-2', '--timeout', '0', 'new-flag-']))
    assert.equal(await readFile(sshFile(1), 'utf8'), web().replace('--v=1', '--v=2'))
    const usage = await bed.run(['set', 'flag', 'pod', 'web', '--node', 'cw-2', '--v=3'])
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /unknown option '--v=3'/)
  })

  it('patch: strategic merge by default; a failing JSON patch test is a conflict (exit 4), nothing written', async () => {
    ok(await bed.run(['patch', 'pod', 'web', '--node', 'cw-2', '--timeout', '0', '-p', '{"metadata":{"labels":{"tier":"edge"}}}']))
    assert.match(await readFile(sshFile(1), 'utf8'), /^ {2}labels:\n {4}app: web\n {4}tier: edge\n/m)
    const before = await readFile(sshFile(1), 'utf8')
    const r = await bed.run(['patch', 'pod', 'web', '--node', 'cw-2', '--type', 'json', '-p', '[{"op":"test","path":"/metadata/name","value":"nope"},{"op":"remove","path":"/metadata/labels"}]'])
    assert.equal(r.code, 4, r.stderr)
    assert.match(r.stdout, /^cw-2: FAILED: CONFLICT: /m)
    assert.match(r.stderr, /^error: CONFLICT: rollout [0-9a-f-]+ failed on cw-2: CONFLICT: /m)
    assert.equal(await readFile(sshFile(1), 'utf8'), before)
  })
})

describe('staticpodctl rollout', () => {
  it('history, history --revision, undo (to the previous content, or --to-revision)', async () => {
    const history = ok(await bed.run(['rollout', 'history', 'pod', 'api', '--node', 'cw-1'])).stdout
    assert.match(history, /^REVISION +ACTION +ACTOR +HASH +AGE +CURRENT\n3 +UPDATE +root-admin +[0-9a-f]{12} +\S+ +\*\n2 +UPDATE +root-admin +[0-9a-f]{12} +\S+\n1 +CREATE +root-admin +[0-9a-f]{12} +\S+\n$/)
    assert.equal(ok(await bed.run(['rollout', 'history', 'pod', 'api', '--node', 'cw-1', '--revision', '1'])).stdout, pod('api'))
    const dry = ok(await bed.run(['rollout', 'undo', 'pod', 'api', '--node', 'cw-1', '--dry-run'])).stdout
    assert.match(dry, /^- {4}image: nginx:1\.29\n\+ {4}image: nginx:1\.28$/m)
    assert.equal(ok(await bed.run(['rollout', 'undo', 'pod', 'api', '--node', 'cw-1'])).stdout, 'pod/api on cw-1 rolled back to revision 2 (now revision 4)\n')
    assert.equal(await readFile(sshFile(0, 'api.yaml'), 'utf8'), pod('api', 'nginx:1.28'))
    ok(await bed.run(['rollout', 'undo', 'pod', 'api', '--node', 'cw-1', '--to-revision', '1']))
    assert.equal(await readFile(sshFile(0, 'api.yaml'), 'utf8'), pod('api'))
  })

  it('a node that never runs the new pod ready: rolled back, exit 1; rollout status says FAILED (1) or SUCCEEDED (0)', async () => {
    const file = join(bed.dir, 'stuck.yaml')
    await writeFile(file, pod('stuck'))
    const r = await bed.run(['apply', '-f', file, '--node', 'cw-1', '--timeout', '2s', '-o', 'json'])
    assert.equal(r.code, 1, r.stderr)
    const payload = JSON.parse(r.stdout)
    assert.equal(payload.results[0].status, 'ROLLED_BACK')
    assert.match(r.stderr, /^error: TIMEOUT: rollout [0-9a-f-]+ failed on cw-1 \(rolled back\): TIMEOUT: /m)
    assert.match(r.stderr, /^rollout [0-9a-f]{8} node cw-1: WAITING_FOR_READY/m, 'progress goes to stderr with -o json')
    assert.equal(existsSync(sshFile(0, 'stuck.yaml')), false, 'the pod that did not exist before is gone again')

    const failed = await bed.run(['rollout', 'status', payload.rolloutId])
    assert.equal(failed.code, 1, failed.stderr)
    assert.match(failed.stdout, /^rollout [0-9a-f]{8} FAILED$/m)
    assert.match(failed.stderr, /^error: ROLLOUT_FAILED: rollout \S+ FAILED on cw-1: TIMEOUT: /m)

    const rollouts = JSON.parse(ok(await bed.run(['get', 'rollouts', '-o', 'json'])).stdout)
    const good = rollouts.items.find((x: { state: string; dryRun: boolean }) => x.state === 'SUCCEEDED' && !x.dryRun)
    const status = ok(await bed.run(['rollout', 'status', good.id]))
    assert.match(status.stdout, /^rollout [0-9a-f]{8} SUCCEEDED$/m)
    assert.equal((await bed.run(['rollout', 'status', 'no-such-rollout'])).code, 3)
  })
})

describe('staticpodctl restart and delete', () => {
  it('restart sets the annotation, delete removes the file', async () => {
    const r = ok(await bed.run(['restart', 'pod', 'app', '--node', 'local']))
    assert.match(r.stdout, /^pod\/app restarted on local \(revision \d+\)$/m)
    assert.match(await readFile(join(bed.localManifests, 'app.yaml'), 'utf8'), /staticpod-api\/restartedAt/)
    assert.equal(ok(await bed.run(['delete', 'pod', 'app', '--node', 'local', '--dry-run'])).stdout, 'pod/app would be deleted on local (dry run)\n')
    assert.ok(existsSync(join(bed.localManifests, 'app.yaml')), 'a dry run deletes nothing')
    assert.equal(ok(await bed.run(['delete', 'pod', 'app', '--node', 'local'])).stdout, 'pod/app deleted on local\n')
    assert.equal(existsSync(join(bed.localManifests, 'app.yaml')), false)
    assert.equal((await bed.run(['delete', 'pod', 'app', '--node', 'local'])).code, 3)
  })
})
