// The observer: the long-running server reads every node on its own, every
// OBSERVE_INTERVAL_SECONDS, so that what changes on a node (a hand edit, a
// crash loop, the node going away) becomes an event without anyone asking.
// A round reads each node live through the same NodeStateService a query uses
// (which stores the observation and its events, once across instances), and
// checks the certificates the pods name through the diagnosis service.
//
// Rounds never overlap: the next one starts an interval after this one
// started, or at once when this one took longer. A little jitter keeps
// several instances on one store from reading every node at the same moment.

import type { Logger } from 'pino'
import { mapWithConcurrency } from '../concurrency.ts'
import { errorText } from '../errors.ts'
import { certificateEvents } from '../events/derive.ts'
import type { Actor } from './actor.ts'
import { DiagnosisReads, type DiagnosisService } from './diagnosis.ts'
import type { EventService } from './events.ts'
import type { NodeState, NodeStateService } from './node-state.ts'
import type { NodeService } from './nodes.ts'
import type { StaticPodService } from './static-pods.ts'

/** The observer reads every node; it changes nothing, and its reads are not audited as anyone's. */
const OBSERVER: Actor = { name: 'observer', role: 'viewer', nodes: null }
/** Certificates change rarely: a pod's are read again after this long, or when its manifest changes. */
const CERTIFICATE_RECHECK_MS = 3600_000
/** Expired events are pruned at most this often. */
const PRUNE_EVERY_MS = 3600_000
/** ± this fraction of the interval. */
const JITTER = 0.1

export interface ObserverOptions {
  nodes: NodeService
  nodeState: NodeStateService
  staticPods: StaticPodService
  diagnosis: DiagnosisService
  events: EventService
  clock: () => Date
  log: Logger
  /** OBSERVE_INTERVAL_SECONDS; 0: start() does nothing (a round can still be run, as Lambda's schedule does). */
  intervalSeconds: number
  /** OBSERVE_CONCURRENCY: nodes read at once. */
  concurrency: number
  /** CERT_EXPIRY_WARNING_DAYS. */
  certWarnDays: number
  /** Math.random, or a fixed sequence in tests. */
  random?: () => number
}

export interface RoundResult {
  nodes: number
  /** Nodes read live just now. */
  observed: number
  /** Nodes that could not be read (their failure is stored on them too). */
  failed: Array<{ node: string; code: string; message: string }>
  ms: number
}

export class Observer {
  private timer: NodeJS.Timeout | null = null
  private running: Promise<RoundResult> | null = null
  private stopped = false
  /** When each pod's certificates were last read, and the manifest hash they were read for (by node/namespace/name). */
  private readonly certificatesChecked = new Map<string, { at: number; hash: string }>()
  private lastPrune = 0

  constructor(private readonly o: ObserverOptions) {}

  /** Starts the rounds (the long-running server); the first comes after a short, jittered delay. */
  start(): void {
    if (this.o.intervalSeconds <= 0 || this.timer !== null) return
    this.stopped = false
    this.schedule(Math.min(5_000, this.o.intervalSeconds * 1000) * this.random())
  }

  /** Stops the rounds and waits for the one in progress. */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    await this.running?.catch(() => undefined)
  }

  /** One round over every node (a round already running is shared, not doubled). */
  round(): Promise<RoundResult> {
    this.running ??= this.observeAll().finally(() => {
      this.running = null
    })
    return this.running
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      const started = Date.now()
      this.round()
        .catch((err: unknown) => {
          this.o.log.warn({ err: errorText(err) }, 'observer: the round failed')
        })
        .finally(() => {
          if (this.stopped) return
          const interval = this.o.intervalSeconds * 1000 * (1 + JITTER * (2 * this.random() - 1))
          this.schedule(Math.max(0, started + interval - Date.now()))
        })
    }, delayMs)
    this.timer.unref()
  }

  private async observeAll(): Promise<RoundResult> {
    const started = performance.now()
    const nodes = await this.o.nodes.list(OBSERVER)
    const result: RoundResult = { nodes: nodes.length, observed: 0, failed: [], ms: 0 }
    await mapWithConcurrency(nodes, this.o.concurrency, async (node) => {
      if (this.stopped) return
      const { states, failures } = await this.o.nodeState.statesOf([node], 0)
      result.failed.push(...failures.map((f) => ({ node: f.node, code: f.error.code, message: f.error.message })))
      const state = states[0]
      if (state && !state.stale) {
        result.observed++
        await this.checkCertificates(state)
      }
    })
    const listed = new Set(nodes.map((n) => n.name))
    for (const key of this.certificatesChecked.keys()) if (!listed.has(key.slice(0, key.indexOf('/')))) this.certificatesChecked.delete(key)
    await this.pruneNow()
    result.ms = Math.round(performance.now() - started)
    this.o.log.debug({ nodes: nodes.length, failed: result.failed.length, ms: result.ms }, 'observer: round done')
    return result
  }

  /**
   * CERTIFICATE_EXPIRES_SOON for the certificates the node's pods name, read
   * when the pod is new or changed or an hour after the last read; each file's
   * expiry is announced once (the event's onceKey), by whichever instance sees it first.
   */
  private async checkCertificates(state: NodeState): Promise<void> {
    const now = this.o.clock()
    const reads = new DiagnosisReads()
    for (const view of this.o.staticPods.viewsOf(state)) {
      const key = `${view.nodeName}/${view.namespace}/${view.name}`
      const last = this.certificatesChecked.get(key)
      if (last && last.hash === view.hash && now.getTime() - last.at < CERTIFICATE_RECHECK_MS) continue
      try {
        const certificates = await this.o.diagnosis.certificates(view, reads)
        await this.o.events.append(certificateEvents(view.nodeName, view, certificates, this.o.certWarnDays, now.toISOString()))
        this.certificatesChecked.set(key, { at: now.getTime(), hash: view.hash })
      } catch (err) {
        this.o.log.warn({ node: view.nodeName, pod: `${view.namespace}/${view.name}`, err: errorText(err) }, 'observer: reading certificates failed')
      }
    }
  }

  private async pruneNow(): Promise<void> {
    const now = Date.now()
    if (now - this.lastPrune < PRUNE_EVERY_MS) return
    this.lastPrune = now
    const removed = await this.o.events.prune()
    if (removed > 0) this.o.log.info({ removed }, 'observer: forgot events past EVENT_RETENTION_DAYS')
  }

  private random(): number {
    return (this.o.random ?? Math.random)()
  }
}
