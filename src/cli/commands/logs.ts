// logs NAME --node NODE: a container's log read on the node (crictl logs, or
// the kubelet's own files), with the API server down; kubectl logs' flags.

import type { Command } from 'commander'
import { CliError, usage } from '../errors.ts'
import { podRef, type Ctx } from '../context.ts'
import { logsQuery } from '../queries.ts'
import { parseDuration } from '../output/time.ts'

interface LogsOptions {
  node?: string
  namespace?: string
  container?: string
  previous?: boolean
  tail?: string
  since?: string
  limitBytes?: string
  timestamps?: boolean
}

// A CRI log line as the service returns it starts with the runtime's RFC 3339 timestamp.
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d) /

export function registerLogs(program: Command, ctx: Ctx): void {
  program
    .command('logs')
    .description("Print a container's log, read on the node itself (operator role)")
    .argument('<name>', 'the static pod (or pod/NAME)')
    .option('--node <node>', 'the node the pod is on (required)')
    .option('-n, --namespace <namespace>', "the pod's namespace, where its name is not unique on the node")
    .option('-c, --container <container>', 'the container (may be left out when the pod has one)')
    .option('-p, --previous', 'the attempt before the current one (a crashed container)')
    .option('--tail <lines>', 'the last N lines (default 200, the service\'s own)')
    .option('--since <duration>', 'only lines newer than this, e.g. 10m, 1h')
    .option('--limit-bytes <bytes>', 'at most this many bytes')
    .option('--timestamps', "keep each line's timestamp")
    .action(async (name: string, opts: LogsOptions) => {
      const ref = podRef('pod', name.replace(/^(pods?|po)\//, ''), opts)
      const tail = opts.tail === undefined ? undefined : intArg('--tail', opts.tail)
      const since = opts.since === undefined ? undefined : parseDuration(opts.since)
      if (since === null) throw usage(`--since ${opts.since}: expected a duration such as 10m or 1h`)
      const limitBytes = opts.limitBytes === undefined ? undefined : intArg('--limit-bytes', opts.limitBytes)
      const api = await ctx.api()
      const { staticPod } = await api.request<{ staticPod: { logs: { container: string; lines: string[]; truncated: boolean; source: string } | null } | null }>(logsQuery, {
        ...ref,
        container: opts.container ?? null,
        previous: opts.previous ?? false,
        ...(tail === undefined || tail < 0 ? {} : { tail }),
        ...(since === undefined ? {} : { since }),
        ...(limitBytes === undefined ? {} : { limitBytes }),
      })
      if (!staticPod) throw new CliError('NOT_FOUND', `static pod "${ref.name}" not found on node ${ref.node}`)
      if (!staticPod.logs) throw new CliError('NOT_FOUND', `no log for ${opts.container ? `container ${opts.container} of ` : ''}${ref.name} on ${ref.node}${opts.previous ? ' (no previous attempt)' : ''}`)
      const lines = opts.timestamps ? staticPod.logs.lines : staticPod.logs.lines.map((l) => l.replace(TIMESTAMP, ''))
      ctx.out(lines.map((l) => `${l}\n`).join(''))
    })
}

function intArg(flag: string, value: string): number {
  if (!/^-?\d+$/.test(value)) throw usage(`${flag} ${value}: expected a whole number`)
  return Number(value)
}
