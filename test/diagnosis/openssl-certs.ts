// Certificates with chosen validity dates, made by the real openssl in a temp
// directory: a CA of the test's own and certificates it signed, expired,
// expiring or valid, as kubeadm's /etc/kubernetes/pki holds them.
//
// Dates in the past need more than `req -x509 -days`: openssl before 3.4 has
// no -not_before/-not_after, `x509 -req -days -1` makes a certificate whose
// notBefore is after its notAfter, and faketime is not installed here. `openssl
// ca` takes -startdate/-enddate in every version (OpenSSL 3.0 here), so every
// certificate (the CA too, with -selfsign) is issued by it from a minimal CA
// configuration. -preserveDN keeps the subject's RDNs in the order given.

import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface MadeCertificate {
  /** The certificate (PEM). */
  pem: string
  /** Its private key (PEM, "-----BEGIN PRIVATE KEY-----"). */
  key: string
  /** Its validity as openssl wrote it (whole seconds). */
  notBefore: Date
  notAfter: Date
}

export interface CertificateSpec {
  /** As openssl -subj takes it: "/O=system:masters/CN=kubernetes-admin". */
  subject: string
  notBefore: Date
  notAfter: Date
}

const CA_CONFIG = `[ca]
default_ca = test
[test]
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
default_md = sha256
policy = any
unique_subject = no
email_in_dn = no
[any]
organizationName = optional
commonName = supplied
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
`

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 30_000 })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    if (e.code === 'ENOENT') throw new Error('openssl is not installed: these tests make their certificates with it (apt-get install openssl)', { cause: err })
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr ?? e.message}`, { cause: err })
  }
}

/** openssl ca's date form (GeneralizedTime; openssl writes UTCTime before 2050). */
function asn1Time(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace(/[-:T]/g, '')}Z`
}

/** To whole seconds, as a certificate holds it. */
function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000)
}

/**
 * A CA (subject /CN=<caName>) and, signed by it, one certificate per spec;
 * nothing is left on disk.
 */
export async function makeCertificates<K extends string>(
  ca: CertificateSpec,
  specs: Record<K, CertificateSpec>,
): Promise<{ ca: MadeCertificate; certs: Record<K, MadeCertificate> }> {
  const dir = await mkdtemp(join(tmpdir(), 'staticpod-api-certs-'))
  try {
    await mkdir(join(dir, 'newcerts'))
    await writeFile(join(dir, 'index.txt'), '')
    await writeFile(join(dir, 'ca.cnf'), CA_CONFIG)
    const issue = async (name: string, spec: CertificateSpec, signer: 'self' | 'ca'): Promise<MadeCertificate> => {
      const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
      await openssl(dir, 'req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', spec.subject)
      const by = signer === 'self' ? ['-selfsign', '-keyfile', `${name}.key`, '-extensions', 'ca_ext'] : ['-cert', 'ca.crt', '-keyfile', 'ca.key', '-extensions', 'leaf_ext']
      await openssl(dir, 'ca', '-config', 'ca.cnf', '-batch', '-notext', '-preserveDN', '-rand_serial', '-in', `${name}.csr`, ...by,
        '-startdate', asn1Time(spec.notBefore), '-enddate', asn1Time(spec.notAfter), '-out', `${name}.crt`)
      const [pem, key] = await Promise.all([readFile(join(dir, `${name}.crt`), 'utf8'), readFile(join(dir, `${name}.key`), 'utf8')])
      return { pem, key, notBefore: wholeSeconds(spec.notBefore), notAfter: wholeSeconds(spec.notAfter) }
    }
    const made = { ca: await issue('ca', ca, 'self'), certs: {} as Record<K, MadeCertificate> }
    // One at a time: openssl ca keeps its database (index.txt) in the directory.
    for (const name of Object.keys(specs) as K[]) made.certs[name] = await issue(`cert-${name}`, specs[name], 'ca')
    return made
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
