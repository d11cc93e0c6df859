// Runs test/support scripts in a child node process (through tsx) and waits
// for the lines they print, with every wait bounded and the child killed by
// pid when the test ends.
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'

const repoRoot = fileURLToPath(new URL('../..', import.meta.url))

export interface RunningChild {
  process: ChildProcess
  pid: number
  /** Resolves with the first stdout line starting with prefix; rejects on exit or after timeoutMs. */
  waitForLine(prefix: string, timeoutMs: number): Promise<string>
  /** SIGKILL, then wait until the kernel has reaped it. */
  kill9(): Promise<void>
}

export function spawnTsChild(t: TestContext, script: string, args: string[]): RunningChild {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  if (child.pid === undefined) throw new Error(`could not start ${script}`)
  const pid = child.pid
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))

  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
      await exited
    }
  })

  return {
    process: child,
    pid,
    waitForLine(prefix, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const line = stdout.split('\n').find((l) => l.startsWith(prefix))
          if (line === undefined) return false
          cleanup()
          resolve(line)
          return true
        }
        const onExit = (): void => {
          cleanup()
          reject(new Error(`child exited (${child.exitCode ?? child.signalCode}) before printing ${prefix}; stderr:\n${stderr}`))
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(new Error(`child printed no ${prefix} within ${timeoutMs} ms; stderr:\n${stderr}`))
        }, timeoutMs)
        const cleanup = (): void => {
          clearTimeout(timer)
          child.stdout.off('data', check)
          child.off('exit', onExit)
        }
        if (check()) return
        child.stdout.on('data', check)
        child.once('exit', onExit)
      })
    },
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(pid, 'SIGKILL')
        await exited
      }
    },
  }
}
