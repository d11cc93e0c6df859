// npm run bench:sftp-requests: how many SFTP requests (SSH packets from the service) one
// warm write costs on one node, by request type, on a real sshd (test/support/sshd.ts).
// The warm fan-out time follows this count (bench:fanout); bare ssh2's write is 4:
// open, write, close, rename. Counted by wrapping ssh2's SFTP client methods.
import { createRequire } from 'node:module'
import { startSshdFleet } from '../test/support/sshd.ts'
import { sshFleetApp } from '../test/support/ssh-app.ts'
import { ANONYMOUS_ADMIN } from '../src/services/actor.ts'
const require = createRequire(import.meta.url)
const { SFTP } = require('ssh2/lib/protocol/SFTP.js')
const counts = new Map<string, number>()
let counting = false
for (const m of ['open', 'read', 'write', 'close', 'opendir', 'readdir', 'rename', 'ext_openssh_rename', 'ext_openssh_fsync', 'unlink', 'stat', 'lstat', 'fstat', 'mkdir', 'symlink', 'readlink']) {
  const orig = SFTP.prototype[m]
  SFTP.prototype[m] = function (this: unknown, ...args: unknown[]) {
    // readdir(path) calls itself with a handle: count only handle-level calls
    if (counting && !(m === 'readdir' && typeof args[0] === 'string')) counts.set(m, (counts.get(m) ?? 0) + 1)
    return orig.apply(this, args)
  }
}
const afters: Array<() => Promise<void>> = []
const fleet = await startSshdFleet(1, { node: () => ({ crictl: 'none' }) })
const app = await sshFleetApp({ after: (fn) => afters.push(fn) }, fleet)
await app.addNode(fleet.nodes[0]!)
const pod = (v: number) => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: kube-system\nspec:\n  containers:\n  - name: main\n    image: nginx:1.${v}\n`
const s = app.app.services.staticPods
for (let v = 1; v <= 3; v++) await s.putStaticPod({ node: fleet.nodes[0]!.name, namespace: 'kube-system', name: 'web', manifest: pod(v) }, ANONYMOUS_ADMIN)
counting = true
const r = await s.putStaticPod({ node: fleet.nodes[0]!.name, namespace: 'kube-system', name: 'web', manifest: pod(9) }, ANONYMOUS_ADMIN)
counting = false
console.log(JSON.stringify({ changed: r.changed, errors: r.userErrors, total: [...counts.values()].reduce((a, b) => a + b, 0), byRequest: Object.fromEntries(counts) }))
for (const f of afters.reverse()) await f()
await fleet.stop()
