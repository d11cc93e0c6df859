// rollout history|undo pod NAME --node NODE, rollout status ROLLOUT_ID.

import type { Command } from 'commander'
import { CliError, throwUserErrors, usage } from '../errors.ts'
import { podRef, type Ctx } from '../context.ts'
import { outputFormat, structured } from '../output/format.ts'
import { progressDisplay } from '../output/progress.ts'
import { table } from '../output/table.ts'
import { age, now } from '../output/time.ts'
import { historyQuery, rollbackMutation, rolloutQuery, type Rollout, type StaticPodPayload } from '../queries.ts'
import { followRollout } from './rollout-run.ts'

interface Revision {
  revision: number
  action: string
  actor: string | null
  hash: string
  recordedAt: string
  manifest: string
}

interface PodHistory {
  namespace: string
  name: string
  hash: string
  revision: number
  history: Revision[]
}

interface PodFlags {
  node?: string
  namespace?: string
}

export function registerRollout(program: Command, ctx: Ctx): void {
  const rollout = program.command('rollout').description("A static pod's revisions and rolling back to one; a rollout's progress")

  rollout
    .command('history')
    .description("A static pod's revisions on its node, newest first")
    .argument('<resource>', 'pod (or pod/NAME)')
    .argument('[name]', 'the static pod')
    .option('--node <node>', 'the node (required)')
    .option('-n, --namespace <namespace>', "the pod's namespace, where its name is not unique on the node")
    .option('--revision <n>', "print that revision's manifest")
    .option('--limit <n>', 'at most this many revisions (default 20)')
    .option('-o, --output <format>', 'json or yaml')
    .action(async (resource: string, name: string | undefined, opts: PodFlags & { revision?: string; limit?: string; output?: string }) => {
      const ref = podRef(resource, name, opts)
      const format = outputFormat(opts.output, ['json', 'yaml'])
      const limit = opts.revision !== undefined ? 1000 : opts.limit !== undefined ? wholeNumber('--limit', opts.limit) : 20
      const pod = await history(ctx, ref, limit)
      if (opts.revision !== undefined) {
        const wanted = wholeNumber('--revision', opts.revision)
        const found = pod.history.find((h) => h.revision === wanted)
        if (!found) throw new CliError('NOT_FOUND', `${pod.name} on ${ref.node} has no revision ${wanted}`)
        if (format === 'json' || format === 'yaml') ctx.out(structured(format, found))
        else ctx.out(found.manifest.endsWith('\n') ? found.manifest : `${found.manifest}\n`)
        return
      }
      if (format === 'json' || format === 'yaml') {
        ctx.out(structured(format, pod))
        return
      }
      const at = now(ctx.io.env)
      ctx.out(
        table(
          ['revision', 'action', 'actor', 'hash', 'age', 'current'],
          pod.history.map((h) => [h.revision, h.action, h.actor ?? '(on the node)', h.hash.slice(0, 12), age(h.recordedAt, at), h.revision === pod.revision ? '*' : '']),
        ).replace(/ *<none>$/gm, ''),
      )
    })

  rollout
    .command('undo')
    .description('Write an earlier revision back (by default the one before the current manifest), as a new revision')
    .argument('<resource>', 'pod (or pod/NAME)')
    .argument('[name]', 'the static pod')
    .option('--node <node>', 'the node (required)')
    .option('-n, --namespace <namespace>', "the pod's namespace, where its name is not unique on the node")
    .option('--to-revision <n>', 'the revision to go back to')
    .option('--dry-run', 'show the diff; write nothing')
    .action(async (resource: string, name: string | undefined, opts: PodFlags & { toRevision?: string; dryRun?: boolean }) => {
      const ref = podRef(resource, name, opts)
      const pod = await history(ctx, ref, 1000)
      let revision: number
      if (opts.toRevision !== undefined) {
        revision = wholeNumber('--to-revision', opts.toRevision)
      } else {
        // The newest revision before the current one with other bytes (a restart back and forth is no step back).
        const previous = pod.history.find((h) => h.revision < pod.revision && h.hash !== pod.hash && h.action !== 'DELETE')
        if (!previous) throw new CliError('NOT_FOUND', `${pod.name} on ${ref.node} has no earlier revision with other content to go back to`)
        revision = previous.revision
      }
      const api = await ctx.api()
      const { rollbackStaticPod: p } = await api.request<{ rollbackStaticPod: StaticPodPayload }>(rollbackMutation, {
        input: { node: ref.node, namespace: pod.namespace, name: pod.name, revision, expectedHash: pod.hash, dryRun: opts.dryRun ?? false },
      })
      throwUserErrors(p.userErrors)
      if (opts.dryRun) {
        ctx.out(p.diff ? (p.diff.endsWith('\n') ? p.diff : `${p.diff}\n`) : `pod/${pod.name} on ${ref.node} is already revision ${revision}'s content\n`)
        return
      }
      ctx.out(`pod/${pod.name} on ${ref.node} rolled back to revision ${revision}${p.changed ? ` (now revision ${p.staticPod?.revision ?? '?'})` : ', unchanged'}\n`)
    })

  rollout
    .command('status')
    .description('Follow a rollout until it ends; exit 0 when it SUCCEEDED, 1 when it FAILED')
    .argument('<rollout-id>', 'as apply, patch and set print it')
    .option('--watch <bool>', 'false: print the state now and do not wait', 'true')
    .action(async (id: string, opts: { watch: string }) => {
      const api = await ctx.api()
      const display = progressDisplay(ctx.io.stdout, true)
      let last: Rollout | null
      try {
        if (opts.watch === 'false') {
          last = (await api.request<{ rollout: Rollout | null }>(rolloutQuery, { id })).rollout
          if (last) display.update(last)
        } else {
          last = await followRollout(api, id, (r) => display.update(r))
        }
      } finally {
        display.done()
      }
      if (!last) throw new CliError('NOT_FOUND', `rollout ${id} is not known to this service instance (it keeps running rollouts and the last 50 finished)`)
      if (last.state === 'FAILED') {
        const node = last.nodes.find((n) => n.status === 'FAILED' || n.status === 'ROLLED_BACK')
        throw new CliError('ROLLOUT_FAILED', `rollout ${id} FAILED${node ? ` on ${node.node}${node.error ? `: ${node.error.code}: ${node.error.message}` : ''}` : ''}`)
      }
    })
}

async function history(ctx: Ctx, ref: { node: string; namespace: string | null; name: string }, limit: number): Promise<PodHistory> {
  const api = await ctx.api()
  const { staticPod } = await api.request<{ staticPod: PodHistory | null }>(historyQuery, { ...ref, limit })
  if (!staticPod) throw new CliError('NOT_FOUND', `static pod "${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}" not found on node ${ref.node}`)
  return staticPod
}

function wholeNumber(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw usage(`${flag} ${value}: expected a whole number`)
  return Number(value)
}
