// apply -f FILE, patch pod NAME, set image, set flag: changes over one or many
// nodes, always as the service's rollouts (applyStaticPodToNodes,
// patchStaticPodOnNodes): the per-node diff on --dry-run, progress while it
// runs, the quorum guard for etcd and control-plane nodes, and per-node results.

import { readFile } from 'node:fs/promises'
import { Option, type Command } from 'commander'
import { CliError, usage } from '../errors.ts'
import { resourceArgs, type Ctx } from '../context.ts'
import { outputFormat } from '../output/format.ts'
import { parseDuration } from '../output/time.ts'
import { applyMutation, patchMutation } from '../queries.ts'
import { runRollout } from './rollout-run.ts'
import { yamlLib } from '../yaml.ts'

interface RolloutFlags {
  node: string[]
  selector?: string
  strategy?: string
  maxUnavailable?: string
  timeout?: string
  autoRollback: boolean
  dryRun?: boolean
  output?: string
}

const collect = (value: string, previous: string[]) => [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)]

function rolloutOptions(cmd: Command): Command {
  return cmd
    .option('--node <node>', 'a node to change (repeat, or comma-separated)', collect, [])
    .option('-l, --selector <selector>', 'the nodes with these labels, e.g. node-role.kubernetes.io/control-plane')
    .addOption(new Option('--strategy <strategy>', 'rolling: max-unavailable nodes at a time, stopping at the first failure; all-at-once').choices(['rolling', 'all-at-once']))
    .option('--max-unavailable <n>', 'rolling: nodes changed at a time (default 1)')
    .option('--timeout <duration>', 'how long each node may take to run the new pod ready (default 120s; 0: do not wait)')
    .option('--no-auto-rollback', 'leave a node that fails as it is (default: write its previous manifest back)')
    .option('--dry-run', "show each node's diff; write nothing")
    .option('-o, --output <format>', 'json or yaml: the service\'s answer as it is')
}

function rolloutSettings(flags: RolloutFlags): Record<string, unknown> {
  if (flags.node.length > 0 && flags.selector) throw usage('give --node or -l/--selector, not both')
  if (flags.node.length === 0 && !flags.selector) throw usage('which nodes? give --node NODE or -l SELECTOR')
  const settings: Record<string, unknown> = flags.node.length > 0 ? { nodes: flags.node } : { labelSelector: flags.selector }
  if (flags.strategy) settings.strategy = flags.strategy === 'rolling' ? 'ROLLING' : 'ALL_AT_ONCE'
  if (flags.maxUnavailable !== undefined) {
    if (!/^\d+$/.test(flags.maxUnavailable) || Number(flags.maxUnavailable) < 1) throw usage(`--max-unavailable ${flags.maxUnavailable}: expected a whole number of at least 1`)
    settings.maxUnavailable = Number(flags.maxUnavailable)
  }
  if (flags.timeout !== undefined) {
    const seconds = parseDuration(flags.timeout)
    if (seconds === null) throw usage(`--timeout ${flags.timeout}: expected a duration such as 90s or 5m (0: do not wait)`)
    settings.readyTimeoutSeconds = seconds
  }
  settings.autoRollback = flags.autoRollback
  settings.dryRun = flags.dryRun ?? false
  return settings
}

function rolloutOutput(flags: RolloutFlags): 'table' | 'json' | 'yaml' {
  return outputFormat(flags.output, ['json', 'yaml']) as 'table' | 'json' | 'yaml'
}

