// The certificates a static pod depends on, from its manifest and the files it
// names: which files its flags point at (as the node sees them), what each
// certificate in them says (subject, issuer, validity), and which have expired
// or soon will. Pure, like src/manifest/: the caller reads the files on the
// node (an agent's readNodeFile) and hands the bytes in.
//
// kubeadm's certificates expire after one year, and an expired one is among
// the most common reasons a control-plane pod crash-loops (issue 14, item 4).
//
// Private keys are never decoded: key flags are not in the lists below, a path
// ending in .key is never named, a PEM block that is not a CERTIFICATE is
// stepped over without its body being turned into a string or decoded, and a
// kubeconfig's client-key / client-key-data are never looked at.

import { X509Certificate } from 'node:crypto'
import { posix } from 'node:path'
import { isMapping, readDocument } from '../manifest/parse.ts'

/** A file a static pod's flags name, as the node sees it. */
export interface CertificateRef {
  /**
   * The path on the node (the container path mapped through the pod's
   * hostPath volumes and volumeMounts; unchanged when not mounted from a
   * hostPath, e.g. hostNetwork static pods usually mount the same path).
   */
  path: string
  /** The flag (--tls-cert-file), with the container name when the pod has several: e.g. "kube-apiserver --tls-cert-file". */
  referencedBy: string
  kind: 'certificate' | 'kubeconfig'
}

/** The contract's CertificateInfo (../shared/contract/diagnosis.graphql). */
export interface CertificateInfo {
  path: string
  referencedBy: string
  /** One line, the certificate's RDNs in order: "O=system:masters, CN=kubernetes-admin". */
  subject: string
  issuer: string
  /** ISO 8601 (UTC). */
  notBefore: string
  notAfter: string
  /** Whole days until notAfter, rounded down: 0 in its last day, -1 from the moment it expires until a day later. */
  daysLeft: number
}

/** A finding of the contract's FindingCode (CERTIFICATE_EXPIRED, CERTIFICATE_EXPIRES_SOON). */
export interface CertificateFinding {
  code: 'CERTIFICATE_EXPIRED' | 'CERTIFICATE_EXPIRES_SOON'
  message: string
  path: string
  notAfter: string
}

/** At most this many refs from one pod (or one kubeconfig): a control-plane pod names about ten. */
const MAX_REFS = 64

/**
 * The most a certificate file or kubeconfig may be; the reader's maxBytes.
 * kubeadm's are 1-6 KB; a system CA bundle (/etc/ssl/certs/ca-certificates.crt) about 200 KB.
 */
export const MAX_CERTIFICATE_FILE_BYTES = 1024 * 1024

/** At most this many certificates are listed from one file (a system CA bundle holds about 150). */
const MAX_CERTIFICATES_PER_FILE = 200

const DAY_MS = 24 * 60 * 60 * 1000

