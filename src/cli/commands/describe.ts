// describe pod NAME --node NODE: what an SRE asks first about a static pod
// that does not run, in one read of the node (live): its file, the runtime
// with exit codes, the diagnosis (cause first), certificates, the last
// revisions and the node's findings about its file. describe node NAME: the
// node's own.

import type { Command } from 'commander'
import { CliError, usage } from '../errors.ts'
import { podRef, resourceArgs, type Ctx } from '../context.ts'
import { fields, indent, table, type Cell } from '../output/table.ts'
import { age, now } from '../output/time.ts'
import { describeNodeQuery, describePodQuery, type ContainerRuntime, type NodeRow } from '../queries.ts'
import { nodeStatus } from './get.ts'

interface Problem {
  code: string
  severity: string
  message: string
  evidence: string[]
}

interface DescribedPod {
  id: string
  nodeName: string
  namespace: string
  name: string
  mirrorPodName: string
  fileName: string
  path: string
  hash: string
  revision: number
  managed: boolean
  observedAt: string
  stale: boolean
  sync: string
  containers: Array<{ name: string; image: string; init: boolean }>
  runtime: { state: string; observedAt: string; containers: ContainerRuntime[] } | null
  diagnosis: Problem[]
  certificates: Array<{ path: string; referencedBy: string; subject: string; notAfter: string; daysLeft: number }>
  history: Array<{ revision: number; action: string; actor: string | null; hash: string; recordedAt: string }>
  node: { kind: string; findings: Array<{ code: string; fileName: string | null; message: string }> }
}

export function registerDescribe(program: Command, ctx: Ctx): void {
  program
    .command('describe')
    .description('Show a static pod (runtime, exit codes, diagnosis, certificates, revisions, findings) or a node in detail')
    .argument('<resource>', 'pod or node (or pod/NAME)')
    .argument('[name]', 'its name')
    .option('--node <node>', 'the node the pod is on (pods)')
    .option('-n, --namespace <namespace>', "the pod's namespace, where its name is not unique on the node")
    .action(async (resource: string, name: string | undefined, opts: { node?: string; namespace?: string }) => {
      const r = resourceArgs(resource, name, ['pod', 'node'])
      if (r.resource === 'node') {
        if (!r.name) throw usage('a node NAME is required')
        await describeNode(ctx, r.name)
        return
      }
      await describePod(ctx, podRef(resource, name, opts))
    })
}

async function describePod(ctx: Ctx, ref: { node: string; namespace: string | null; name: string }): Promise<void> {
  const api = await ctx.api()
  const { staticPod: p } = await api.request<{ staticPod: DescribedPod | null }>(describePodQuery, ref)
  if (!p) throw new CliError('NOT_FOUND', `static pod "${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}" not found on node ${ref.node}`)
  const at = now(ctx.io.env)
  let out = fields([
    ['Name', p.name],
    ['Namespace', p.namespace],
    ['Node', p.nodeName],
    ['File', p.path],
    ['Hash', p.hash],
    ['Revision', `${p.revision}${p.managed ? '' : ' (changed outside the service)'}`],
    ['Mirror pod', `${p.mirrorPodName} (${p.sync})`],
    ['Observed', `${p.observedAt} (${age(p.observedAt, at)} ago)${p.stale ? ', STALE: the node could not be read just now' : ''}`],
    ['Runtime', p.runtime ? p.runtime.state : 'unknown (no container runtime answer from the node)'],
  ])

  out += 'Containers:\n'
  const running = new Map((p.runtime?.containers ?? []).map((c) => [c.name, c]))
  for (const c of p.containers) {
    const rt = running.get(c.name)
    const pairs: Array<[string, Cell]> = [
      ['Image', c.image],
      ...(c.init ? [['Init container', 'yes'] as [string, Cell]] : []),
    ]
    if (rt) {
      pairs.push(['State', `${rt.state}${rt.reason ? ` (${rt.reason})` : ''}`])
      if (rt.exitCode !== null && rt.exitCode !== undefined) pairs.push(['Exit code', rt.exitCode])
      if (rt.message) pairs.push(['Message', rt.message])
      if (rt.startedAt) pairs.push(['Started', rt.startedAt])
      if (rt.finishedAt) pairs.push(['Finished', rt.finishedAt])
      pairs.push(['Ready', rt.ready ?? (rt.state === 'RUNNING')])
      pairs.push(['Restarts', rt.restartCount ?? 0])
      const last = rt.lastTermination
      if (last) pairs.push(['Last exit', `${last.exitCode ?? '?'}${last.reason ? ` (${last.reason})` : ''}${last.finishedAt ? ` at ${last.finishedAt}` : ''}`])
    } else if (p.runtime) {
      pairs.push(['State', 'not running'])
    }
    out += `  ${c.name}:\n${fields(pairs, '    ')}`
  }

  out += 'Diagnosis:\n'
  if (p.diagnosis.length === 0) out += '  none: nothing keeps it from running ready and in sync\n'
  for (const d of p.diagnosis) {
    out += `  ${d.severity} ${d.code}: ${d.message}\n`
    for (const e of d.evidence) out += `    ${e.replace(/\n/g, '\n    ')}\n`
  }

  out += 'Certificates:\n'
  out +=
    p.certificates.length === 0
      ? '  none named by its flags\n'
      : indent(table(['path', 'referenced by', 'not after', 'days left'], p.certificates.map((c) => [c.path, c.referencedBy, c.notAfter, c.daysLeft])))

  out += 'Revisions:\n'
  out += indent(table(['revision', 'action', 'actor', 'hash', 'age'], p.history.map((h) => [h.revision, h.action, h.actor ?? '(on the node)', h.hash.slice(0, 12), age(h.recordedAt, at)])))

  const findings = p.node.findings.filter((f) => f.fileName === p.fileName || f.fileName === null)
  out += 'Findings:\n'
  out += findings.length === 0 ? '  none for this file\n' : indent(table(['code', 'file', 'message'], findings.map((f) => [f.code, f.fileName, f.message])))
  ctx.out(out)
}

