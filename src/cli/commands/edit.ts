// edit pod NAME --node NODE: the manifest in $VISUAL / $EDITOR (vi), written
// back only if the node's file is still the one that was opened
// (expectedHash). When it is not (CONFLICT), or the service refuses the edit,
// the edited file stays where it is and its path is printed, so nothing typed
// is lost.

import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Command } from 'commander'
import { CliError, throwUserErrors, usage } from '../errors.ts'
import { podRef, type Ctx } from '../context.ts'
import { spinner } from '../output/progress.ts'
import { parseDuration } from '../output/time.ts'
import { manifestQuery, updateMutation, type StaticPodPayload } from '../queries.ts'

interface EditOptions {
  node?: string
  namespace?: string
  wait?: boolean
  autoRollback?: boolean
  timeout?: string
}

export function registerEdit(program: Command, ctx: Ctx): void {
  program
    .command('edit')
    .description("Edit a static pod's manifest in $EDITOR; written back only if nobody changed it meanwhile")
    .argument('<resource>', 'pod (or pod/NAME)')
    .argument('[name]', 'the static pod')
    .option('--node <node>', 'the node the pod is on (required)')
    .option('-n, --namespace <namespace>', "the pod's namespace, where its name is not unique on the node")
    .option('--wait', 'wait until the new pod runs ready on the node')
    .option('--auto-rollback', 'with --wait: write the previous manifest back if the new pod is not ready in time')
    .option('--timeout <duration>', 'with --wait: how long to wait (default 120s)')
    .action(async (resource: string, name: string | undefined, opts: EditOptions) => {
      const ref = podRef(resource, name, opts)
      if (opts.autoRollback && !opts.wait) throw usage('--auto-rollback needs --wait')
      const timeout = opts.timeout === undefined ? 120 : parseDuration(opts.timeout)
      if (timeout === null) throw usage(`--timeout ${opts.timeout}: expected a duration such as 90s or 5m`)
      const api = await ctx.api()
      const { staticPod: pod } = await api.request<{ staticPod: { namespace: string; name: string; fileName: string; hash: string; revision: number; manifest: string } | null }>(
        manifestQuery,
        ref,
      )
      if (!pod) throw new CliError('NOT_FOUND', `static pod "${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}" not found on node ${ref.node}`)

      const dir = await mkdtemp(join(tmpdir(), 'staticpodctl-edit-'))
      const file = join(dir, `${ref.node}-${pod.namespace}-${pod.name}${pod.fileName.endsWith('.json') ? '.json' : '.yaml'}`)
      await writeFile(file, pod.manifest, { mode: 0o600 })
      const kept = `your edit is kept in ${file}`

      await runEditor(ctx, file)
      const edited = await readFile(file, 'utf8')
      if (edited === pod.manifest || edited.trim() === '') {
        await rm(dir, { recursive: true, force: true })
        ctx.err(edited === pod.manifest ? 'Edit cancelled, no changes made.\n' : 'Edit cancelled, the saved file was empty.\n')
        return
      }

      const wait = opts.wait ? spinner(ctx.io.stderr, `waiting for ${pod.name} on ${ref.node} to run ready`) : null
      let payload: StaticPodPayload
      try {
        ;({ updateStaticPod: payload } = await api.request<{ updateStaticPod: StaticPodPayload }>(updateMutation, {
          input: {
            node: ref.node,
            namespace: pod.namespace,
            name: pod.name,
            manifest: edited,
            expectedHash: pod.hash,
            waitForReady: opts.wait ?? false,
            readyTimeoutSeconds: timeout,
            autoRollback: opts.autoRollback ?? false,
          },
        }))
      } catch (err) {
        throw keep(err, kept)
      } finally {
        wait?.stop()
      }
      if (payload.rolledBack) {
        const first = payload.userErrors[0]
        throw new CliError(first?.code ?? 'TIMEOUT', `${first?.message ?? 'the new pod did not run ready'}; the previous manifest was written back`, [kept])
      }
      try {
        throwUserErrors(payload.userErrors)
      } catch (err) {
        throw keep(err, kept)
      }
      await rm(dir, { recursive: true, force: true })
      ctx.out(`pod/${pod.name} edited on ${ref.node} (revision ${payload.staticPod?.revision ?? '?'}${payload.changed ? '' : ', unchanged'})\n`)
    })
}

function keep(err: unknown, kept: string): unknown {
  if (err instanceof CliError) {
    const hint = err.code === 'CONFLICT' ? ['the manifest on the node changed since it was opened; run edit again, and bring your change from that file'] : []
    return new CliError(err.code, err.message, [...err.details, kept, ...hint])
  }
  return err
}

/** $VISUAL, $EDITOR or vi, through the shell (EDITOR may carry arguments, e.g. "code --wait"), on the terminal. */
function runEditor(ctx: Ctx, file: string): Promise<void> {
  const editor = ctx.io.env.VISUAL || ctx.io.env.EDITOR || 'vi'
  // The editor needs no token: it is not handed on.
  const env = Object.fromEntries(Object.entries(ctx.io.env).filter(([k]) => k !== 'STATICPOD_TOKEN'))
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', `${editor} "$1"`, 'staticpodctl-editor', file], { stdio: 'inherit', env })
    child.once('error', (err) => reject(new CliError('EDITOR_FAILED', `cannot run the editor "${editor}": ${err.message}`, [`the manifest is in ${file}`])))
    child.once('exit', (code, signal) => {
      if (code === 0) resolve()
      else reject(new CliError('EDITOR_FAILED', `the editor "${editor}" exited ${signal ?? code}; nothing was written`, [`the manifest is in ${file}`]))
    })
  })
}
