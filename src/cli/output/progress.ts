// A rollout as it progresses. On a terminal: one block, a line per node,
// redrawn in place (ANSI cursor movement) with a spinner while nodes are busy.
// Anywhere else (a pipe, a file, a CI log): a plain line for each change.

import type { Rollout, RolloutNode } from '../queries.ts'

export interface Progress {
  update(rollout: Rollout): void
  /** Leaves the last state on screen (a terminal) and stops redrawing. */
  done(): void
}

export interface ProgressStream {
  write(text: string): unknown
  isTTY?: boolean
  columns?: number
}

/** announceEnd: a plain line for the rollout's end state too (rollout status, which prints no results after it). */
export function progressDisplay(stream: ProgressStream, announceEnd = false): Progress {
  return stream.isTTY ? new TerminalProgress(stream) : new PlainProgress(stream, announceEnd)
}

const shortId = (id: string) => id.slice(0, 8)

function nodeState(n: RolloutNode): string {
  const what = n.phase === 'DONE' ? (n.status ?? 'DONE') : n.phase
  const why = n.error ? `${n.error.code}: ${n.error.message}` : n.message
  return why ? `${what}: ${why}` : what
}

class PlainProgress implements Progress {
  private readonly seen = new Map<string, string>()
  private messages = 0
  private state = ''

  constructor(
    private readonly stream: ProgressStream,
    private readonly announceEnd: boolean,
  ) {}

  update(rollout: Rollout): void {
    const id = shortId(rollout.id)
    const messages = (upTo = rollout.messages.length) => {
      for (const m of rollout.messages.slice(this.messages, upTo)) this.stream.write(`rollout ${id}: ${m}\n`)
      this.messages = Math.max(this.messages, upTo)
    }
    const nodes = () => {
      for (const n of rollout.nodes) {
        const line = nodeState(n)
        if (this.seen.get(n.node) === line || (n.phase === 'PENDING' && !this.seen.has(n.node) && !n.message)) continue
        this.seen.set(n.node, line)
        this.stream.write(`rollout ${id} node ${n.node}: ${line}\n`)
      }
    }
    // The rollout's own messages open and close it: "started" before its nodes' lines, "finished" (the last one) after.
    messages(rollout.state === 'RUNNING' ? rollout.messages.length : rollout.messages.length - 1)
    nodes()
    messages()
    if (this.announceEnd && rollout.state !== 'RUNNING' && this.state !== rollout.state) this.stream.write(`rollout ${id} ${rollout.state}\n`)
    this.state = rollout.state
  }

  done(): void {}
}

const SPINNER = ['|', '/', '-', '\\']
const MARK: Record<string, string> = { APPLIED: '+', UNCHANGED: '=', WOULD_APPLY: '~', FAILED: 'x', ROLLED_BACK: '<', SKIPPED: '-' }

class TerminalProgress implements Progress {
  private lines = 0
  private frame = 0
  private last: Rollout | null = null
  private readonly timer: NodeJS.Timeout

  constructor(private readonly stream: ProgressStream) {
    this.timer = setInterval(() => {
      this.frame++
      if (this.last) this.draw(this.last)
    }, 120)
    this.timer.unref()
  }

  update(rollout: Rollout): void {
    this.last = rollout
    this.draw(rollout)
  }

  private draw(rollout: Rollout): void {
    const width = Math.max(40, (this.stream.columns || 100) - 1)
    const done = rollout.nodes.filter((n) => n.phase === 'DONE').length
    const nameWidth = Math.max(...rollout.nodes.map((n) => n.node.length), 4)
    const head = `rollout ${shortId(rollout.id)} ${rollout.target} (${rollout.kind}, ${rollout.strategy}): ${rollout.state} ${done}/${rollout.nodes.length} nodes done`
    const rows = [
      head,
      ...rollout.nodes.map((n) => {
        const mark = n.phase === 'DONE' ? (MARK[n.status ?? ''] ?? ' ') : n.phase === 'PENDING' ? '.' : SPINNER[this.frame % SPINNER.length]
        return `  ${mark} ${n.node.padEnd(nameWidth)}  ${nodeState(n)}`
      }),
    ].map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l))
    let out = this.lines > 0 ? `\x1b[${this.lines}A` : ''
    for (const row of rows) out += `\r\x1b[2K${row}\n`
    // Fewer lines than last time (never, as nodes do not go away): clear what is left below.
    for (let i = rows.length; i < this.lines; i++) out += '\r\x1b[2K\n'
    this.lines = Math.max(rows.length, this.lines)
    this.stream.write(out)
  }

  done(): void {
    clearInterval(this.timer)
    if (this.last) {
      this.frame = 0
      this.draw(this.last)
    }
  }
}

/** A one-line spinner for a wait that has no rollout to show (edit --wait): on a terminal only. */
export function spinner(stream: ProgressStream, text: string): { stop(): void } {
  if (!stream.isTTY) return { stop() {} }
  let frame = 0
  const draw = () => stream.write(`\r\x1b[2K${SPINNER[frame++ % SPINNER.length]} ${text}`)
  draw()
  const timer = setInterval(draw, 120)
  timer.unref()
  return {
    stop() {
      clearInterval(timer)
      stream.write('\r\x1b[2K')
    },
  }
}
