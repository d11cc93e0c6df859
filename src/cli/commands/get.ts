// get nodes|pods|rollouts [NAME]: tables like kubectl's, or the service's own
// answer as -o json / yaml (a List of the objects, or the one object asked for
// by NAME and --node), or kind/name lines (-o name).

import type { Command } from 'commander'
import { CliError, usage } from '../errors.ts'
import type { Ctx } from '../context.ts'
import { resourceArgs } from '../context.ts'
import { list, outputFormat, structured, type OutputFormat } from '../output/format.ts'
import { table, type Cell } from '../output/table.ts'
import { age, now } from '../output/time.ts'
import { parseSelector, readyColumn, restartsColumn, statusColumn } from '../pods.ts'
import {
  nodeQuery,
  nodesQuery,
  podQuery,
  podsOnNodesQuery,
  podsQuery,
  rolloutQuery,
  rolloutsQuery,
  type NodeRow,
  type PodRow,
  type Rollout,
} from '../queries.ts'

interface GetOptions {
  output?: string
  namespace?: string
  node?: string
  selector?: string
  nodeSelector?: string
  live?: boolean
  active?: boolean
}

export function registerGet(program: Command, ctx: Ctx): void {
  program
    .command('get')
    .description('List nodes, static pods or rollouts (pods: NODE NAMESPACE NAME READY STATUS RESTARTS AGE SYNC)')
    .argument('<resource>', 'nodes, pods or rollouts (or pod/NAME)')
    .argument('[name]', 'only this one')
    .option('-o, --output <format>', 'wide, json, yaml or name')
    .option('-n, --namespace <namespace>', 'pods of this namespace only (default: every namespace)')
    .option('--node <node>', 'pods of this node only')
    .option('-l, --selector <selector>', "label selector (nodes: the nodes' labels; pods: the pods' own labels), e.g. tier=edge,zone!=z3")
    .option('--node-selector <selector>', "pods on the nodes with these labels, e.g. node-role.kubernetes.io/control-plane")
    .option('--live', 'read the nodes now instead of a recent observation (maxAgeSeconds: 0)')
    .option('--active', 'rollouts: running ones only')
    .action(async (resource: string, name: string | undefined, opts: GetOptions) => {
      const r = resourceArgs(resource, name, ['pod', 'node', 'rollout'])
      const format = outputFormat(opts.output)
      if (r.resource === 'pod') await getPods(ctx, r.name, opts, format)
      else if (r.resource === 'node') await getNodes(ctx, r.name, opts, format)
      else await getRollouts(ctx, r.name, opts, format)
    })
}

async function getPods(ctx: Ctx, name: string | undefined, opts: GetOptions, format: OutputFormat): Promise<void> {
  const api = await ctx.api()
  const full = format === 'json' || format === 'yaml'
  const maxAge = opts.live ? 0 : null
  if (opts.node && opts.nodeSelector) throw usage('give --node or --node-selector, not both')
  const matches = opts.selector ? parseSelector(opts.selector) : null

  // One pod by name on one node: that object itself, as kubectl prints `get pod NAME`.
  if (name && opts.node && !matches) {
    const { staticPod } = await api.request<{ staticPod: PodRow | null }>(podQuery(full), { node: opts.node, namespace: opts.namespace ?? null, name, maxAge })
    if (!staticPod) throw notFound(name, opts)
    printPods(ctx, [staticPod], format, false)
    return
  }

  let pods: PodRow[]
  if (opts.nodeSelector) {
    const { nodes } = await api.request<{ nodes: Array<{ name: string; staticPods: PodRow[] }> }>(podsOnNodesQuery(full, matches !== null), {
      selector: opts.nodeSelector,
      namespace: opts.namespace ?? null,
      maxAge,
    })
    pods = nodes.flatMap((n) => n.staticPods)
  } else {
    const { staticPods } = await api.request<{ staticPods: PodRow[] }>(podsQuery(full, matches !== null), { node: opts.node ?? null, namespace: opts.namespace ?? null, maxAge })
    pods = staticPods
  }
  if (name) pods = pods.filter((p) => p.name === name)
  if (matches) pods = pods.filter((p) => matches(p.pod?.metadata?.labels ?? {}))
  if (name && pods.length === 0) throw notFound(name, opts)
  printPods(ctx, pods, format, true)
}

function notFound(name: string, opts: GetOptions): CliError {
  const where = opts.node ? ` on node ${opts.node}` : ''
  return new CliError('NOT_FOUND', `static pod "${opts.namespace ? `${opts.namespace}/` : ''}${name}" not found${where}`)
}