async function describeNode(ctx: Ctx, name: string): Promise<void> {
  const api = await ctx.api()
  const { node: n } = await api.request<{
    node: (NodeRow & { kubernetes: { ready: boolean | null; kubeletVersion: string | null; internalIP: string | null } | null; diagnosis: Problem[] }) | null
  }>(describeNodeQuery, { name })
  if (!n) throw new CliError('NOT_FOUND', `node "${name}" is not registered`)
  const at = now(ctx.io.env)
  let out = fields([
    ['Name', n.name],
    ['Kind', n.kind === 'LOCAL' ? 'local' : 'ssh'],
    ...(n.kind === 'SSH'
      ? ([
          ['Address', `${n.user}@${n.host}:${n.port}${n.via ? ` via ${n.via}` : ''}`],
          ['Privilege', n.privilege],
          ['Host key', n.hostKeyFingerprint ?? `not pinned (presented: ${n.observedHostKeyFingerprint ?? 'unknown'})`],
        ] as Array<[string, Cell]>)
      : []),
    ['Static pod path', n.staticPodPath],
    ['Labels', n.labels.map((l) => `${l.key}=${l.value}`).join(',')],
    ['Status', `${nodeStatus(n)}${n.agent.lastError ? ` (${n.agent.lastError})` : ''}`],
    ['Latency', n.agent.latencyMs === null ? null : `${Math.round(n.agent.latencyMs)} ms`],
    ['Kubelet', n.kubelet ? `${n.kubelet.healthy ? 'healthy' : 'unhealthy'}${n.kubelet.message ? ` (${n.kubelet.message})` : ''}` : `unknown: ${n.kubeletUnavailableReason ?? ''}`],
    ['Runtime', n.runtimeUnavailableReason ? `unavailable: ${n.runtimeUnavailableReason}` : 'available'],
    ['API server node', n.kubernetes ? `ready ${n.kubernetes.ready ?? 'unknown'}, kubelet ${n.kubernetes.kubeletVersion ?? '?'}, ${n.kubernetes.internalIP ?? ''}` : null],
    ['Observed', n.observedAt ? `${n.observedAt} (${age(n.observedAt, at)} ago)` : null],
    ['Static pods', n.staticPods.map((p) => p.id.split('/').slice(1).join('/')).join(', ')],
  ])
  out += 'Diagnosis:\n'
  if (n.diagnosis.length === 0) out += '  none\n'
  for (const d of n.diagnosis) {
    out += `  ${d.severity} ${d.code}: ${d.message}\n`
    for (const e of d.evidence) out += `    ${e}\n`
  }
  out += 'Findings:\n'
  out += n.findings.length === 0 ? '  none\n' : indent(table(['code', 'file', 'message'], n.findings.map((f) => [f.code, f.fileName, f.message])))
  ctx.out(out)
}