// The flags of the control-plane components whose value is a file of
// PEM certificates (a CA bundle, or a certificate with its chain). From the
// flag definitions (each AddFlags), kubernetes/kubernetes:
//   staging/src/k8s.io/apiserver/pkg/server/options/serving.go     --tls-cert-file, --tls-sni-cert-key
//   staging/src/k8s.io/apiserver/pkg/server/options/authentication.go  --client-ca-file, --requestheader-client-ca-file
//   staging/src/k8s.io/apiserver/pkg/server/options/etcd.go        --etcd-certfile, --etcd-cafile
//   cmd/kube-apiserver/app/options/options.go                     --kubelet-client-certificate, --kubelet-certificate-authority
//   pkg/controlplane/apiserver/options/options.go                 --proxy-client-cert-file, --peer-ca-file
//   pkg/kubeapiserver/options/authentication.go                   --oidc-ca-file
//   cmd/kube-controller-manager/app/options/serviceaccountcontroller.go  --root-ca-file
//   cmd/kube-controller-manager/app/options/csrsigningcontroller.go      --cluster-signing-cert-file and the four
//                                                                        per-signer --cluster-signing-*-cert-file
// (kube-controller-manager and kube-scheduler serve with the same generic
// serving and delegated-authentication options as the API server.) etcd,
// etcd-io/etcd server/embed/config.go: --cert-file, --client-cert-file,
// --trusted-ca-file, --peer-cert-file, --peer-client-cert-file,
// --peer-trusted-ca-file, --discovery-cert, --discovery-cacert.
//
// Left out on purpose: every key flag (--tls-private-key-file, --etcd-keyfile,
// --kubelet-client-key, --proxy-client-key-file, --key-file, --peer-key-file,
// --client-key-file, --peer-client-key-file, --discovery-key,
// --service-account-key-file (it may hold public keys but is named key),
// --service-account-signing-key-file, --service-account-private-key-file,
// --cluster-signing-*-key-file); CRLs (--client-crl-file, --peer-crl-file);
// structured config files that may embed CA data inline rather than name a
// certificate file (--authentication-config, --authorization-config,
// --egress-selector-config-file); and --cert-dir (a directory).
const CERTIFICATE_FLAGS: ReadonlySet<string> = new Set([
  // kube-apiserver, kube-controller-manager, kube-scheduler
  'tls-cert-file',
  'client-ca-file',
  'requestheader-client-ca-file',
  // kube-apiserver
  'etcd-certfile',
  'etcd-cafile',
  'kubelet-client-certificate',
  'kubelet-certificate-authority',
  'proxy-client-cert-file',
  'peer-ca-file',
  'oidc-ca-file',
  // kube-controller-manager
  'root-ca-file',
  'cluster-signing-cert-file',
  'cluster-signing-kubelet-serving-cert-file',
  'cluster-signing-kubelet-client-cert-file',
  'cluster-signing-kube-apiserver-client-cert-file',
  'cluster-signing-legacy-unknown-cert-file',
  // etcd
  'cert-file',
  'client-cert-file',
  'trusted-ca-file',
  'peer-cert-file',
  'peer-client-cert-file',
  'peer-trusted-ca-file',
  'discovery-cert',
  'discovery-cacert',
])

/**
 * --tls-sni-cert-key "cert.crt,cert.key[:domain,...]" (serving.go, cliflag.NamedCertKey):
 * a pair of paths, of which only the first (the certificate) is taken.
 */
const CERT_KEY_PAIR_FLAG = 'tls-sni-cert-key'

// Flags whose value is a kubeconfig, whose users' client certificates (and
// clusters' CAs) are in it or named by it:
//   cmd/kube-controller-manager/app/options/options.go, cmd/kube-scheduler/app/options  --kubeconfig
//   staging/src/k8s.io/apiserver/pkg/server/options/authentication.go  --authentication-kubeconfig
//   staging/src/k8s.io/apiserver/pkg/server/options/authorization.go   --authorization-kubeconfig
//   pkg/kubeapiserver/options/authentication.go  --authentication-token-webhook-config-file ("in kubeconfig format")
//   pkg/kubeapiserver/options/authorization.go   --authorization-webhook-config-file ("in kubeconfig format")
const KUBECONFIG_FLAGS: ReadonlySet<string> = new Set([
  'kubeconfig',
  'authentication-kubeconfig',
  'authorization-kubeconfig',
  'authentication-token-webhook-config-file',
  'authorization-webhook-config-file',
])

/** Never named, whatever flag or kubeconfig field names it: kubeadm's (and most) private keys end so. */
function isKeyPath(path: string): boolean {
  return /\.key$/i.test(path)
}

/**
 * Every certificate file and kubeconfig the pod's containers' (and init
 * containers') command/args flags name, in the order they are named, both
 * --flag=value and --flag value (pflag's forms; a single dash too, as etcd's
 * Go flag package takes it), up to a `--` that ends the flags. $(VAR) in
 * command/args is expanded from the container's literal env values, as the
 * kubelet does. Never a private key (see CERTIFICATE_FLAGS), never a path
 * ending in .key. Relative paths are resolved against the container's
 * workingDir when it is absolute, and left out otherwise (the image's working
 * directory is not known here). Deduplicated by node path, referencedBy
 * joining the flags; at most 64.
 */
