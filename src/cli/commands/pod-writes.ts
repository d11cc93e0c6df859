// delete pod NAME --node NODE, restart pod NAME --node NODE.

import type { Command } from 'commander'
import { throwUserErrors } from '../errors.ts'
import { podRef, type Ctx } from '../context.ts'
import { deleteMutation, restartMutation, type StaticPodPayload, type UserErrorOut } from '../queries.ts'

interface Flags {
  node?: string
  namespace?: string
  dryRun?: boolean
  ifHash?: string
}

const podCommand = (program: Command, name: string, description: string) =>
  program
    .command(name)
    .description(description)
    .argument('<resource>', 'pod (or pod/NAME)')
    .argument('[name]', 'the static pod')
    .option('--node <node>', 'the node (required)')
    .option('-n, --namespace <namespace>', "the pod's namespace, where its name is not unique on the node")
    .option('--if-hash <hash>', "only if the node's file still has this hash (else CONFLICT, exit 4)")
    .option('--dry-run', 'say what would happen; change nothing')

export function registerPodWrites(program: Command, ctx: Ctx): void {
  podCommand(program, 'delete', "Remove a static pod's manifest from its node (the kubelet then stops the pod; a backup is kept)").action(
    async (resource: string, name: string | undefined, opts: Flags) => {
      const ref = podRef(resource, name, opts)
      const api = await ctx.api()
      const { deleteStaticPod: p } = await api.request<{ deleteStaticPod: { deleted: boolean; dryRun: boolean; userErrors: UserErrorOut[] } }>(deleteMutation, {
        input: { ...ref, expectedHash: opts.ifHash ?? null, dryRun: opts.dryRun ?? false },
      })
      throwUserErrors(p.userErrors)
      ctx.out(`pod/${ref.name} ${p.dryRun ? 'would be deleted' : 'deleted'} on ${ref.node}${p.dryRun ? ' (dry run)' : ''}\n`)
    },
  )

  podCommand(program, 'restart', 'Make the kubelet recreate a static pod (sets the annotation staticpod-api/restartedAt; nothing else changes)').action(
    async (resource: string, name: string | undefined, opts: Flags) => {
      const ref = podRef(resource, name, opts)
      const api = await ctx.api()
      const { restartStaticPod: p } = await api.request<{ restartStaticPod: StaticPodPayload }>(restartMutation, {
        input: { ...ref, expectedHash: opts.ifHash ?? null, dryRun: opts.dryRun ?? false },
      })
      throwUserErrors(p.userErrors)
      if (p.dryRun) ctx.out(p.diff ?? '')
      else ctx.out(`pod/${ref.name} restarted on ${ref.node} (revision ${p.staticPod?.revision ?? '?'})\n`)
    },
  )
}