function printPods(ctx: Ctx, pods: PodRow[], format: OutputFormat, asList: boolean): void {
  if (format === 'json' || format === 'yaml') {
    // What the service answered, without a field of its own added or left out.
    ctx.out(structured(format, asList ? list('StaticPodList', pods) : pods[0]))
    return
  }
  if (format === 'name') {
    ctx.out(pods.map((p) => `pod/${p.id}\n`).join(''))
    return
  }
  if (pods.length === 0) {
    ctx.err('No static pods found.\n')
    return
  }
  const at = now(ctx.io.env)
  const wide = format === 'wide'
  const headers = ['node', 'namespace', 'name', 'ready', 'status', 'restarts', 'age', 'sync', ...(wide ? ['images', 'hash', 'revision', 'managed'] : [])]
  const rows = pods.map((p): Cell[] => [
    p.nodeName,
    p.namespace,
    p.name,
    readyColumn(p),
    statusColumn(p),
    restartsColumn(p),
    age(p.history[0]?.recordedAt, at),
    p.sync,
    ...(wide ? [p.containers.map((c) => c.image).join(','), p.hash.slice(0, 12), p.revision, p.managed] : []),
  ])
  ctx.out(table(headers, rows))
}

async function getNodes(ctx: Ctx, name: string | undefined, opts: GetOptions, format: OutputFormat): Promise<void> {
  const api = await ctx.api()
  let nodes: NodeRow[]
  if (name) {
    const { node } = await api.request<{ node: NodeRow | null }>(nodeQuery, { name, maxAge: opts.live ? 0 : null })
    if (!node) throw new CliError('NOT_FOUND', `node "${name}" is not registered`)
    if (format === 'json' || format === 'yaml') {
      ctx.out(structured(format, node))
      return
    }
    nodes = [node]
  } else {
    nodes = (await api.request<{ nodes: NodeRow[] }>(nodesQuery, { selector: opts.selector ?? null, maxAge: opts.live ? 0 : null })).nodes
  }
  if (format === 'json' || format === 'yaml') {
    ctx.out(structured(format, list('NodeList', nodes)))
    return
  }
  if (format === 'name') {
    ctx.out(nodes.map((n) => `node/${n.name}\n`).join(''))
    return
  }
  if (nodes.length === 0) {
    ctx.err('No nodes found.\n')
    return
  }
  const at = now(ctx.io.env)
  const wide = format === 'wide'
  const headers = ['name', 'kind', 'status', 'kubelet', 'pods', 'findings', 'last seen', ...(wide ? ['address', 'user', 'via', 'path', 'labels'] : [])]
  ctx.out(
    table(
      headers,
      nodes.map((n): Cell[] => [
        n.name,
        n.kind === 'LOCAL' ? 'local' : 'ssh',
        nodeStatus(n),
        n.kubelet ? (n.kubelet.healthy ? 'Healthy' : 'Unhealthy') : 'Unknown',
        n.staticPods.length,
        n.findings.length,
        age(n.observedAt, at),
        ...(wide
          ? [
              n.kind === 'LOCAL' ? '' : `${n.host}:${n.port}`,
              n.kind === 'LOCAL' ? '' : `${n.user}${n.privilege === 'SUDO' ? ' (sudo)' : ''}`,
              n.via,
              n.staticPodPath,
              n.labels.map((l) => `${l.key}=${l.value}`).join(','),
            ]
          : []),
      ]),
    ),
  )
}

export function nodeStatus(n: NodeRow): string {
  if (n.kind === 'SSH' && !n.hostKeyFingerprint) return 'Unverified'
  return n.agent.reachable ? 'Reachable' : 'Unreachable'
}

async function getRollouts(ctx: Ctx, id: string | undefined, opts: GetOptions, format: OutputFormat): Promise<void> {
  const api = await ctx.api()
  let rollouts: Rollout[]
  if (id) {
    const { rollout } = await api.request<{ rollout: Rollout | null }>(rolloutQuery, { id })
    if (!rollout) throw new CliError('NOT_FOUND', `rollout ${id} is not known to this service instance (it keeps running rollouts and the last 50 finished)`)
    rollouts = [rollout]
  } else {
    rollouts = (await api.request<{ rollouts: Rollout[] }>(rolloutsQuery, { active: opts.active ? true : null })).rollouts
  }
  if (format === 'json' || format === 'yaml') {
    ctx.out(structured(format, id ? rollouts[0] : list('RolloutList', rollouts)))
    return
  }
  if (format === 'name') {
    ctx.out(rollouts.map((r) => `rollout/${r.id}\n`).join(''))
    return
  }
  if (rollouts.length === 0) {
    ctx.err('No rollouts found.\n')
    return
  }
  const at = now(ctx.io.env)
  ctx.out(
    table(
      ['id', 'kind', 'target', 'state', 'nodes', 'actor', 'age', ...(format === 'wide' ? ['strategy', 'dry run'] : [])],
      rollouts.map((r): Cell[] => [
        r.id,
        r.kind,
        r.target,
        r.state,
        `${r.nodes.filter((n) => n.phase === 'DONE').length}/${r.nodes.length}`,
        r.actor,
        age(r.startedAt, at),
        ...(format === 'wide' ? [`${r.strategy}${r.strategy === 'ROLLING' ? ` ${r.maxUnavailable}` : ''}`, r.dryRun] : []),
      ]),
    ),
  )
}