export function certificateRefsOf(pod: Record<string, unknown>): CertificateRef[] {
  const spec = pod['spec']
  if (!isMapping(spec)) return []
  const containers = [...mappings(spec['containers']), ...mappings(spec['initContainers'])]
  const volumes = hostPathVolumes(spec['volumes'])
  const byPath = new Map<string, { kind: CertificateRef['kind']; by: string[] }>()
  containers.forEach((container, index) => {
    const name = typeof container['name'] === 'string' ? container['name'] : `container ${index}`
    const prefix = containers.length > 1 ? `${name} ` : ''
    const argv = expandedArgv(container)
    const workingDir = typeof container['workingDir'] === 'string' && container['workingDir'].startsWith('/') ? container['workingDir'] : null
    for (const { flag, value, kind } of fileFlags(argv)) {
      const inContainer = value.startsWith('/') ? posix.normalize(value) : workingDir ? posix.resolve(workingDir, value) : null
      if (inContainer === null || isKeyPath(inContainer)) continue
      const path = nodePathOf(container, volumes, inContainer)
      if (isKeyPath(path)) continue
      const by = `${prefix}--${flag}`
      const known = byPath.get(path)
      if (known) {
        if (!known.by.includes(by)) known.by.push(by)
      } else if (byPath.size < MAX_REFS) {
        byPath.set(path, { kind, by: [by] })
      }
    }
  })
  return [...byPath].map(([path, { kind, by }]) => ({ path, referencedBy: by.join(', '), kind }))
}

function mappings(list: unknown): Array<Record<string, unknown>> {
  return Array.isArray(list) ? list.filter(isMapping) : []
}

function strings(list: unknown): string[] {
  return Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : []
}

/** The file-naming flags of one argv, with their values, in order. */
function* fileFlags(argv: string[]): Generator<{ flag: string; value: string; kind: CertificateRef['kind'] }> {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') return
    if (!arg.startsWith('-') || arg === '-') continue
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1)
    const eq = body.indexOf('=')
    const flag = eq === -1 ? body : body.slice(0, eq)
    const kind = CERTIFICATE_FLAGS.has(flag) || flag === CERT_KEY_PAIR_FLAG ? 'certificate' : KUBECONFIG_FLAGS.has(flag) ? 'kubeconfig' : null
    if (kind === null) continue
    let value: string | undefined
    if (eq !== -1) {
      value = body.slice(eq + 1)
    } else {
      // pflag and Go's flag package both take the next argument as the value of a string flag.
      value = argv[i + 1]
      i++
    }
    if (value === undefined) continue
    if (flag === CERT_KEY_PAIR_FLAG) value = value.split(',', 1)[0]!
    if (value.length > 0) yield { flag, value, kind }
  }
}

/**
 * command then args, with $(VAR) expanded from the container's env as the
 * kubelet does (k8s.io/kubernetes third_party/forked/golang/expansion): $$ is
 * a $, $(NAME) of a defined variable its value, anything else stays as
 * written. Only literal env values are known here (valueFrom is not).
 */
function expandedArgv(container: Record<string, unknown>): string[] {
  const argv = [...strings(container['command']), ...strings(container['args'])]
  if (!argv.some((a) => a.includes('$'))) return argv
  const env = new Map<string, string>()
  for (const entry of mappings(container['env'])) {
    const { name, value } = entry
    // An env value may refer to the variables defined before it.
    if (typeof name === 'string' && typeof value === 'string') env.set(name, expand(value, env))
  }
  return argv.map((a) => expand(a, env))
}

function expand(input: string, env: ReadonlyMap<string, string>): string {
  let out = ''
  for (let i = 0; i < input.length; i++) {
    const c = input[i]
    if (c !== '$' || i + 1 >= input.length) {
      out += c
      continue
    }
    const next = input[i + 1]
    if (next === '$') {
      out += '$'
      i++
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2)
      const name = close === -1 ? undefined : input.slice(i + 2, close)
      const value = name === undefined ? undefined : env.get(name)
      if (close !== -1 && value !== undefined) {
        out += value
        i = close
      } else if (close !== -1) {
        out += input.slice(i, close + 1)
        i = close
      } else {
        out += c
      }
    } else {
      out += c
    }
  }
  return out
}

/** Volume name -> hostPath.path, for the volumes that are hostPath volumes. */
function hostPathVolumes(list: unknown): Map<string, string> {
  const volumes = new Map<string, string>()
  for (const volume of mappings(list)) {
    const hostPath = volume['hostPath']
    if (typeof volume['name'] === 'string' && isMapping(hostPath) && typeof hostPath['path'] === 'string' && hostPath['path'].startsWith('/')) {
      volumes.set(volume['name'], hostPath['path'])
    }
  }
  return volumes
}

