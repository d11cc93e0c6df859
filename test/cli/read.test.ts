// staticpodctl, run as a child process (bin/staticpodctl.mjs, what `npx
// staticpodctl` runs) against a real service: the local node and two SSH
// nodes on real sshd daemons (test/cli/harness.ts). Reads, the config file,
// the token's whereabouts, events, completion, and the exit statuses.
//
// AGE columns: the CLI honours STATICPODCTL_NOW as "now" under the test
// runner only (NODE_ENV=test, src/cli/output/time.ts); the golden tables are
// printed with now = the pods' first revision + 30 h 30 min, so every AGE
// reads 30h however long the test took.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { parse as parseYaml } from 'yaml'
import { POD_FIELDS } from '../../src/cli/queries.ts'
import { TOKENS } from '../http/tokens.ts'
import { BIN, fails as failsAs, ok, startCliBed, until, type CliBed, type CliResult } from './harness.ts'

const GOLDEN = new URL('./golden/', import.meta.url)

const manifest = (name: string, opts: { namespace?: string; labels?: Record<string, string>; image?: string } = {}) =>
  `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
${opts.namespace ? `  namespace: ${opts.namespace}\n` : ''}${
    opts.labels ? `  labels:\n${Object.entries(opts.labels).map(([k, v]) => `    ${k}: ${v}\n`).join('')}` : ''
  }spec:
  containers:
  - name: ${name}
    image: ${opts.image ?? 'nginx:1.27'}
`

let bed: CliBed
let nowForGolden: string

async function golden(name: string, actual: string): Promise<void> {
  const file = new URL(name, GOLDEN)
  if (process.env.UPDATE_GOLDEN === '1') {
    await mkdir(GOLDEN, { recursive: true })
    await writeFile(file, actual)
  }
  assert.equal(actual, await readFile(file, 'utf8'), `${name} (UPDATE_GOLDEN=1 rewrites it)`)
}

/** A read may fail beside its data (a node that could not be read): then the CLI says warning, not error (src/cli/main.ts). */
const fails = (r: CliResult, code: number, errorCode: string): CliResult => failsAs(r, code, errorCode, 'error|warning')

before(async () => {
  // Pods are served from the store for 60 s: two reads in a row show one observation.
  bed = await startCliBed({ prefix: 'cli', env: { STATIC_PODS_MAX_AGE_SECONDS: '60' } })
  const [n1, n2] = bed.ssh
  await writeFile(join(bed.localManifests, 'web.yaml'), manifest('web', { labels: { app: 'web', tier: 'front' } }))
  await writeFile(join(n1!.manifests, 'web.yaml'), manifest('web', { labels: { app: 'web' } }))
  await writeFile(join(n1!.manifests, 'kube-scheduler.yaml'), manifest('kube-scheduler', { namespace: 'kube-system', labels: { component: 'kube-scheduler' }, image: 'registry.k8s.io/kube-scheduler:v1.31.4' }))
  await writeFile(join(n2!.manifests, 'web.yaml'), manifest('web', { labels: { app: 'web' } }))
  // Every SSH pod runs (the runtime stand-in starts them), so READY and STATUS do not move.
  const pods = await until('the pods to run', async () => {
    const res = await bed.gql(`{ staticPods(maxAgeSeconds: 0) { nodeName name runtime { state containers { state } } history { recordedAt } } }`)
    const all = res.data.staticPods as Array<{ nodeName: string; runtime: { state: string; containers: Array<{ state: string }> } | null; history: Array<{ recordedAt: string }> }>
    const ready = all.length === 4 && all.filter((p) => p.nodeName !== 'local').every((p) => p.runtime?.state === 'READY' && p.runtime.containers.every((c) => c.state === 'RUNNING'))
    return ready && all
  })
  const first = Math.min(...pods.map((p) => Date.parse(p.history.at(-1)!.recordedAt)))
  nowForGolden = new Date(first + (30 * 60 + 30) * 60_000).toISOString()
})

