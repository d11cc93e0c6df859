// Runs a rollout mutation (applyStaticPodToNodes, patchStaticPodOnNodes) and
// shows its progress while the mutation is in flight: the rollout is found
// among the active ones (rollouts(active: true), by its target, not there
// before this call) and followed through the rollout subscription, or, where
// the WebSocket cannot be had, by polling the rollout query. Progress is best
// effort and never changes the outcome, which is the mutation's payload.

import { setTimeout as sleep } from 'node:timers/promises'
import { CliError, throwUserErrors, userErrorText } from '../errors.ts'
import type { Api } from '../client.ts'
import type { Ctx, OutStream } from '../context.ts'
import { structured } from '../output/format.ts'
import { progressDisplay } from '../output/progress.ts'
import { activeRolloutsQuery, rolloutQuery, rolloutSubscription, type Rollout, type RolloutPayload } from '../queries.ts'

const DISCOVER_EVERY_MS = 250
const POLL_EVERY_MS = 500

export interface RolloutRequest {
  mutation: string
  field: 'applyStaticPodToNodes' | 'patchStaticPodOnNodes'
  input: Record<string, unknown> & { dryRun: boolean }
  /** The pod the rollout is about, to tell it among the active ones (namespace unknown: any). */
  target: { namespace: string | null; name: string } | null
  output: 'table' | 'json' | 'yaml'
}

export async function runRollout(ctx: Ctx, request: RolloutRequest): Promise<void> {
  const api = await ctx.api()
  const structuredOut = request.output !== 'table'
  // Progress goes where it does not mix with a document on stdout.
  const progressStream: OutStream = structuredOut ? ctx.io.stderr : ctx.io.stdout
  let payload: RolloutPayload
  if (request.input.dryRun || !request.target) {
    payload = (await api.request<Record<string, RolloutPayload>>(request.mutation, { input: request.input }))[request.field] as RolloutPayload
  } else {
    payload = await withProgress(api, request, progressStream)
  }
  if (structuredOut) {
    ctx.out(structured(request.output as 'json' | 'yaml', payload))
  }
  throwUserErrors(payload.userErrors)
  if (!structuredOut) printResults(ctx, payload, request.input.dryRun)
  const failed = payload.results.find((r) => r.status === 'FAILED' || r.status === 'ROLLED_BACK')
  if (failed) {
    const others = payload.results.filter((r) => r !== failed && (r.status === 'FAILED' || r.status === 'ROLLED_BACK')).map((r) => r.node)
    throw new CliError(
      failed.error?.code ?? 'ROLLOUT_FAILED',
      `${request.input.dryRun ? 'dry run' : `rollout ${payload.rolloutId ?? ''}`.trim()} failed on ${failed.node}${failed.status === 'ROLLED_BACK' ? ' (rolled back)' : ''}: ${failed.error ? userErrorText(failed.error) : failed.status}`,
      others.length > 0 ? [`also failed: ${others.join(', ')}`] : [],
    )
  }
}

function printResults(ctx: Ctx, payload: RolloutPayload, dryRun: boolean): void {
  let out = ''
  for (const r of payload.results) {
    if (dryRun) {
      out += `--- ${r.node}: ${r.status}${r.error ? ` ${userErrorText(r.error)}` : ''}\n`
      if (r.diff) out += r.diff.endsWith('\n') ? r.diff : `${r.diff}\n`
      continue
    }
    const detail = r.error ? `: ${userErrorText(r.error)}` : r.staticPod && r.status !== 'SKIPPED' ? ` (revision ${r.staticPod.revision})` : ''
    out += `${r.node}: ${r.status}${detail}\n`
  }
  if (!dryRun && payload.rolloutId) {
    const failed = payload.results.some((r) => r.status === 'FAILED' || r.status === 'ROLLED_BACK')
    out += `rollout ${payload.rolloutId} ${failed ? 'FAILED' : 'SUCCEEDED'}\n`
  }
  ctx.out(out)
}

async function withProgress(api: Api, request: RolloutRequest, stream: OutStream): Promise<RolloutPayload> {
  const before = new Set((await api.request<{ rollouts: Array<{ id: string }> }>(activeRolloutsQuery)).rollouts.map((r) => r.id))
  const stop = new AbortController()
  const display = progressDisplay(stream)
  let followed: string | null = null
  const wanted = request.target
  const matches = (target: string) => {
    const [ns, name] = target.split('/')
    return wanted !== null && name === wanted.name && (wanted.namespace === null || ns === wanted.namespace)
  }
  const watcher = (async () => {
    while (!stop.signal.aborted) {
      const { rollouts } = await api.request<{ rollouts: Array<{ id: string; target: string }> }>(activeRolloutsQuery)
      const mine = rollouts.find((r) => !before.has(r.id) && matches(r.target))
      if (mine) {
        followed = mine.id
        await followRollout(api, mine.id, (r) => display.update(r), stop.signal)
        return
      }
      await sleep(DISCOVER_EVERY_MS, undefined, { signal: stop.signal }).catch(() => undefined)
    }
  })().catch(() => undefined)

  // Ctrl-C ends this client, not the rollout: the service carries on with it.
  const onInterrupt = () => {
    display.done()
    stream.write(
      `\ninterrupted: the rollout goes on in the service${followed ? `; follow it with: staticpodctl rollout status ${followed}` : ' (see: staticpodctl get rollouts --active)'}\n`,
    )
    process.exit(130)
  }
  process.once('SIGINT', onInterrupt)
  try {
    const data = await api.request<Record<string, RolloutPayload>>(request.mutation, { input: request.input })
    const payload = data[request.field] as RolloutPayload
    stop.abort()
    await watcher
    // The last state of the rollout the service says it was (kept once finished); plain lines only go on
    // from a rollout that was followed, since the results say the rest.
    if (payload.rolloutId && (followed !== null || stream.isTTY)) {
      const last = await api.request<{ rollout: Rollout | null }>(rolloutQuery, { id: payload.rolloutId }).catch(() => ({ rollout: null }))
      if (last.rollout) display.update(last.rollout)
    }
    return payload
  } finally {
    process.removeListener('SIGINT', onInterrupt)
    stop.abort()
    display.done()
  }
}

/**
 * Follows one rollout until it ends (or signal aborts): the subscription, else
 * polling. Returns its last state; NOT_FOUND when the service does not know it.
 */
export async function followRollout(api: Api, id: string, onState: (rollout: Rollout) => void, signal?: AbortSignal): Promise<Rollout | null> {
  let last: Rollout | null = null
  const seen = (r: Rollout) => {
    last = r
    onState(r)
  }
  try {
    await api.subscribe<{ rollout: Rollout }>(rolloutSubscription, { id }, (d) => seen(d.rollout), signal)
    return last
  } catch (err) {
    // Only a connection that could not be had (or was lost) falls back to polling; what the service refused stays refused.
    if (!(err instanceof CliError) || !['WEBSOCKET_UNAVAILABLE', 'SUBSCRIPTION_CLOSED'].includes(err.code)) throw err
  }
  while (!signal?.aborted) {
    const { rollout } = await api.request<{ rollout: Rollout | null }>(rolloutQuery, { id })
    if (!rollout) {
      if (last) return last
      throw new CliError('NOT_FOUND', `rollout ${id} is not known to this service instance`)
    }
    seen(rollout)
    if (rollout.state !== 'RUNNING') return rollout
    await sleep(POLL_EVERY_MS, undefined, { signal }).catch(() => undefined)
  }
  return last
}