/**
 * Where a path in the container is on the node: through the volumeMount with
 * the longest mountPath containing it (a deeper mount shadows a shallower
 * one), when that mount's volume is a hostPath (with its subPath). Unchanged
 * when no hostPath volume holds it (not mounted: the image's own file, or an
 * emptyDir and the like, which are not found at a fixed node path), or when
 * the mount uses subPathExpr (expanded from the environment at run time).
 */
function nodePathOf(container: Record<string, unknown>, volumes: ReadonlyMap<string, string>, path: string): string {
  let best: { mountPath: string; hostPath: string | null } | null = null
  for (const mount of mappings(container['volumeMounts'])) {
    const { name, mountPath, subPath, subPathExpr } = mount
    if (typeof name !== 'string' || typeof mountPath !== 'string' || !mountPath.startsWith('/')) continue
    const mounted = stripTrailingSlash(posix.normalize(mountPath))
    if (!(path === mounted || path.startsWith(mounted === '/' ? '/' : `${mounted}/`))) continue
    if (best && best.mountPath.length >= mounted.length) continue
    const hostPath = volumes.get(name)
    const usable = hostPath !== undefined && !(typeof subPathExpr === 'string' && subPathExpr.length > 0)
    best = { mountPath: mounted, hostPath: usable ? posix.join(hostPath, typeof subPath === 'string' ? subPath : '') : null }
  }
  if (!best || best.hostPath === null) return path
  return posix.join(best.hostPath, path.slice(best.mountPath.length))
}

function stripTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
}

/**
 * Every certificate in a PEM file (a CA bundle holds several), parsed with
 * node:crypto's X509Certificate, in file order. Anything that is not a
 * CERTIFICATE block (in particular any PRIVATE KEY block) is stepped over on
 * the bytes: its body is never made a string, decoded or kept. A file that
 * holds no certificate, or a block that does not parse, gives a problem (and
 * the other blocks are still read).
 */
export function certificatesInPem(bytes: Uint8Array, ref: { path: string; referencedBy: string }, now: Date): { certificates: CertificateInfo[]; problems: string[] } {
  return pemCertificates(bytes, ref, now, ref.path)
}

/** certificatesInPem, its problems naming `where` (a file, or a field of a kubeconfig). */
function pemCertificates(bytes: Uint8Array, ref: { path: string; referencedBy: string }, now: Date, where: string): { certificates: CertificateInfo[]; problems: string[] } {
  const certificates: CertificateInfo[] = []
  const problems: string[] = []
  if (bytes.byteLength > MAX_CERTIFICATE_FILE_BYTES) {
    return { certificates, problems: [`${where} is ${bytes.byteLength} bytes; certificates are read from files of at most ${MAX_CERTIFICATE_FILE_BYTES} bytes.`] }
  }
  // A view, not a copy: the bytes of a key block are never copied out of what the caller holds.
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const skipped = new Set<string>()
  let certificateBlocks = 0
  let at = 0
  for (;;) {
    const begin = buffer.indexOf(BEGIN, at, 'latin1')
    if (begin === -1) break
    const labelStart = begin + BEGIN.length
    const labelEnd = buffer.indexOf(DASHES, labelStart, 'latin1')
    // A label is short and on the BEGIN line ("CERTIFICATE", "EC PRIVATE KEY"); anything else is no PEM header.
    const label = labelEnd === -1 || labelEnd - labelStart > MAX_LABEL ? null : buffer.toString('latin1', labelStart, labelEnd)
    if (label === null || !/^[A-Z0-9 ]*$/.test(label)) {
      problems.push(`${where} has a malformed PEM BEGIN line at byte ${begin}.`)
      at = labelStart
      continue
    }
    const endLine = `-----END ${label}-----`
    const bodyStart = labelEnd + DASHES.length
    const end = buffer.indexOf(endLine, bodyStart, 'latin1')
    if (end === -1) {
      problems.push(`${where}: a PEM ${label} block has no END line.`)
      break
    }
    at = end + endLine.length
    if (label !== 'CERTIFICATE') {
      skipped.add(label)
      continue
    }
    if (certificates.length >= MAX_CERTIFICATES_PER_FILE) {
      problems.push(`${where} holds more than ${MAX_CERTIFICATES_PER_FILE} certificates; only the first ${MAX_CERTIFICATES_PER_FILE} are listed.`)
      break
    }
    certificateBlocks++
    const parsed = parseCertificate(buffer.toString('latin1', bodyStart, end), ref, now)
    if (typeof parsed === 'string') problems.push(`${where}: certificate ${certificateBlocks} ${parsed}`)
    else certificates.push(parsed)
  }
  if (certificateBlocks === 0 && problems.length === 0) {
    problems.push(
      skipped.size === 0
        ? `${where} holds no PEM certificate (no -----BEGIN CERTIFICATE----- line).`
        : `${where} holds no certificate, only ${[...skipped].join(', ')} blocks (not read).`,
    )
  }
  return { certificates, problems }
}

