#!/usr/bin/env node
// A stand-in for crictl, because no container runtime can run in the test
// environment. It answers the two commands the agents run, with JSON shaped
// like real crictl output (protobuf JSON: `pods -o json` prints {"items": [...]},
// `ps -a -o json` prints {"containers": [...]}, int64 timestamps as nanosecond
// strings, indented by two spaces), taken from the file named by
// FAKE_CRICTL_STATE: { "sandboxes": [...], "containers": [...],
// "stderr"?: string, "exitCode"?: number, "delayMs"?: number }.
// Each invocation's argv is appended, one JSON line each, to FAKE_CRICTL_LOG if set.
import { appendFileSync, readFileSync } from 'node:fs'

const args = process.argv.slice(2)
if (process.env.FAKE_CRICTL_LOG) appendFileSync(process.env.FAKE_CRICTL_LOG, `${JSON.stringify(args)}\n`)

const statePath = process.env.FAKE_CRICTL_STATE
if (!statePath) {
  process.stderr.write('fake crictl: FAKE_CRICTL_STATE is not set\n')
  process.exit(2)
}
const state = JSON.parse(readFileSync(statePath, 'utf8'))

function finish(output) {
  if (state.exitCode) {
    process.stderr.write(state.stderr ?? 'time="2024-06-10T06:13:20Z" level=fatal msg="failed"\n')
    process.exit(state.exitCode)
  }
  process.stdout.write(`${JSON.stringify(output, null, 2)}\n`)
}

const command = args.join(' ')
const run = () => {
  if (command === 'pods -o json') return finish({ items: state.sandboxes ?? [] })
  if (command === 'ps -a -o json') return finish({ containers: state.containers ?? [] })
  process.stderr.write(`fake crictl: unsupported arguments: ${command}\n`)
  process.exit(1)
}
if (state.delayMs) setTimeout(run, state.delayMs)
else run()