after(async () => {
  await bed?.close()
})

describe('staticpodctl get', () => {
  it('prints pods and nodes as kubectl tables (golden files)', async () => {
    const env = { STATICPODCTL_NOW: nowForGolden }
    await golden('get-pods.txt', ok(await bed.run(['get', 'pods'], { env })).stdout)
    await golden('get-pods-wide.txt', ok(await bed.run(['get', 'pods', '-o', 'wide'], { env })).stdout)
    await golden('get-nodes.txt', ok(await bed.run(['get', 'nodes'], { env })).stdout)
  })

  it('-o json is the GraphQL answer, unchanged; -o yaml the same data', async () => {
    const query = `{ staticPods { ${POD_FIELDS} } }`
    const direct = await bed.gql(query)
    const cli = JSON.parse(ok(await bed.run(['get', 'pods', '-o', 'json'])).stdout)
    assert.equal(cli.kind, 'StaticPodList')
    assert.deepEqual(cli.items, direct.data.staticPods)
    assert.equal(cli.items.length, 4)
    const yaml = parseYaml(ok(await bed.run(['get', 'pods', '-o', 'yaml'])).stdout)
    assert.deepEqual(yaml, cli)

    const one = JSON.parse(ok(await bed.run(['get', 'pod', 'kube-scheduler', '--node', 'cli-1', '-o', 'json'])).stdout)
    const oneDirect = await bed.gql(`query($node: String!, $name: String!) { staticPod(node: $node, name: $name) { ${POD_FIELDS} } }`, { node: 'cli-1', name: 'kube-scheduler' })
    assert.deepEqual(one, oneDirect.data.staticPod)
    assert.equal(one.namespace, 'kube-system')
  })

  it('selects by name, namespace, node, pod labels and node labels; -o name', async () => {
    assert.equal(ok(await bed.run(['get', 'pods', '-o', 'name'])).stdout, 'pod/cli-1/default/web\npod/cli-1/kube-system/kube-scheduler\npod/cli-2/default/web\npod/local/default/web\n')
    assert.equal(ok(await bed.run(['get', 'pods', 'web', '-o', 'name'])).stdout, 'pod/cli-1/default/web\npod/cli-2/default/web\npod/local/default/web\n')
    assert.equal(ok(await bed.run(['get', 'pods', '-n', 'kube-system', '-o', 'name'])).stdout, 'pod/cli-1/kube-system/kube-scheduler\n')
    assert.equal(ok(await bed.run(['get', 'pods', '--node', 'cli-2', '-o', 'name'])).stdout, 'pod/cli-2/default/web\n')
    assert.equal(ok(await bed.run(['get', 'pods', '-l', 'app=web,tier!=front', '-o', 'name'])).stdout, 'pod/cli-1/default/web\npod/cli-2/default/web\n')
    assert.equal(ok(await bed.run(['get', 'pods', '-l', 'component in (kube-scheduler, etcd)', '-o', 'name'])).stdout, 'pod/cli-1/kube-system/kube-scheduler\n')
    assert.equal(ok(await bed.run(['get', 'pods', '--node-selector', 'zone=z2', '-o', 'name'])).stdout, 'pod/cli-2/default/web\n')
    assert.equal(ok(await bed.run(['get', 'nodes', '-l', 'tier=edge', '-o', 'name'])).stdout, 'node/cli-1\nnode/cli-2\n')
    const nodes = JSON.parse(ok(await bed.run(['get', 'nodes', '-o', 'json'])).stdout)
    assert.deepEqual(nodes.items.map((n: { name: string }) => n.name), ['cli-1', 'cli-2', 'local'])
  })
})

