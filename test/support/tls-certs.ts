// Certificates made with the real openssl, in a temp directory: a CA of the
// test's own and a server certificate it signed for 127.0.0.1, as a cluster's
// CA signs its API server's (kubeadm: /etc/kubernetes/pki/ca.crt). kubectl
// (Go) and Node both verify the chain, the CA's basicConstraints and
// keyUsage, and the server's subjectAltName, so each is set as a real one is.

import { execFile } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { makeTempDir } from '../helper.ts'

const run = promisify(execFile)

export interface TestCa {
  /** The CA certificate (PEM). */
  ca: string
  /** A server certificate for 127.0.0.1 signed by the CA, and its key (PEM). */
  cert: string
  key: string
}

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 30_000 })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    if (e.code === 'ENOENT') throw new Error('openssl is not installed: these tests make their certificates with it (apt-get install openssl)', { cause: err })
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr ?? e.message}`, { cause: err })
  }
}

/** A fresh CA and a server certificate it signed; nothing is left on disk. */
export async function makeTestCa(name = 'staticpod-api-test-ca'): Promise<TestCa> {
  const dir = await makeTempDir('staticpod-api-tls-')
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    await openssl(dir, 'req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    await openssl(dir, 'req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=kube-apiserver')
    await writeFile(
      join(dir, 'server.ext'),
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n',
    )
    await openssl(dir, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext')
    const [ca, cert, key] = await Promise.all(['ca.crt', 'server.crt', 'server.key'].map((f) => readFile(join(dir, f), 'utf8')))
    return { ca: ca as string, cert: cert as string, key: key as string }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