async function readInput(ctx: Ctx, path: string, what: string): Promise<string> {
  if (path === '-') {
    const chunks: Buffer[] = []
    for await (const chunk of ctx.io.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
    return Buffer.concat(chunks).toString('utf8')
  }
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new CliError('FILE', `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** The pod a manifest is, for telling its rollout among others (the service validates it for real). */
function manifestTarget(text: string): { namespace: string | null; name: string } | null {
  try {
    const doc = yamlLib().parse(text) as { metadata?: { name?: unknown; namespace?: unknown } } | null
    const name = doc?.metadata?.name
    if (typeof name !== 'string') return null
    return { namespace: typeof doc?.metadata?.namespace === 'string' ? doc.metadata.namespace : 'default', name }
  } catch {
    return null
  }
}

function podName(resource: string, name: string | undefined): string {
  const r = resourceArgs(resource, name, ['pod'])
  if (!r.name) throw usage('a pod NAME is required')
  return r.name
}

export function registerApply(program: Command, ctx: Ctx): void {
  rolloutOptions(
    program
      .command('apply')
      .description('Write one manifest to the nodes (created or replaced), as a rollout')
      .requiredOption('-f, --filename <file>', 'the manifest (YAML or JSON, one Pod); - for stdin'),
  ).action(async (opts: RolloutFlags & { filename: string }) => {
    const input = rolloutSettings(opts)
    const output = rolloutOutput(opts)
    const manifest = await readInput(ctx, opts.filename, 'the manifest')
    await runRollout(ctx, { mutation: applyMutation, field: 'applyStaticPodToNodes', input: { ...input, manifest, dryRun: input.dryRun as boolean }, target: manifestTarget(manifest), output })
  })

  rolloutOptions(
    program
      .command('patch')
      .description("Patch each node's own manifest in place (strategic merge, JSON merge or JSON patch), as a rollout")
      .argument('<resource>', 'pod (or pod/NAME)')
      .argument('[name]', 'the static pod')
      .option('-n, --namespace <namespace>', "the pod's namespace, where its name is not unique")
      .option('-p, --patch <patch>', 'the patch (YAML or JSON)')
      .option('--patch-file <file>', 'the patch, from a file (- for stdin)')
      .addOption(new Option('--type <type>', 'strategic (default), merge (RFC 7386) or json (RFC 6902)').choices(['strategic', 'merge', 'json']).default('strategic')),
  ).action(async (resource: string, name: string | undefined, opts: RolloutFlags & { namespace?: string; patch?: string; patchFile?: string; type: string }) => {
    const pod = podName(resource, name)
    if ((opts.patch === undefined) === (opts.patchFile === undefined)) throw usage('give the patch with -p PATCH or --patch-file FILE')
    const input = rolloutSettings(opts)
    const output = rolloutOutput(opts)
    const patch = opts.patch ?? (await readInput(ctx, opts.patchFile as string, 'the patch'))
    await runRollout(ctx, {
      mutation: patchMutation,
      field: 'patchStaticPodOnNodes',
      input: { ...input, namespace: opts.namespace ?? null, name: pod, change: { patch, patchType: opts.type.toUpperCase() }, dryRun: input.dryRun as boolean },
      target: { namespace: opts.namespace ?? null, name: pod },
      output,
    })
  })

  const set = program.command('set').description("Change a container's image or command-line flags in each node's own manifest, as a rollout")
  rolloutOptions(
    set
      .command('image')
      .description('Set container images: CONTAINER=IMAGE (a full reference) or CONTAINER=:TAG (the tag only, registry and repository kept)')
      .argument('<resource>', 'pod (or pod/NAME)')
      .argument('<args...>', '[NAME] CONTAINER=IMAGE ...')
      .option('-n, --namespace <namespace>', "the pod's namespace, where its name is not unique"),
  ).action(async (resource: string, args: string[], opts: RolloutFlags & { namespace?: string }) => {
    const { name, changes } = splitNameAndChanges(resource, args, 'CONTAINER=IMAGE')
    const images = changes.map((c) => {
      const eq = c.indexOf('=')
      const container = c.slice(0, eq)
      const value = c.slice(eq + 1)
      if (eq <= 0 || value === '' || value === ':') throw usage(`"${c}": expected CONTAINER=IMAGE or CONTAINER=:TAG`)
      return value.startsWith(':') ? { container, tag: value.slice(1) } : { container, image: value }
    })
    const input = rolloutSettings(opts)
    await runRollout(ctx, {
      mutation: patchMutation,
      field: 'patchStaticPodOnNodes',
      input: { ...input, namespace: opts.namespace ?? null, name, change: { images }, dryRun: input.dryRun as boolean },
      target: { namespace: opts.namespace ?? null, name },
      output: rolloutOutput(opts),
    })
  })

  rolloutOptions(
    set
      .command('flag')
      .description("Set, replace or remove a container's command-line flags as kubeadm's extraArgs do: FLAG=VALUE sets, FLAG- removes; put flags written with dashes after --")
      .argument('<resource>', 'pod (or pod/NAME)')
      .argument('<args...>', '[NAME] FLAG=VALUE | FLAG- ...')
      .option('-n, --namespace <namespace>', "the pod's namespace, where its name is not unique")
      .option('-c, --container <container>', "the container (default: the one named like the pod, as kubeadm's are)"),
  )
    .addHelpText('after', '\nExample:\n  staticpodctl set flag pod kube-apiserver -l node-role.kubernetes.io/control-plane -- --audit-log-maxage=30 --profiling=false --enable-bootstrap-token-auth-\n')
    .showHelpAfterError('(flags written with dashes go after --, e.g. staticpodctl set flag pod NAME --node NODE -- --v=2)')
    .action(async (resource: string, args: string[], opts: RolloutFlags & { namespace?: string; container?: string }) => {
      const { name, changes } = splitNameAndChanges(resource, args, 'FLAG=VALUE')
      const container = opts.container ?? name
      const flags = changes.map((c) => {
        const eq = c.indexOf('=')
        const raw = eq === -1 ? c : c.slice(0, eq)
        if (eq === -1 && !raw.endsWith('-')) throw usage(`"${c}": expected FLAG=VALUE to set it or FLAG- to remove it`)
        const bare = (eq === -1 ? raw.slice(0, -1) : raw).replace(/^-+/, '')
        if (!/^[A-Za-z0-9][-A-Za-z0-9_.]*$/.test(bare)) throw usage(`"${c}": "${bare}" is not a flag name`)
        return { container, flag: `--${bare}`, value: eq === -1 ? null : c.slice(eq + 1) }
      })
      const input = rolloutSettings(opts)
      await runRollout(ctx, {
        mutation: patchMutation,
        field: 'patchStaticPodOnNodes',
        input: { ...input, namespace: opts.namespace ?? null, name, change: { flags }, dryRun: input.dryRun as boolean },
        target: { namespace: opts.namespace ?? null, name },
        output: rolloutOutput(opts),
      })
    })
}

/** `pod NAME a=b ...` or `pod/NAME a=b ...`. */
function splitNameAndChanges(resource: string, args: string[], what: string): { name: string; changes: string[] } {
  const slash = resource.includes('/')
  const name = slash ? podName(resource, undefined) : podName(resource, args[0])
  const changes = slash ? args : args.slice(1)
  if (changes.length === 0) throw usage(`nothing to set: give ${what} ...`)
  return { name, changes }
}
