// events [--watch]: what the service saw change on the nodes, oldest first as
// kubectl prints events; --watch then streams new ones from the events
// subscription (resuming after the last id seen), or, where no WebSocket gets
// through, by polling the events query.
// audit: the service's audit trail of every mutation.

import { setTimeout as sleep } from 'node:timers/promises'
import type { Command } from 'commander'
import { CliError, usage } from '../errors.ts'
import type { Api } from '../client.ts'
import type { Ctx } from '../context.ts'
import { list, outputFormat, structured, yaml, type OutputFormat } from '../output/format.ts'
import { table, type Cell } from '../output/table.ts'
import { age, now } from '../output/time.ts'
import { auditQuery, eventsQuery, eventsSubscription, type AuditOut, type EventOut } from '../queries.ts'

const EVENT_TYPES = [
  'STATIC_POD_ADDED',
  'STATIC_POD_CHANGED',
  'STATIC_POD_REMOVED',
  'POD_READY',
  'POD_NOT_READY',
  'CRASH_LOOP',
  'FINDING_ADDED',
  'FINDING_RESOLVED',
  'NODE_UNREACHABLE',
  'NODE_REACHABLE',
  'CERTIFICATE_EXPIRES_SOON',
  'ROLLOUT_STARTED',
  'ROLLOUT_FINISHED',
]

const POLL_EVERY_MS = 2000
const collect = (value: string, previous: string[]) => [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)]

interface EventsFlags {
  watch?: boolean
  node?: string
  type: string[]
  limit?: string
  output?: string
}

export function registerEvents(program: Command, ctx: Ctx): void {
  program
    .command('events')
    .description('What changed on the nodes (manifests, readiness, crash loops, findings, reachability, certificates, rollouts), oldest first')
    .option('-w, --watch', 'then print new events as they happen, until interrupted')
    .option('--node <node>', 'events of this node only')
    .option('--type <type>', `only these types (repeat, or comma-separated): ${EVENT_TYPES.join(', ')}`, collect, [])
    .option('--limit <n>', 'the newest N stored events (default 50)')
    .option('-o, --output <format>', 'wide, json or yaml (with --watch: one JSON object per line, or YAML documents)')
    .action(async (opts: EventsFlags) => {
      const format = outputFormat(opts.output, ['wide', 'json', 'yaml'])
      const types = opts.type.map((t) => t.toUpperCase().replace(/-/g, '_'))
      for (const t of types) if (!EVENT_TYPES.includes(t)) throw usage(`--type ${t}: expected one of ${EVENT_TYPES.join(', ')}`)
      const limit = opts.limit === undefined ? 50 : Number(opts.limit)
      if (!Number.isInteger(limit) || limit < 0) throw usage(`--limit ${opts.limit}: expected a whole number`)
      const api = await ctx.api()
      const vars = { node: opts.node ?? null, types: types.length ? types : null }
      const { events } = await api.request<{ events: EventOut[] }>(eventsQuery, { ...vars, limit: Math.max(limit, 1) })
      const shown = events.slice(0, limit)
      const printer = new EventPrinter(ctx, format, !!opts.watch)
      printer.first(shown)
      if (!opts.watch) return
      await watch(ctx, api, vars, events[0]?.id ?? '0', printer)
    })

  program
    .command('audit')
    .description('The audit trail: every mutation (dry runs, failures and denials too), oldest first')
    .option('--node <node>', 'events of this node only')
    .option('--limit <n>', 'the newest N (default 50)')
    .option('--before <time>', 'older than this RFC 3339 time (to page back)')
    .option('-o, --output <format>', 'wide, json or yaml')
    .action(async (opts: { node?: string; limit?: string; before?: string; output?: string }) => {
      const format = outputFormat(opts.output, ['wide', 'json', 'yaml'])
      const limit = opts.limit === undefined ? 50 : Number(opts.limit)
      if (!Number.isInteger(limit) || limit < 1) throw usage(`--limit ${opts.limit}: expected a whole number of at least 1`)
      const api = await ctx.api()
      const { auditEvents } = await api.request<{ auditEvents: AuditOut[] }>(auditQuery, { node: opts.node ?? null, limit, before: opts.before ?? null })
      if (format === 'json' || format === 'yaml') {
        ctx.out(structured(format, list('AuditEventList', auditEvents)))
        return
      }
      if (auditEvents.length === 0) {
        ctx.err('No audit events found.\n')
        return
      }
      const wide = format === 'wide'
      ctx.out(
        table(
          ['time', 'actor', 'action', 'node', 'target', 'result', ...(wide ? ['dry run', 'from', 'to', 'message'] : [])],
          [...auditEvents]
            .reverse()
            .map((a): Cell[] => [
              a.at,
              a.actor,
              `${a.action}${a.dryRun && !wide ? ' (dry run)' : ''}`,
              a.node,
              a.target,
              a.result,
              ...(wide ? [a.dryRun, a.fromHash?.slice(0, 12), a.toHash?.slice(0, 12), a.message] : []),
            ]),
        ),
      )
    })
}