const BEGIN = '-----BEGIN '
const DASHES = '-----'
const MAX_LABEL = 64

/** One CERTIFICATE block's base64 body -> its CertificateInfo, or why not (a sentence's end). */
function parseCertificate(body: string, ref: { path: string; referencedBy: string }, now: Date): CertificateInfo | string {
  const base64 = body.replace(/[\r\n\t ]/g, '')
  // Buffer's base64 decoder skips what is not base64; Go's pem.Decode (what the components use) refuses it.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64) || base64.length % 4 !== 0) return 'is not valid base64.'
  let cert: X509Certificate
  try {
    cert = new X509Certificate(Buffer.from(base64, 'base64'))
  } catch (err) {
    return `does not parse as X.509 (${err instanceof Error ? err.message : String(err)}).`
  }
  const notBefore = new Date(cert.validFrom)
  const notAfter = new Date(cert.validTo)
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) return `has validity dates that cannot be read (${cert.validFrom} - ${cert.validTo}).`
  return {
    path: ref.path,
    referencedBy: ref.referencedBy,
    subject: oneLine(cert.subject),
    issuer: oneLine(cert.issuer),
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    daysLeft: Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS),
  }
}

/** node's X509Certificate gives a name one RDN per line; "CN=a, O=b" is the usual one-line form (openssl -nameopt oneline, less its spaces). */
function oneLine(name: string): string {
  return name.split('\n').filter((part) => part.length > 0).join(', ')
}

/**
 * The client certificates of a kubeconfig (YAML or JSON; kubeadm's
 * scheduler.conf, controller-manager.conf, admin.conf, kubelet.conf), read
 * as client-go reads it:
 * - users[].user.client-certificate-data (base64 PEM): parsed here, path the
 *   kubeconfig's, referencedBy "<kubeconfig path> user <name>";
 * - users[].user.client-certificate (a path): returned in furtherRefs to be
 *   read (a relative path is relative to the kubeconfig's directory, as
 *   client-go resolves it);
 * - clusters[].cluster.certificate-authority-data / certificate-authority:
 *   the CA the component trusts the API server by, likewise, referencedBy
 *   "<kubeconfig path> cluster <name>". Included: an expired CA stops the
 *   component as surely as an expired client certificate, and is no secret.
 * client-key-data and client-key are never looked at, let alone decoded.
 *
 * Paths in the kubeconfig are as the component that reads it sees them; a
 * caller that knows they are container paths passes nodePath to map them
 * (kubeadm's static pods' kubeconfigs embed their data, and kubelet.conf's
 * paths are the node's own).
 */
