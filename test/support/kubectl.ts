// The real kubectl (Debian's kubernetes-client; .ci/run installs it), run
// asynchronously: the API server stand-in it talks to answers from the test's
// own process.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** kubectl --kubeconfig <kubeconfig> <args>; its stdout, or an error with its stderr. */
export async function kubectl(kubeconfig: string, ...args: string[]): Promise<string> {
  try {
    return (await run('kubectl', ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', timeout: 30_000 })).stdout
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    if (e.code === 'ENOENT') assert.fail('kubectl is not installed: these tests check the API server stand-in with it (apt-get install kubernetes-client)')
    throw new Error(`kubectl ${args.join(' ')} failed: ${e.stderr ?? e.message}`, { cause: err })
  }
}