class EventPrinter {
  private widths: number[] = []
  private readonly headers: string[]

  constructor(
    private readonly ctx: Ctx,
    private readonly format: OutputFormat,
    private readonly watching: boolean,
  ) {
    this.headers = format === 'wide' ? ['age', 'type', 'node', 'object', 'id', 'actor', 'time', 'message'] : ['age', 'type', 'node', 'object', 'message']
  }

  private row(e: EventOut, at: number): Cell[] {
    const object = e.name ? `pod/${e.namespace ? `${e.namespace}/` : ''}${e.name}` : `node/${e.node}`
    return this.format === 'wide' ? [age(e.at, at), e.type, e.node, object, e.id, e.actor, e.at, e.message] : [age(e.at, at), e.type, e.node, object, e.message]
  }

  /** The stored events (newest first, as the service answers). */
  first(events: EventOut[]): void {
    const oldestFirst = [...events].reverse()
    if (this.format === 'json' || this.format === 'yaml') {
      if (!this.watching) this.ctx.out(structured(this.format, list('EventList', events)))
      else for (const e of oldestFirst) this.next(e)
      return
    }
    if (events.length === 0 && !this.watching) {
      this.ctx.err('No events found.\n')
      return
    }
    const at = now(this.ctx.io.env)
    const text = table(this.headers, oldestFirst.map((e) => this.row(e, at)))
    // Later rows (--watch) are aligned on the header's columns, widened for the usual names.
    const header = text.split('\n')[0] as string
    const starts = this.headers.map((h) => header.indexOf(h.toUpperCase()))
    this.widths = starts.slice(1).map((s, i) => Math.max(s - (starts[i] as number), i === 1 ? 27 : i === 2 || i === 3 ? 15 : 6))
    if (this.watching) {
      const minWidths = this.widths
      this.ctx.out(`${this.headers.map((h, i) => (i < minWidths.length ? h.toUpperCase().padEnd(minWidths[i] as number) : h.toUpperCase())).join('')}\n`)
      for (const e of oldestFirst) this.next(e)
    } else {
      this.ctx.out(text)
    }
  }

  next(e: EventOut): void {
    if (this.format === 'json') return void this.ctx.out(`${JSON.stringify(e)}\n`)
    if (this.format === 'yaml') return void this.ctx.out(`---\n${yaml(e)}`)
    const cells = this.row(e, now(this.ctx.io.env)).map((c) => (c === null || c === undefined || c === '' ? '<none>' : String(c).replace(/[\r\n\t]+/g, ' ')))
    this.ctx.out(`${cells.map((c, i) => (i < this.widths.length ? c.padEnd((this.widths[i] as number) - 1) + ' ' : c)).join('')}\n`)
  }
}

async function watch(ctx: Ctx, api: Api, vars: { node: string | null; types: string[] | null }, after: string, printer: EventPrinter): Promise<void> {
  let last = after
  const print = (e: EventOut) => {
    if (BigInt(e.id) <= BigInt(last)) return
    last = e.id
    printer.next(e)
  }
  for (let attempt = 0; ; attempt++) {
    try {
      await api.subscribe<{ events: EventOut }>(eventsSubscription, { nodes: vars.node ? [vars.node] : null, types: vars.types, after: last }, (d) => {
        attempt = 0
        print(d.events)
      })
      return
    } catch (err) {
      if (!(err instanceof CliError)) throw err
      if (err.code === 'BUSY') continue // fell behind: resume after the last one printed
      if (err.code !== 'WEBSOCKET_UNAVAILABLE' && err.code !== 'SUBSCRIPTION_CLOSED') throw err
      // A connection that was had and lost: subscribe again (after the last id printed). Never had: poll instead.
      if (err.code === 'SUBSCRIPTION_CLOSED' || (attempt > 0 && attempt < 8)) {
        await sleep(Math.min(1000 * 2 ** attempt, 10_000))
        continue
      }
      ctx.err(`warning: no subscription (${err.message}); polling the events query every ${POLL_EVERY_MS / 1000}s\n`)
      break
    }
  }
  for (;;) {
    try {
      const { events } = await api.request<{ events: EventOut[] }>(eventsQuery, { ...vars, limit: 100 })
      for (const e of [...events].reverse()) print(e)
    } catch (err) {
      if (!(err instanceof CliError) || err.exitCode === 5) throw err
      ctx.err(`warning: ${err.code}: ${err.message}\n`)
    }
    await sleep(POLL_EVERY_MS)
  }
}