describe('staticpodctl describe and logs', () => {
  it('a crash-looping pod: state, exit code, restarts, CRASH_LOOP first, its revisions; its previous log', async () => {
    const n2 = bed.ssh[1]!
    bed.runtime.setLogs(n2.name, 'crashy', ['starting', 'panic: cannot load /etc/kubernetes/pki/apiserver.crt'])
    await writeFile(join(n2.manifests, 'crashy.yaml'), manifest('crashy', { namespace: 'kube-system' }))
    await until('three restarts', async () => {
      const res = await bed.gql(`{ staticPod(node: "${n2.name}", name: "crashy", maxAgeSeconds: 0) { runtime { containers { restartCount } } } }`)
      return (res.data.staticPod?.runtime?.containers?.[0]?.restartCount ?? 0) >= 3
    })
    const table = ok(await bed.run(['get', 'pods', '--node', n2.name, '--live'])).stdout
    assert.match(table, /^cli-2 +kube-system +crashy +0\/1 +CrashLoopBackOff +\d+ /m)

    // The exit code is crictl inspect's, of the attempt crictl ps listed: a restart in between can hide it for one read.
    // (So can the diagnosis's read of its log: see logsOf below.)
    const out = await until('an exit code', async () => {
      const r = await bed.run(['describe', 'pod', 'crashy', '--node', n2.name])
      if (r.stderr.includes('INTERNAL_SERVER_ERROR')) return null
      return ok(r).stdout.includes('Exit code:') && r.stdout
    })
    assert.match(out, /^Name: +crashy$/m)
    assert.match(out, /^Namespace: +kube-system$/m)
    assert.match(out, /^Runtime: +READY|^Runtime: +NOTREADY/m)
    assert.match(out, /^ {4}State: +(EXITED|TERMINATED) \(Error\)$/m)
    assert.match(out, /^ {4}Exit code: +1$/m)
    assert.match(out, /^ {4}Restarts: +([3-9]|[1-9]\d+)$/m)
    const diagnosis = out.slice(out.indexOf('Diagnosis:'), out.indexOf('Certificates:'))
    assert.match(diagnosis, /^ {2}CRITICAL CRASH_LOOP: /m, diagnosis)
    assert.match(out, /^Revisions:\n {2}REVISION +ACTION +ACTOR +HASH +AGE\n {2}1 +OBSERVED +\(on the node\) +[0-9a-f]{12} /m)

    // A crash-looping container's attempt can be gone between the service's crictl ps and its crictl logs, and
    // the stand-in kubelet keeps no file of it; the service then answers NOT_FOUND saying the attempt is gone and
    // to ask again (src/agents/diagnostics.ts), so ask again.
    const logsOf = (args: string[]) =>
      until('a log', async () => {
        const r = await bed.run(args)
        return /NOT_FOUND: .* is gone .*ask again/.test(r.stderr) ? null : r
      })
    const logs = ok(await logsOf(['logs', 'crashy', '--node', n2.name, '-p']))
    assert.equal(logs.stdout, 'starting\npanic: cannot load /etc/kubernetes/pki/apiserver.crt\n')
    const tail = ok(await logsOf(['logs', 'pod/crashy', '--node', n2.name, '--tail', '1', '--timestamps']))
    assert.match(tail.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z panic: cannot load/)

    ok(await bed.run(['delete', 'pod', 'crashy', '--node', n2.name, '-n', 'kube-system']))
    assert.equal(ok(await bed.run(['get', 'pods', '--node', n2.name, '--live', '-o', 'name'])).stdout, 'pod/cli-2/default/web\n')
  })

  it('describe node: address, key, labels, kubelet, findings', async () => {
    const out = ok(await bed.run(['describe', 'node', 'cli-1'])).stdout
    assert.match(out, /^Kind: +ssh$/m)
    assert.match(out, new RegExp(`^Host key: +${bed.ssh[0]!.fingerprint.replace(/[+/]/g, '\\$&')}$`, 'm'))
    assert.match(out, /^Labels: +tier=edge,zone=z1$/m)
    assert.match(out, /^Static pods: +default\/web, kube-system\/kube-scheduler$/m)
  })
})