export function certificatesInKubeconfig(
  bytes: Uint8Array,
  kubeconfigPath: string,
  now: Date,
  options: { nodePath?: (path: string) => string } = {},
): { certificates: CertificateInfo[]; furtherRefs: CertificateRef[]; problems: string[] } {
  const certificates: CertificateInfo[] = []
  const furtherRefs: CertificateRef[] = []
  const problems: string[] = []
  const done = () => ({ certificates, furtherRefs, problems })
  if (bytes.byteLength > MAX_CERTIFICATE_FILE_BYTES) {
    problems.push(`${kubeconfigPath} is ${bytes.byteLength} bytes; a kubeconfig is read only up to ${MAX_CERTIFICATE_FILE_BYTES} bytes.`)
    return done()
  }
  // The project's bounded YAML reader, told not to keep this text in its parse cache: a kubeconfig holds
  // client-key-data, which must not outlive this call in the process's memory (it is never decoded here either).
  const read = readDocument(bytes, MAX_CERTIFICATE_FILE_BYTES, { remember: false })
  if (!read.ok) {
    problems.push(`${kubeconfigPath} cannot be read as a kubeconfig: ${read.reason}`)
    return done()
  }
  if (!isMapping(read.value)) {
    problems.push(`${kubeconfigPath} is not a kubeconfig (its top level is not a mapping).`)
    return done()
  }
  const config = read.value
  const nodePath = options.nodePath ?? ((p: string) => p)
  const refs = new Map<string, string[]>()
  const addRef = (value: string, referencedBy: string): void => {
    const path = nodePath(posix.resolve(posix.dirname(kubeconfigPath), value))
    if (isKeyPath(path)) return
    const by = refs.get(path)
    if (by) {
      if (!by.includes(referencedBy)) by.push(referencedBy)
    } else if (refs.size < MAX_REFS) {
      refs.set(path, [referencedBy])
    }
  }
  const embedded = (data: unknown, field: string, entry: string, referencedBy: string): void => {
    const where = `${kubeconfigPath} (${field} of ${entry})`
    if (typeof data !== 'string') {
      problems.push(`${where} is not a string.`)
      return
    }
    const base64 = data.replace(/\s/g, '')
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64) || base64.length % 4 !== 0) {
      problems.push(`${where} is not valid base64.`)
      return
    }
    const pem = pemCertificates(Buffer.from(base64, 'base64'), { path: kubeconfigPath, referencedBy }, now, where)
    certificates.push(...pem.certificates)
    problems.push(...pem.problems)
  }
  const entries = (list: unknown, kind: 'user' | 'cluster'): Array<{ name: string; body: Record<string, unknown> }> =>
    mappings(list)
      .slice(0, MAX_REFS)
      .flatMap((entry, i) => {
        const body = entry[kind]
        return isMapping(body) ? [{ name: typeof entry['name'] === 'string' ? entry['name'] : `#${i}`, body }] : []
      })

  for (const { name, body } of entries(config['users'], 'user')) {
    const by = `${kubeconfigPath} user ${name}`
    // Only these two fields: client-key-data and client-key are not read.
    const data = body['client-certificate-data']
    if (data !== undefined && data !== null) embedded(data, 'client-certificate-data', `user ${name}`, by)
    const file = body['client-certificate']
    if (typeof file === 'string' && file.length > 0) addRef(file, by)
  }
  for (const { name, body } of entries(config['clusters'], 'cluster')) {
    const by = `${kubeconfigPath} cluster ${name}`
    const data = body['certificate-authority-data']
    if (data !== undefined && data !== null) embedded(data, 'certificate-authority-data', `cluster ${name}`, by)
    const file = body['certificate-authority']
    if (typeof file === 'string' && file.length > 0) addRef(file, by)
  }
  for (const [path, by] of refs) furtherRefs.push({ path, referencedBy: by.join(', '), kind: 'certificate' })
  return done()
}

/**
 * CERTIFICATE_EXPIRED when notAfter < now (daysLeft < 0), CERTIFICATE_EXPIRES_SOON
 * when less than warnDays days are left (daysLeft < warnDays, i.e. notAfter -
 * now < warnDays × 24 h). "now" is the one the certificates were read at
 * (daysLeft). Expired first, then expiring; each soonest first.
 */
export function certificateFindings(certs: CertificateInfo[], warnDays: number): CertificateFinding[] {
  const expired = certs.filter((c) => c.daysLeft < 0)
  const soon = certs.filter((c) => c.daysLeft >= 0 && c.daysLeft < warnDays)
  const byNotAfter = (a: CertificateInfo, b: CertificateInfo) => (a.notAfter < b.notAfter ? -1 : a.notAfter > b.notAfter ? 1 : 0)
  const describe = (c: CertificateInfo) => `The certificate ${c.subject || '(no subject)'} in ${c.path} (${c.referencedBy})`
  return [
    ...expired.sort(byNotAfter).map((c) => ({
      code: 'CERTIFICATE_EXPIRED' as const,
      message: `${describe(c)} expired on ${c.notAfter}.`,
      path: c.path,
      notAfter: c.notAfter,
    })),
    ...soon.sort(byNotAfter).map((c) => ({
      code: 'CERTIFICATE_EXPIRES_SOON' as const,
      message: `${describe(c)} expires on ${c.notAfter}, ${c.daysLeft === 0 ? 'in less than a day' : `in ${c.daysLeft} day${c.daysLeft === 1 ? '' : 's'}`}.`,
      path: c.path,
      notAfter: c.notAfter,
    })),
  ]
}