describe('staticpodctl exit statuses', () => {
  it('3: not found (a pod, a node, a log)', async () => {
    fails(await bed.run(['get', 'pod', 'nope', '--node', 'local']), 3, 'NOT_FOUND')
    fails(await bed.run(['describe', 'pod', 'nope', '--node', 'local']), 3, 'NOT_FOUND')
    fails(await bed.run(['get', 'pods', '--node', 'no-such-node']), 3, 'NOT_FOUND')
    fails(await bed.run(['logs', 'web', '--node', 'local', '-p']), 3, 'NOT_FOUND')
  })

  it('2: usage (missing arguments and flags, unknown flags, bad values)', async () => {
    const missing = await bed.run(['describe', 'pod', 'web'])
    fails(missing, 2, 'USAGE')
    assert.match(missing.stderr, /--node NODE is required/)
    const unknown = await bed.run(['get', 'pods', '--bogus'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown option '--bogus'/)
    assert.equal((await bed.run(['get'])).code, 2)
    assert.equal((await bed.run(['apply', '--node', 'local'])).code, 2)
    fails(await bed.run(['get', 'pods', '-o', 'xml']), 2, 'USAGE')
    fails(await bed.run(['get', 'pods', '-l', 'a in (b']), 2, 'USAGE')
    fails(await bed.run(['get', 'widgets']), 2, 'USAGE')
    assert.equal((await bed.run(['frobnicate'])).code, 2)
  })

  it('5: no token, a wrong one, a role that may not', async () => {
    fails(await bed.run(['get', 'pods'], { token: null }), 5, 'UNAUTHENTICATED')
    fails(await bed.run(['get', 'pods'], { token: 'not-a-token' }), 5, 'UNAUTHENTICATED')
    fails(await bed.run(['restart', 'pod', 'web', '--node', 'local'], { token: TOKENS.viewer }), 5, 'FORBIDDEN')
    // A token limited to cp-* nodes does not see these.
    fails(await bed.run(['get', 'pod', 'web', '--node', 'local'], { token: TOKENS.cpOperator }), 5, 'FORBIDDEN')
  })

  it('6: a node that cannot be reached (what is known is printed, the error said)', async (t) => {
    const dead = await bed.addDeadNode('dead-1')
    t.after(async () => void (await bed.gql(`mutation { removeNode(name: "${dead}") { removed } }`)))
    const r = fails(await bed.run(['get', 'pods', '--node', dead]), 6, 'NODE_UNREACHABLE')
    assert.match(r.stderr, /^warning: NODE_UNREACHABLE: node dead-1: /m)
    const all = await bed.run(['get', 'pods', '-o', 'name'])
    assert.equal(all.code, 6)
    assert.match(all.stdout, /^pod\/local\/default\/web$/m, 'the other nodes are printed')
    fails(await bed.run(['describe', 'node', dead]), 6, 'NODE_UNREACHABLE')
  })

  it('1: failed (the service unreachable, a manifest the service refuses)', async () => {
    const closed = await bed.run(['get', 'pods'], { env: { STATICPOD_SERVER: 'http://127.0.0.1:9' } })
    fails(closed, 1, 'SERVER_UNREACHABLE')
    assert.match(closed.stderr, /cannot reach staticpod-api at http:\/\/127\.0\.0\.1:9 \(STATICPOD_SERVER\)/)
    const file = join(bed.dir, 'bad.yaml')
    await writeFile(file, 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  containers: []\n')
    fails(await bed.run(['apply', '-f', file, '--node', 'local']), 1, 'VALIDATION_FAILED')
  })

  it('4: conflict (a file that is not the one expected)', async () => {
    const r = fails(await bed.run(['delete', 'pod', 'web', '--node', 'local', '--if-hash', '0'.repeat(64)]), 4, 'CONFLICT')
    assert.match(r.stderr, /nothing was written/)
    assert.ok((await stat(join(bed.localManifests, 'web.yaml'))).isFile(), 'the file is still on the node')
  })
})

describe('staticpodctl config', () => {
  it('contexts: set-context, get-contexts, use-context, --context; flags, then environment, then the file', async () => {
    const home = join(bed.dir, 'config-home')
    await mkdir(home, { recursive: true })
    const tokenFile = join(home, 'lab.token')
    await writeFile(tokenFile, `${TOKENS.admin}\n`, { mode: 0o600 })
    // Neither STATICPOD_SERVER nor STATICPOD_TOKEN: only the file says where and who.
    const env = { HOME: home, STATICPOD_SERVER: undefined, STATICPOD_TOKEN: undefined }
    const o = { token: null, env }
    assert.match(ok(await bed.run(['config', 'set-context', 'lab', '--server', bed.url, '--token-file', tokenFile], o)).stdout, /Context "lab" created/)
    ok(await bed.run(['config', 'set-context', 'dead', '--server', 'http://127.0.0.1:9', '--token-file', tokenFile], o))
    const path = join(home, '.config', 'staticpodctl', 'config.yaml')
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    assert.deepEqual(parseYaml(await readFile(path, 'utf8')), {
      contexts: [
        { name: 'lab', server: bed.url, 'token-file': tokenFile },
        { name: 'dead', server: 'http://127.0.0.1:9', 'token-file': tokenFile },
      ],
      'current-context': 'lab',
    })
    assert.equal(ok(await bed.run(['config', 'get-contexts'], o)).stdout, `CURRENT   NAME   SERVER${' '.repeat(bed.url.length - 3)}AUTH\n*         lab    ${bed.url}   token-file ${tokenFile}\n          dead   http://127.0.0.1:9${' '.repeat(bed.url.length - 15)}token-file ${tokenFile}\n`)
    assert.equal(ok(await bed.run(['get', 'nodes', '-o', 'name'], o)).stdout, 'node/cli-1\nnode/cli-2\nnode/local\n')

    assert.match(ok(await bed.run(['config', 'use-context', 'dead'], o)).stdout, /Switched to context "dead"/)
    assert.equal(ok(await bed.run(['config', 'current-context'], o)).stdout, 'dead\n')
    fails(await bed.run(['get', 'nodes'], o), 1, 'SERVER_UNREACHABLE')
    ok(await bed.run(['--context', 'lab', 'get', 'nodes'], o))
    // The environment wins over the file, and a flag over the environment.
    ok(await bed.run(['get', 'nodes'], { token: null, env: { ...env, STATICPOD_SERVER: bed.url } }))
    ok(await bed.run(['--server', bed.url, 'get', 'nodes'], { token: null, env: { ...env, STATICPOD_SERVER: 'http://127.0.0.1:9' } }))
    fails(await bed.run(['get', 'nodes'], { token: null, env: { ...env, STATICPOD_SERVER: bed.url, STATICPOD_TOKEN: 'wrong' } }), 5, 'UNAUTHENTICATED')
    fails(await bed.run(['config', 'use-context', 'nope'], o), 3, 'NOT_FOUND')
    fails(await bed.run(['--context', 'nope', 'get', 'nodes'], o), 2, 'USAGE')
    const view = ok(await bed.run(['config', 'view'], o)).stdout
    assert.match(view, /this run: server http:\/\/127\.0\.0\.1:9 \(context dead\), token from context dead \(token-file\)/)
    assert.doesNotMatch(view, new RegExp(TOKENS.admin))
  })

  it('the default server is http://127.0.0.1:3000', async (t) => {
    // No --server, no STATICPOD_SERVER, no config file: only the default says where.
    const env = { HOME: join(bed.dir, 'empty-home'), STATICPOD_SERVER: undefined, STATICPODCTL_CONFIG: undefined, XDG_CONFIG_HOME: undefined }
    const view = ok(await bed.run(['config', 'view'], { env })).stdout
    assert.match(view, /^# this run: server http:\/\/127\.0\.0\.1:3000 \(default\), token from STATICPOD_TOKEN$/m, view)

    // Port 3000 taken by this test: the CLI's requests must arrive here (and are passed on to the service).
    const listener = await listenOnDefaultPort(bed.url)
    if (listener === null) {
      // Something else holds 3000 on this machine: whatever it answers, a failure names the default server.
      const r = await bed.run(['get', 'nodes'], { env })
      assert.ok(r.code === 0 || /http:\/\/127\.0\.0\.1:3000/.test(r.stderr), `a failure that does not name http://127.0.0.1:3000: exit ${r.code}; stderr: ${r.stderr}`)
      return
    }
    t.after(() => listener.close())
    assert.equal(ok(await bed.run(['get', 'nodes', '-o', 'name'], { env })).stdout, 'node/cli-1\nnode/cli-2\nnode/local\n')
    assert.ok(listener.requests.length > 0, 'no request reached 127.0.0.1:3000')
    for (const req of listener.requests) {
      assert.deepEqual([req.method, req.url, req.authorization], ['POST', '/graphql', `Bearer ${TOKENS.admin}`], 'the CLI sends its GraphQL POSTs, with its token, to the default server')
    }
    // Nothing that answers there: the message names the default, and where it came from.
    listener.refuse = true
    const refused = fails(await bed.run(['get', 'nodes'], { env }), 1, 'SERVER_UNREACHABLE')
    assert.match(refused.stderr, /cannot reach staticpod-api at http:\/\/127\.0\.0\.1:3000 \(default\)/)
  })

  it('the token is never on the process list: not from the environment, a file, or even --token once started', async () => {
    const tokenFile = join(bed.dir, 'ps.token')
    await writeFile(tokenFile, TOKENS.operator, { mode: 0o600 })
    const cases: Array<{ args: string[]; token: string | null }> = [
      { args: [], token: TOKENS.viewer },
      { args: ['--token-file', tokenFile], token: null },
      { args: ['--token', TOKENS.admin], token: null },
    ]
    for (const c of cases) {
      const child = bed.spawn([...c.args, 'events', '--watch', '--limit', '1'], { token: c.token })
      try {
        // Its first lines: the arguments have been parsed, the token read, and the subscription is on its way.
        await new Promise<void>((resolve, reject) => {
          child.stdout.once('data', () => resolve())
          child.stderr.once('data', (d: string) => reject(new Error(d)))
          child.once('exit', (code) => reject(new Error(`exited ${code}`)))
        })
        await sleep(300)
        const cmdline = (await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).replace(/\0/g, ' ')
        for (const token of Object.values(TOKENS)) assert.ok(!cmdline.includes(token), `the token is on the process list: ${cmdline}`)
        assert.match(cmdline, /staticpodctl|staticpodctl\.mjs/)
        if (c.args[0] === '--token') assert.match(cmdline, /--token \*\*\*/)
      } finally {
        child.kill()
      }
    }
  })
})

describe('staticpodctl events, audit, lint', () => {
  it('events --watch prints what happens, from the subscription', async () => {
    const child = bed.spawn(['events', '--watch', '-o', 'json', '--limit', '0', '--node', 'local'])
    let out = ''
    child.stdout.on('data', (d: string) => (out += d))
    try {
      // The CLI prints nothing before an event, so nothing says when it has subscribed (its start takes
      // seconds on a loaded machine): the hand edit is made again, with another image, until one is seen.
      let edits = 0
      const line = await until('the event', async () => {
        const image = edits++ % 2 === 0 ? 'nginx:1.28' : 'nginx:1.29'
        await writeFile(join(bed.localManifests, 'web.yaml'), manifest('web', { labels: { app: 'web', tier: 'front' }, image }))
        await bed.gql('{ staticPods(node: "local", maxAgeSeconds: 0) { id } }')
        return out.split('\n').find((l) => l.includes('STATIC_POD_CHANGED'))
      })
      const event = JSON.parse(line)
      assert.equal(event.node, 'local')
      assert.equal(event.name, 'web')
      assert.equal(event.actor, null)
    } finally {
      child.kill()
    }
    const table = ok(await bed.run(['events', '--node', 'local', '--type', 'static-pod-changed'])).stdout
    assert.match(table, /^AGE +TYPE +NODE +OBJECT +MESSAGE\n/)
    assert.match(table, /^\d+s +STATIC_POD_CHANGED +local +pod\/default\/web +default\/web changed on the node/m)
  })

  it('events --watch polls the events query where no WebSocket gets through', async (t) => {
    const proxy = await noWebSocketProxy(bed.url)
    t.after(() => new Promise((resolve) => proxy.server.close(resolve)))
    const child = bed.spawn(['events', '--watch', '-o', 'json', '--limit', '0', '--node', 'local'], { env: { STATICPOD_SERVER: proxy.url } })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: string) => (out += d))
    child.stderr.on('data', (d: string) => (err += d))
    try {
      await until('the fallback', async () => err.includes('polling the events query'))
      // Images the test above does not leave behind, so every edit is a change; made again until one is
      // seen, since nothing says when the CLI's first poll has fixed where it reads on from.
      let edits = 0
      const line = await until('the event', async () => {
        const image = edits++ % 2 === 0 ? 'nginx:1.30' : 'nginx:1.31'
        await writeFile(join(bed.localManifests, 'web.yaml'), manifest('web', { labels: { app: 'web', tier: 'front' }, image }))
        await bed.gql('{ staticPods(node: "local", maxAgeSeconds: 0) { id } }')
        return out.split('\n').find((l) => l.includes('nginx') || l.includes('STATIC_POD_CHANGED'))
      })
      assert.equal(JSON.parse(line).type, 'STATIC_POD_CHANGED')
    } finally {
      child.kill()
    }
  })

  it('audit shows the mutations, dry runs and denied ones too', async () => {
    ok(await bed.run(['restart', 'pod', 'web', '--node', 'cli-2', '--dry-run']))
    fails(await bed.run(['restart', 'pod', 'web', '--node', 'cli-2'], { token: TOKENS.viewer }), 5, 'FORBIDDEN')
    const table = ok(await bed.run(['audit', '--limit', '5'])).stdout
    assert.match(table, /^TIME +ACTOR +ACTION +NODE +TARGET +RESULT\n/)
    assert.match(table, /^\S+ +root-admin +restartStaticPod \(dry run\) +cli-2 +default\/web +OK\n\S+ +alice-viewer +restartStaticPod +cli-2 +\S+ +FORBIDDEN\n$/m)
    const json = JSON.parse(ok(await bed.run(['audit', '--node', 'cli-2', '-o', 'json'])).stdout)
    assert.equal(json.kind, 'AuditEventList')
    assert.ok(json.items.every((a: { node: string }) => a.node === 'cli-2'), `audit events of other nodes: ${JSON.stringify(json.items)}`)
  })

  it('lint: findings, and exit 1 while there are any', async () => {
    await writeFile(join(bed.localManifests, 'web.yaml.bak'), manifest('web'))
    const r = await bed.run(['lint'])
    fails(r, 1, 'FINDINGS')
    assert.match(r.stdout, /^local +STRAY_FILE +web\.yaml\.bak +web\.yaml\.bak looks like a backup/m)
    await rm(join(bed.localManifests, 'web.yaml.bak'))
    const clean = ok(await bed.run(['lint', '--node', 'local']))
    assert.equal(clean.stdout, '')
    assert.match(clean.stderr, /No findings on 1 node/)
  })
})

describe('staticpodctl completion', () => {
  async function complete(words: string[]): Promise<string[]> {
    const bin = join(bed.dir, 'bin')
    await mkdir(bin, { recursive: true })
    await writeFile(join(bin, 'staticpodctl'), `#!/bin/sh\nexec ${process.execPath} ${BIN} "$@"\n`)
    await chmod(join(bin, 'staticpodctl'), 0o755)
    const script = ok(await bed.run(['completion', 'bash'])).stdout
    await writeFile(join(bed.dir, 'completion.bash'), script)
    const line = `source ${join(bed.dir, 'completion.bash')}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _staticpodctl; printf '%s\\n' "\${COMPREPLY[@]}"`
    // Not spawnSync: the service answering the completion runs in this very process.
    const child = spawn('bash', ['-c', line], { env: { ...bed.env(), PATH: `${bin}:${process.env.PATH}` } })
    let stdout = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    const status = await new Promise((resolve) => child.once('close', resolve))
    assert.equal(status, 0)
    return stdout.split('\n').filter(Boolean).sort()
  }

  it('bash: commands, flags, resources, and node and pod names from the service', async () => {
    assert.deepEqual(await complete(['staticpodctl', 'ge']), ['get'])
    assert.deepEqual(await complete(['staticpodctl', 'get', '']), ['nodes', 'pods', 'rollouts'])
    assert.deepEqual(await complete(['staticpodctl', 'get', 'pods', '--node', '']), ['cli-1', 'cli-2', 'local'])
    assert.deepEqual(await complete(['staticpodctl', 'describe', 'pod', '--node', 'cli-1', '']), ['kube-scheduler', 'web'])
    assert.deepEqual(await complete(['staticpodctl', 'get', 'pods', '-o', '']), ['json', 'name', 'wide', 'yaml'])
    const flags = await complete(['staticpodctl', 'rollout', 'undo', 'pod', 'web', '--to'])
    assert.ok(flags.includes('--to-revision'), `--to completes to: ${flags.join(' ')}`)
    assert.deepEqual(await complete(['staticpodctl', 'completion', '']), ['bash', 'zsh'])
    assert.match(ok(await bed.run(['completion', 'zsh'])).stdout, /^#compdef staticpodctl$/m)
  })
})

/** An HTTP proxy to the service that refuses every WebSocket upgrade, as some corporate proxies do. */
async function noWebSocketProxy(target: string): Promise<{ url: string; server: Server }> {
  const forward = forwarder(target)
  const server = createHttpServer((req, res) => void forward(req, res).catch(() => res.destroy()))
  server.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\n\r\n'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return { url: `http://127.0.0.1:${address.port}`, server }
}

/**
 * An HTTP server on 127.0.0.1:3000 (the CLI's default server) that records each request and passes it on
 * to the service, or, once refuse is set, drops the connection unanswered; null when 3000 is taken.
 */
async function listenOnDefaultPort(target: string): Promise<{ requests: Array<{ method?: string; url?: string; authorization?: string }>; refuse: boolean; close(): Promise<void> } | null> {
  const listener = {
    requests: [] as Array<{ method?: string; url?: string; authorization?: string }>,
    refuse: false,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
  const forward = forwarder(target)
  const server = createHttpServer((req, res) => {
    if (listener.refuse) return void req.socket.destroy()
    listener.requests.push({ method: req.method, url: req.url, authorization: req.headers.authorization })
    void forward(req, res).catch(() => res.destroy())
  })
  const bound = await new Promise<boolean>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)))
    server.listen(3000, '127.0.0.1', () => resolve(true))
  })
  return bound ? listener : null
}

/** Passes an HTTP request on to target (no WebSocket upgrades) and its answer back. */
function forwarder(target: string): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const upstream = await fetch(`${target}${req.url}`, {
      method: req.method,
      headers: Object.fromEntries(Object.entries(req.headers).filter(([k, v]) => typeof v === 'string' && !['host', 'connection', 'content-length'].includes(k))) as Record<string, string>,
      body: chunks.length ? Buffer.concat(chunks) : undefined,
    })
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' })
    res.end(Buffer.from(await upstream.arrayBuffer()))
  }
}
