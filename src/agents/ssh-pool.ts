// SSH connections to the nodes: one per node, opened on first use, shared by
// every request, closed after an idle time and opened again on demand after
// it drops. A handshake costs ~100 ms of CPU on each side; an operation over an
// open connection costs well under one. So a fleet query after the first pays
// no handshakes at all.
//
// Every failure leaves here as a ServiceError with the code callers act on:
// NODE_UNREACHABLE (no connection: refused, handshake timeout, key refused,
// connection lost mid-operation), TIMEOUT (connected, but an operation did not
// finish), HOST_KEY_MISMATCH (the node presented another key than the pinned
// one: nothing was sent to it). SFTP status errors (no such file ...) pass
// through untouched for the file system layer to interpret.
//
// What a failure says is one of connect-errors.ts's fixed phrases ("connection
// refused", "not an SSH server", ...), never ssh2's own text: that goes to the
// service log at debug level. With NODE_ADDRESS_ALLOW set, a node's host is
// resolved here, checked against the list, and the connection goes to the
// address that was checked (a DNS answer that changes later cannot get around
// the check); a node outside the list is refused before any packet goes to it.
//
// Jump hosts (OpenSSH's ProxyJump, ssh -J): a node with `via` is reached
// through one connection per jump host, shared by every node behind it; each
// node gets one forwarded channel (direct-tcpip) on it, and its own SSH
// connection runs inside that channel (ssh2 connect({ sock })), so the node
// authenticates and checks its host key end to end, as with ssh -J. A chain
// (a, then b through a) is the same step again. The node's host travels in
// the channel request and is resolved by the jump host, not here (so
// NODE_ADDRESS_ALLOW applies to the first hop only). A jump host's connection
// is pinned, kept alive and counted like a node's; it stays open while a node
// connection runs through it and closes after SSH_IDLE_TIMEOUT_MS without one.
// When it drops, every connection through it drops with it (NODE_UNREACHABLE
// for those nodes only), and the next operation opens it again.

import { connect as tcpConnect } from 'node:net'
import type { Duplex } from 'node:stream'
import type { ClientChannel, Client as SshClient, ConnectConfig, SFTPWrapper } from 'ssh2'
import { ServiceError, isServiceError } from '../errors.ts'
import { ADDRESS_LOOKUP_TIMEOUT_MS, allowedAddress, lookupAddresses, type AddressAllowList, type HostResolver } from '../net/address-allow.ts'
import { channelFailure, CONNECT_FAILURE, connectFailure, connectionLost, loggableError } from './connect-errors.ts'
import { openSshFingerprint, sameFingerprint } from './host-key.ts'
import { coalescingRequestsPerTick, coalescingWritesPerTick } from './ssh-coalescing.ts'

/**
 * ssh2 is loaded when the first node is contacted, or earlier in the
 * background (SshPool.preload: the long-running server, once built), never
 * at import: a Lambda cold start that reaches no SSH node does without it.
 */
let ssh2Client: (typeof import('ssh2'))['Client'] | undefined
let ssh2Loading: Promise<void> | undefined
function loadSsh2(): Promise<void> {
  ssh2Loading ??= import('ssh2').then((ssh2) => {
    ssh2Client = ssh2.default.Client
  })
  return ssh2Loading
}
function newClient(): SshClient {
  if (!ssh2Client) throw new Error('unreachable: ssh2 is loaded before any connection is made')
  return new ssh2Client()
}

/** Missed keepalive replies before a connection is declared dead. */
const KEEPALIVE_COUNT_MAX = 3
/** How long close() waits for connections to say goodbye before dropping them. */
const CLOSE_GRACE_MS = 1_000
/** SSH_CONNECT_CONCURRENCY's default (config.ts): enough to keep a fan-out's round trips overlapping, few enough for two cores' key exchanges. */
const DEFAULT_CONNECT_CONCURRENCY = 64
/**
 * ssh2's own handshake timer fires this long after the pool's: the pool's
 * settles first (with its own words), ssh2's is only a backstop.
 */
const SSH2_READY_TIMEOUT_SLACK_MS = 1_000

/** Where the pool writes the raw errors it does not show the API (pino's logger fits). */
export interface SshPoolLog {
  debug(fields: Record<string, unknown>, message: string): void
}

export interface SshAddress {
  /** The node this connection is for: errors name it. */
  nodeName: string
  /** Resolved here, or by the jump host when there is one (via). */
  host: string
  port: number
  username: string
  /** The jump host the node is reached through (ssh -J); absent or null: directly. */
  via?: JumpHostEndpoint | null
}

/** A jump host as the pool reaches it: pinned, with the jump hosts in front of it. */
export interface JumpHostEndpoint {
  /** The jump host's name: errors name it. */
  name: string
  /** Resolved here, or by the jump host in front of it. */
  host: string
  port: number
  username: string
  /** Nothing is sent through a jump host that presents another key. */
  hostKeyFingerprint: string
  /** The jump host in front of this one (ssh -J a,b: b's via is a); null: reached directly. */
  via: JumpHostEndpoint | null
}

export interface SshEndpoint extends SshAddress {
  /** The pinned host key: the connection goes no further unless the node presents it. */
  hostKeyFingerprint: string
  /**
   * The key the node's record says it presented last (observedHostKeyFingerprint).
   * A handshake that sees it again, and it is the pin, has nothing new to
   * record and does not wait for the store (onHostKey is not called).
   */
  recordedHostKeyFingerprint?: string | null
  /** Set on a SUDO node (privilege SUDO): root is had through sudo there, and the SFTP session is its SFTP server started with sudo. */
  sudo?: SudoAccess
}

/** Root through sudo on a node (sudo.ts), as far as the pool needs it. */
export interface SudoAccess {
  /** Part of the connection key: an SFTP session started one way is never used by an endpoint that wants another. */
  readonly key: string
  /** The node's SFTP session: its SFTP server, started through sudo -n on an exec channel. Errors are in fixed words. */
  openSftp(client: SshClient): Promise<SFTPWrapper>
}

export interface SshPoolSettings {
  /** The service's private key (PEM/OpenSSH text); without one (or an agent), SSH nodes are unreachable. */
  privateKey: Buffer | string | undefined
  /**
   * An ssh-agent's socket (SSH_AGENT_SOCK / SSH_AUTH_SOCK) to take keys from,
   * after privateKey's when both are set (ssh2 tries a key file, then the agent).
   */
  agent?: string | undefined
  /** TCP connect + SSH handshake + authentication. */
  connectTimeoutMs: number
  /** One operation over an open connection (a file read, a write, a crictl run). */
  operationTimeoutMs: number
  /** A connection unused this long is closed. */
  idleTimeoutMs: number
  /** SSH-level keepalives, so a connection to a node that vanished is noticed and dropped. */
  keepaliveIntervalMs: number
  /** Connections open (or opening) at once, over all nodes. */
  maxConnections: number
  /**
   * Handshakes in progress at once, over all nodes and jump hosts (default 64). A cold fan-out to
   * hundreds of nodes takes turns instead of starting every key exchange at once on a few cores,
   * and a handshake's connectTimeoutMs counts from its turn, not from the request.
   */
  connectConcurrency?: number
  /** Operations in flight at once on one node's connection. */
  maxOperationsPerNode: number
  /** Told the key a node presented at every handshake of a pinned node, so it can be recorded; awaited. */
  onHostKey?: (nodeName: string, fingerprint: string) => Promise<void> | void
  /** NODE_ADDRESS_ALLOW: the addresses (and ports) connections may go to; null or absent: anywhere. */
  addressAllow?: AddressAllowList | null
  /** Answers host names instead of the system resolver (tests: no DNS query leaves the machine). */
  resolveHost?: HostResolver
  /** Raw connection errors, at debug level (also settable later with attachLog). */
  log?: SshPoolLog
}

/** Counters for tests and /metrics. */
export interface SshPoolStats {
  /** Handshakes completed since start (each is a new connection). */
  connectionsOpened: number
  /** Connections open or opening right now. */
  connectionsOpen: number
  /** Connection attempts that failed (refused, timeout, key refused, host key mismatch). */
  connectFailures: number
  hostKeyMismatches: number
  /** Connections closed because they were idle. */
  idleClosed: number
  operationsInFlight: number
  /** Connections to jump hosts open or opening right now (also counted in connectionsOpen once they hold a slot). */
  jumpHostConnections: number
}

/** What an operation gets: the node's connection, and its SFTP channel on demand. */
export interface SshSession {
  readonly client: SshClient
  sftp(): Promise<SFTPWrapper>
}

export class SshPool {
  readonly settings: SshPoolSettings
  readonly #connections = new Map<string, PooledConnection>()
  /** One per jump host (and the chain in front of it), shared by the nodes behind it. */
  readonly #jumpConnections = new Map<string, PooledConnection>()
  #jumpHostKeySeen: ((jumpHostName: string, fingerprint: string) => Promise<void> | void) | undefined
  readonly #operationSlots = new Map<string, Semaphore>()
  readonly #connectionSlots: Semaphore
  readonly #handshakeTurns: Semaphore
  #closed = false
  readonly #stats = { connectionsOpened: 0, connectFailures: 0, hostKeyMismatches: 0, idleClosed: 0, operationsInFlight: 0 }

  #log: SshPoolLog | undefined

  constructor(settings: SshPoolSettings) {
    this.settings = settings
    this.#connectionSlots = new Semaphore(settings.maxConnections)
    this.#handshakeTurns = new Semaphore(settings.connectConcurrency ?? DEFAULT_CONNECT_CONCURRENCY)
    this.#log = settings.log
  }

  /** Where the raw errors behind the API's messages are logged (debug level). */
  attachLog(log: SshPoolLog): void {
    this.#log = log
  }

  /** Logs a raw error the API is not shown, bounded, at debug level. */
  logRawError(address: SshAddress, what: string, err: unknown): void {
    try {
      this.#log?.debug({ node: address.nodeName, host: address.host, port: address.port, what, cause: loggableError(err) }, `SSH: ${what} failed`)
    } catch {
      // A logger that throws must not turn a failure into another one.
    }
  }

  /**
   * Where the key a jump host presents at each handshake is recorded (the
   * jump host service, wired after the pool is made, like attachLog); awaited
   * before the handshake goes on, as onHostKey is for nodes.
   */
  attachJumpHostKeyRecorder(record: (jumpHostName: string, fingerprint: string) => Promise<void> | void): void {
    this.#jumpHostKeySeen = record
  }

  stats(): SshPoolStats {
    return { ...this.#stats, connectionsOpen: this.#connectionSlots.used, jumpHostConnections: this.#jumpConnections.size }
  }

  /**
   * Loads ssh2 now, in the background, so that the first operation on a node
   * does not wait for it (module loading, ≈ 80 ms here); a failure shows at
   * that first operation instead.
   */
  preload(): void {
    loadSsh2().catch(() => undefined)
  }

  /**
   * Runs fn over the node's pooled connection (opened if there is none), with
   * at most maxOperationsPerNode at once per node and operationTimeoutMs each.
   * An operation that times out takes its connection down with it: whatever
   * wedged it would wedge the next one too.
   */
  async run<T>(endpoint: SshEndpoint, what: string, fn: (session: SshSession) => Promise<T>): Promise<T> {
    if (this.#closed) throw new ServiceError('NODE_UNREACHABLE', `node ${endpoint.nodeName}: the service is shutting down`)
    await loadSsh2()
    const key = connectionKey(endpoint)
    const slots = this.#slotsOf(key)
    await slots.acquire()
    this.#stats.operationsInFlight++
    try {
      const connection = await this.#connectionTo(endpoint, key)
      connection.startOperation()
      try {
        return await withTimeout(fn(connection.session), this.settings.operationTimeoutMs, () => {
          connection.destroy(`${what} timed out`)
          return new ServiceError('TIMEOUT', `${what} on node ${endpoint.nodeName} did not finish within ${this.settings.operationTimeoutMs} ms`)
        })
      } catch (err) {
        if (isServiceError(err)) throw err
        this.logRawError(endpoint, what, err)
        // A session cut off with its node (sshd killed, the node gone) fails
        // its requests a moment before the connection says it closed: wait
        // that moment, so that the caller hears NODE_UNREACHABLE, not a failed write.
        if (!connection.closed && looksLikeLostSession(err)) await closedWithin(connection, LOST_SESSION_GRACE_MS)
        if (connection.closed) {
          throw new ServiceError(
            'NODE_UNREACHABLE',
            `node ${endpoint.nodeName}: the SSH connection was lost during ${what} (${connection.closeReason ?? connectionLost(err)})`,
          )
        }
        throw err
      } finally {
        connection.endOperation()
      }
    } finally {
      this.#stats.operationsInFlight--
      slots.release()
      if (slots.idle) this.#operationSlots.delete(key)
    }
  }

  /**
   * Connects only far enough to see the host key the node presents, then
   * refuses it: no authentication is attempted and nothing is sent beyond the
   * key exchange. For nodes without a pinned key.
   */
  async observeHostKey(address: SshAddress, role: ConnectionRole = 'node'): Promise<string> {
    if (this.#closed) throw new ServiceError('NODE_UNREACHABLE', `${role} ${address.nodeName}: the service is shutting down`)
    const { connectTimeoutMs } = this.settings
    await loadSsh2()
    const target: RoleAddress = { ...address, role }
    const startedAt = performance.now()
    const opened = await this.#openSocket(target, connectTimeoutMs)
    const remainingMs = Math.max(1, connectTimeoutMs - (performance.now() - startedAt))
    return new Promise((resolve, reject) => {
      const client = newClient()
      let presented: string | null = null
      let done = false
      const finish = (err?: ServiceError): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        client.destroy()
        opened.sock.destroy()
        opened.release()
        if (presented !== null) resolve(presented)
        else reject(err ?? unreachable(target, CONNECT_FAILURE.notSsh))
      }
      const timer = setTimeout(() => finish(unreachable(target, handshakeTimedOut(connectTimeoutMs))), remainingMs)
      client.on('error', (err) => {
        if (presented === null) this.logRawError(address, 'observing the host key', err)
        finish(unreachable(target, connectFailure(err)))
      })
      client.on('close', () => finish())
      try {
        client.connect({
          sock: opened.sock,
          username: address.username,
          readyTimeout: remainingMs + SSH2_READY_TIMEOUT_SLACK_MS,
          hostVerifier: (key: Buffer) => {
            presented = openSshFingerprint(key)
            return false
          },
        })
      } catch (err) {
        this.logRawError(address, 'observing the host key', err)
        finish(unreachable(target, CONNECT_FAILURE.failed))
      }
    })
  }

  /**
   * Opens (or reuses) the connection to a pinned jump host, through the ones
   * in front of it: resolves once it is up, rejects with the ServiceError
   * saying why not. It then stays open for the idle timeout, as any.
   */
  async checkJumpHost(jump: JumpHostEndpoint): Promise<void> {
    if (this.#closed) throw new ServiceError('NODE_UNREACHABLE', `jump host ${jump.name}: the service is shutting down`)
    await loadSsh2()
    await this.#jumpConnectionTo(jump)
  }

  /**
   * The host to open the TCP connection to: the node's host as registered,
   * or, with NODE_ADDRESS_ALLOW, the first of its addresses the list allows
   * (an IP literal is its own address). NODE_UNREACHABLE when none is, or when
   * its name does not resolve; nothing has been sent to the node then.
   */
  async connectTarget(address: SshAddress, timeoutMs: number): Promise<string> {
    const allow = this.settings.addressAllow
    const resolve = this.settings.resolveHost
    // Without a list the system resolver is net.connect's own; a resolver given instead (tests) answers every name.
    if (!allow && !resolve) return address.host
    let allowed: string | null
    try {
      const wait = Math.min(timeoutMs, ADDRESS_LOOKUP_TIMEOUT_MS)
      allowed = allow ? await allowedAddress(allow, address.host, address.port, wait, resolve) : ((await lookupAddresses(address.host, wait, resolve))[0] ?? null)
    } catch (err) {
      this.logRawError(address, 'resolving the host', err)
      throw unreachable(address, connectFailure(err))
    }
    if (allowed === null) throw new AddressNotAllowedError(address)
    return allowed
  }

  /** Closes every connection; later operations fail. */
  async close(): Promise<void> {
    this.#closed = true
    const connections = [...this.#connections.values()]
    this.#connections.clear()
    await Promise.all(connections.map((c) => c.end()))
    // The jump hosts last: the goodbyes above travel through them.
    const jumps = [...this.#jumpConnections.values()]
    this.#jumpConnections.clear()
    await Promise.all(jumps.map((c) => c.end()))
  }

  #slotsOf(key: string): Semaphore {
    let slots = this.#operationSlots.get(key)
    if (!slots) {
      slots = new Semaphore(this.settings.maxOperationsPerNode)
      this.#operationSlots.set(key, slots)
    }
    return slots
  }

  async #connectionTo(endpoint: SshEndpoint, key: string): Promise<PooledConnection> {
    let connection = this.#connections.get(key)
    if (!connection || connection.closed) {
      const hostKeySeen = (fingerprint: string): Promise<void> | void => {
        const recorded = endpoint.recordedHostKeyFingerprint
        const knownAlready = recorded != null && sameFingerprint(fingerprint, recorded) && sameFingerprint(fingerprint, endpoint.hostKeyFingerprint)
        return knownAlready ? undefined : this.settings.onHostKey?.(endpoint.nodeName, fingerprint)
      }
      connection = this.#newConnection({ ...endpoint, role: 'node' }, this.#connections, key, hostKeySeen)
    }
    await connection.ready
    return connection
  }

  /** The jump host's shared connection, opened (through the ones in front of it) if there is none. */
  async #jumpConnectionTo(jump: JumpHostEndpoint): Promise<PooledConnection> {
    const key = jumpKey(jump)
    let connection = this.#jumpConnections.get(key)
    if (!connection || connection.closed) {
      const target: ConnectionTarget = { nodeName: jump.name, host: jump.host, port: jump.port, username: jump.username, hostKeyFingerprint: jump.hostKeyFingerprint, via: jump.via, role: 'jump host' }
      connection = this.#newConnection(target, this.#jumpConnections, key, (fingerprint) => this.#jumpHostKeySeen?.(jump.name, fingerprint))
    }
    await connection.ready
    return connection
  }

  #newConnection(
    target: ConnectionTarget,
    pool: Map<string, PooledConnection>,
    key: string,
    hostKeySeen: (fingerprint: string) => Promise<void> | void,
  ): PooledConnection {
    const connection = new PooledConnection(target, this.settings, {
      // Through a jump host, its connection is up before this one takes a slot: a
      // connection holding a slot while it waits for its jump host's would starve
      // that jump host of slots when many nodes behind it connect at once. It is
      // held (not idle, so not closed to make room) until the channel is open.
      prepare: async () => {
        if (!target.via) return () => undefined
        const jump = await this.#jumpConnectionTo(target.via).catch((err: unknown) => Promise.reject(throughJumpHostFailed(target, err)))
        jump.startOperation()
        let held = true
        return () => {
          if (held) jump.endOperation()
          held = false
        }
      },
      socket: () => this.#openSocket(target, this.settings.connectTimeoutMs),
      hostKeySeen,
      logRawError: (what, err) => this.logRawError(target, what, err),
      reserveSlot: () => this.#reserveConnectionSlot(target),
      handshakeTurn: async () => {
        await this.#handshakeTurns.acquire()
        return () => this.#handshakeTurns.release()
      },
      releaseSlot: () => this.#connectionSlots.release(),
      onOpened: () => this.#stats.connectionsOpened++,
      onFailed: (mismatch) => {
        this.#stats.connectFailures++
        if (mismatch) this.#stats.hostKeyMismatches++
      },
      onIdleClose: () => this.#stats.idleClosed++,
      onClosed: (closed) => {
        if (pool.get(key) === closed) pool.delete(key)
      },
    })
    pool.set(key, connection)
    return connection
  }

  /**
   * The byte stream a connection's SSH session runs over: a TCP connection to
   * the (checked) address, or a channel forwarded by its jump host to
   * host:port, which the jump host resolves and dials. Bounded by timeoutMs;
   * rejects with a ServiceError. release() tells the jump host's connection
   * that this stream is done (its idle timer starts when the last one is).
   */
  async #openSocket(target: RoleAddress, timeoutMs: number): Promise<OpenedSocket> {
    const via = target.via
    if (!via) {
      const host = await this.connectTarget(target, timeoutMs)
      return { sock: coalescingWritesPerTick(tcpConnect({ host, port: target.port })), release: () => undefined, onLost: () => () => undefined }
    }
    const jump = await this.#jumpConnectionTo(via).catch((err: unknown) => Promise.reject(throughJumpHostFailed(target, err)))
    jump.startOperation()
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      jump.endOperation()
    }
    let timedOut = false
    try {
      const channel = await withTimeout(
        new Promise<ClientChannel>((resolve, reject) => {
          try {
            jump.client.forwardOut('127.0.0.1', 0, target.host, target.port, (err, stream) => {
              if (err) return reject(err)
              // Opened after the wait was given up: nobody will use it.
              if (timedOut) {
                stream.destroy()
                return
              }
              resolve(stream)
            })
          } catch (err) {
            // ssh2 throws "Not connected" once the connection is gone.
            reject(err)
          }
        }),
        timeoutMs,
        () => {
          timedOut = true
          return unreachable(target, `${CONNECT_FAILURE.timedOut} (jump host ${via.name} opened no channel to it within ${timeoutMs} ms, SSH_CONNECT_TIMEOUT_MS)`)
        },
      )
      return { sock: channel, release, onLost: (listener) => jump.onClose(listener) }
    } catch (err) {
      release()
      if (isServiceError(err)) throw err
      this.logRawError(target, `opening a channel through jump host ${via.name}`, err)
      throw unreachable(target, jump.closed ? `the connection to jump host ${via.name} was lost (${jump.closeReason ?? 'closed'})` : forwardFailure(err, via.name))
    }
  }

  /** A connection slot; when all are taken, an idle connection gives its slot up, else we wait. */
  async #reserveConnectionSlot(target: ConnectionTarget): Promise<void> {
    if (this.#connectionSlots.tryAcquire()) return
    const idle = [...this.#connections.values(), ...this.#jumpConnections.values()].filter((c) => c.isIdle).sort((a, b) => a.lastUsedAt - b.lastUsedAt)[0]
    idle?.destroy(`closed to make room for another ${target.role}`)
    const acquired = await this.#connectionSlots.acquire(this.settings.connectTimeoutMs)
    if (!acquired) {
      throw new ServiceError(
        'TIMEOUT',
        `${target.role} ${target.nodeName}: all ${this.settings.maxConnections} SSH connections stayed busy for ${this.settings.connectTimeoutMs} ms (SSH_MAX_CONNECTIONS)`,
      )
    }
  }
}

/** Whom a connection is to: a node, or a jump host in front of nodes (messages say which). */
type ConnectionRole = 'node' | 'jump host'
type RoleAddress = SshAddress & { role: ConnectionRole }
type ConnectionTarget = SshEndpoint & RoleAddress

interface OpenedSocket {
  sock: Duplex
  /** The stream is done with (idempotent). */
  release(): void
  /** Calls listener with the reason when the jump host's connection under the stream drops; answers an unsubscribe. */
  onLost(listener: (reason: string) => void): () => void
}

interface ConnectionHooks {
  /**
   * What must be up before the connection takes a slot (its jump host's
   * connection), held until the socket is open; answers the release of that
   * hold. Rejects with a ServiceError.
   */
  prepare(): Promise<() => void>
  /** The stream to run SSH over (TCP to the checked address, or a channel through the jump host); rejects with a ServiceError. */
  socket(): Promise<OpenedSocket>
  /** Told the key presented at every handshake, before it is accepted or refused (so that it can be recorded). */
  hostKeySeen(fingerprint: string): Promise<void> | void
  logRawError(what: string, err: unknown): void
  reserveSlot(): Promise<void>
  releaseSlot(): void
  /** Waits for a turn to handshake (SshPoolSettings.connectConcurrency); answers its release. */
  handshakeTurn(): Promise<() => void>
  onOpened(): void
  onFailed(hostKeyMismatch: boolean): void
  onIdleClose(): void
  onClosed(connection: PooledConnection): void
}

class PooledConnection {
  readonly client: SshClient = newClient()
  readonly ready: Promise<void>
  readonly session: SshSession
  closed = false
  closeReason: string | null = null
  lastUsedAt = Date.now()
  #inFlight = 0
  #established = false
  #holdsSlot = false
  #idleTimer: NodeJS.Timeout | undefined
  #sftp: Promise<SFTPWrapper> | null = null
  /** The stream under the session, once it is there: released when the connection closes. */
  #socket: OpenedSocket | null = null
  #stopListeningToJumpHost: (() => void) | null = null
  #releasePrepared: () => void = () => undefined
  readonly #closeListeners = new Set<(reason: string) => void>()

  constructor(
    private readonly endpoint: ConnectionTarget,
    private readonly settings: SshPoolSettings,
    private readonly hooks: ConnectionHooks,
  ) {
    this.session = { client: this.client, sftp: () => this.#sftpChannel() }
    this.client.on('close', () => this.#markClosed(this.closeReason ?? `the ${endpoint.role} closed the connection`))
    this.ready = this.#open()
    this.ready.catch(() => undefined)
  }

  get isIdle(): boolean {
    return this.#established && !this.closed && this.#inFlight === 0
  }

  startOperation(): void {
    this.#inFlight++
    clearTimeout(this.#idleTimer)
  }

  endOperation(): void {
    this.#inFlight--
    this.lastUsedAt = Date.now()
    this.#armIdleTimer()
  }

  /**
   * Calls listener with the reason once the connection is closed (at once
   * when it already is); answers an unsubscribe. The connections through a
   * jump host listen to its connection so.
   */
  onClose(listener: (reason: string) => void): () => void {
    if (this.closed) {
      listener(this.closeReason ?? 'closed')
      return () => undefined
    }
    this.#closeListeners.add(listener)
    return () => this.#closeListeners.delete(listener)
  }

  /** Closes the connection once it has had no operation (for a jump host: no connection through it) for the idle timeout. */
  #armIdleTimer(): void {
    if (this.#inFlight > 0 || this.closed) return
    clearTimeout(this.#idleTimer)
    this.#idleTimer = setTimeout(() => {
      if (this.#inFlight > 0 || this.closed) return
      this.hooks.onIdleClose()
      void this.end()
    }, this.settings.idleTimeoutMs)
    this.#idleTimer.unref()
  }

  destroy(reason: string): void {
    this.closeReason ??= reason
    this.client.destroy()
    this.#markClosed(reason)
  }

  /** A polite goodbye, then a hard close if the node does not answer it. */
  async end(): Promise<void> {
    if (this.closed) return
    const closed = new Promise<void>((resolve) => this.client.once('close', () => resolve()))
    this.closeReason ??= 'closed by the service'
    this.client.end()
    const timer = setTimeout(() => this.destroy('closed by the service'), CLOSE_GRACE_MS)
    await closed
    clearTimeout(timer)
    this.#markClosed('closed by the service')
  }

  async #open(): Promise<void> {
    try {
      this.#releasePrepared = await this.hooks.prepare()
    } catch (err) {
      this.hooks.onFailed(false)
      this.#markClosed(isServiceError(err) ? err.message : 'its jump host could not be reached')
      throw isServiceError(err) ? err : unreachable(this.endpoint, CONNECT_FAILURE.failed)
    }
    try {
      await this.hooks.reserveSlot()
    } catch (err) {
      this.#markClosed(isServiceError(err) ? err.message : 'no connection slot')
      throw err
    }
    this.#holdsSlot = true
    if (this.closed) throw unreachable(this.endpoint, this.closeReason ?? 'closed')
    // The connect timeout starts with the turn (inside #handshake): waiting behind other handshakes is not this node being slow.
    const endTurn = await this.hooks.handshakeTurn()
    if (this.closed) {
      endTurn()
      throw unreachable(this.endpoint, this.closeReason ?? 'closed')
    }
    try {
      await this.#handshake().finally(endTurn)
      this.#established = true
      this.hooks.onOpened()
      // Unused from the start (a jump host checked, a caller gone): closed after the idle timeout like any.
      this.#armIdleTimer()
    } catch (err) {
      if (!isServiceError(err)) this.hooks.logRawError('connecting', err)
      const serviceError = isServiceError(err) ? err : unreachable(this.endpoint, connectFailure(err))
      this.hooks.onFailed(serviceError.code === 'HOST_KEY_MISMATCH')
      this.destroy(serviceError.message)
      throw serviceError
    }
  }

  #handshake(): Promise<void> {
    const { endpoint, settings } = this
    const { privateKey, agent } = settings
    if (privateKey === undefined && agent === undefined) {
      return Promise.reject(
        unreachable(endpoint, 'no SSH authentication is configured: no private key (set SSH_PRIVATE_KEY_FILE or SSH_PRIVATE_KEY) and no ssh-agent (SSH_AUTH_SOCK or SSH_AGENT_SOCK)'),
      )
    }
    // ssh2 reports an agent it cannot reach (or that cannot sign) as an error, then goes on to the next method.
    let agentUnusable = false
    return new Promise((resolve, reject) => {
      let presented: string | null = null
      let settled = false
      let failed = false
      const settle = (err?: ServiceError): void => {
        if (settled) return
        settled = true
        failed = err !== undefined
        clearTimeout(timer)
        this.client.off('ready', onReady)
        if (err) reject(err)
        else resolve()
      }
      const onReady = (): void => settle()
      // Resolving and checking the address counts against the connect timeout too.
      const timer = setTimeout(() => settle(unreachable(endpoint, handshakeTimedOut(settings.connectTimeoutMs))), settings.connectTimeoutMs)
      this.client.once('ready', onReady)
      this.client.on('error', (err: Error & { level?: string }) => {
        if (failed) return // the echo of the connection being dropped after it failed
        this.hooks.logRawError(settled ? 'the connection' : 'connecting', err)
        if (err.level === 'agent' && !settled) {
          agentUnusable = true
          return
        }
        if (settled) {
          this.closeReason ??= connectionLost(err)
          return
        }
        if (presented !== null && !sameFingerprint(presented, endpoint.hostKeyFingerprint)) {
          const pin = endpoint.role === 'jump host' ? 'putJumpHost(hostKeyFingerprint)' : 'updateNode(hostKeyFingerprint)'
          settle(
            new ServiceError(
              'HOST_KEY_MISMATCH',
              `${describe(endpoint)} presented host key ${presented}, not the pinned ${endpoint.hostKeyFingerprint}; nothing was sent to it. If the ${endpoint.role} was reinstalled, check its key on its console (ssh-keygen -lf) and pin the new one with ${pin}.`,
            ),
          )
          return
        }
        const why = connectFailure(err)
        settle(
          unreachable(endpoint, why === CONNECT_FAILURE.authFailed ? `${why} (${authRefusal(privateKey !== undefined, agent !== undefined, agentUnusable, endpoint.username)})` : why),
        )
      })
      this.client.once('close', () => settle(unreachable(endpoint, `${CONNECT_FAILURE.notSsh} (the connection closed during the SSH handshake)`)))
      const connect = (opened: OpenedSocket): void => {
        if (settled || this.closed) {
          opened.sock.destroy()
          opened.release()
          return
        }
        this.#socket = opened
        const sock = opened.sock
        // The jump host's connection dropping takes this one down, saying why (its channel just closes).
        this.#stopListeningToJumpHost = opened.onLost((reason) => {
          const why = `the connection to jump host ${endpoint.via?.name ?? ''} was lost (${reason})`
          this.destroy(why)
          settle(unreachable(endpoint, why))
        })
        if (settled) return
        const config: ConnectConfig = {
          sock,
          username: endpoint.username,
          privateKey,
          agent,
          readyTimeout: settings.connectTimeoutMs + SSH2_READY_TIMEOUT_SLACK_MS,
          keepaliveInterval: settings.keepaliveIntervalMs,
          keepaliveCountMax: KEEPALIVE_COUNT_MAX,
          // Recorded before the handshake goes on, so that a caller who sees the outcome also sees the record.
          hostVerifier: (key: Buffer, verify: (accepted: boolean) => void) => {
            const seen = openSshFingerprint(key)
            presented = seen
            void Promise.resolve(this.hooks.hostKeySeen(seen))
              .catch(() => undefined)
              .then(() => verify(sameFingerprint(seen, endpoint.hostKeyFingerprint)))
          },
        }
        try {
          this.client.connect(config)
        } catch (err) {
          // ssh2 refused the configuration (a key it cannot use): the socket has no listener yet.
          sock.on('error', () => undefined)
          sock.destroy()
          opened.release()
          this.hooks.logRawError('connecting', err)
          settle(unreachable(endpoint, CONNECT_FAILURE.failed))
        }
      }
      this.hooks.socket().then(
        (opened) => {
          this.#releasePrepared()
          connect(opened)
        },
        (err: unknown) => {
          this.#releasePrepared()
          settle(isServiceError(err) ? err : unreachable(endpoint, connectFailure(err)))
        },
      )
    })
  }

  #sftpChannel(): Promise<SFTPWrapper> {
    if (!this.#sftp) {
      const channel = new Promise<SFTPWrapper>((resolve, reject) => {
        const opened = (err: Error | undefined, sftp: SFTPWrapper): void => {
          // The raw error is logged by the pool's run(); the API gets the SSH reason code's words.
          if (err) return reject(new Error(`the node did not open an SFTP session (${channelFailure(err)})`, { cause: err }))
          sftp.once('close', () => {
            if (this.#sftp === channel) this.#sftp = null
          })
          resolve(coalescingRequestsPerTick(sftp))
        }
        const sudo = this.endpoint.sudo
        if (sudo) {
          sudo.openSftp(this.client).then((sftp) => opened(undefined, sftp), reject)
          return
        }
        try {
          this.client.sftp(opened)
        } catch (err) {
          // ssh2 throws "Not connected" once the connection is gone.
          reject(new Error('the SSH connection is closed', { cause: err }))
        }
      })
      this.#sftp = channel
      channel.catch(() => {
        if (this.#sftp === channel) this.#sftp = null
      })
    }
    return this.#sftp
  }

  #markClosed(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.closeReason ??= reason
    clearTimeout(this.#idleTimer)
    this.hooks.onClosed(this)
    if (this.#holdsSlot) {
      this.#holdsSlot = false
      this.hooks.releaseSlot()
    }
    this.#stopListeningToJumpHost?.()
    this.#releasePrepared()
    this.#socket?.release()
    for (const listener of [...this.#closeListeners]) listener(this.closeReason)
    this.#closeListeners.clear()
  }
}

/** How long a request failed by a lost session waits for its connection to say it closed. */
const LOST_SESSION_GRACE_MS = 1_000

/** ssh2's words for requests failed because their channel or connection went away. */
function looksLikeLostSession(err: unknown): boolean {
  const message = err instanceof Error ? err.message : ''
  return /No response from server|the SSH connection is closed|Not connected|Channel is not open|channel.*closed|ECONNRESET|EPIPE/i.test(message)
}

/** Resolves when the connection closes, or after ms, whichever is first. */
function closedWithin(connection: PooledConnection, ms: number): Promise<void> {
  if (connection.closed) return Promise.resolve()
  return new Promise((resolve) => {
    // Not closed yet, so onClose does not call back before it returns.
    const timer = setTimeout(finish, ms)
    const unsubscribe = connection.onClose(finish)
    function finish(): void {
      clearTimeout(timer)
      unsubscribe()
      resolve()
    }
  })
}

/** Counting semaphore with FIFO waiters and an optional wait limit. */
class Semaphore {
  used = 0
  readonly #waiters: Array<(acquired: boolean) => void> = []

  constructor(private readonly limit: number) {}

  get idle(): boolean {
    return this.used === 0 && this.#waiters.length === 0
  }

  tryAcquire(): boolean {
    if (this.used >= this.limit) return false
    this.used++
    return true
  }

  /** Resolves true once acquired, or false after timeoutMs (when given). */
  acquire(timeoutMs?: number): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true)
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const waiter = (acquired: boolean): void => {
        clearTimeout(timer)
        resolve(acquired)
      }
      this.#waiters.push(waiter)
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          const index = this.#waiters.indexOf(waiter)
          if (index >= 0) this.#waiters.splice(index, 1)
          resolve(false)
        }, timeoutMs)
      }
    })
  }

  release(): void {
    const next = this.#waiters.shift()
    if (next) next(true) // the slot passes straight to the next waiter
    else this.used--
  }
}

function connectionKey(endpoint: SshEndpoint): string {
  return JSON.stringify([endpoint.nodeName, endpoint.username, endpoint.host, endpoint.port, endpoint.hostKeyFingerprint, endpoint.sudo?.key ?? null, endpoint.via ? jumpKey(endpoint.via) : null])
}

/** NODE_UNREACHABLE for a node whose address NODE_ADDRESS_ALLOW does not allow: nothing was sent to it. */
export class AddressNotAllowedError extends ServiceError {
  constructor(address: SshAddress) {
    super('NODE_UNREACHABLE', unreachable(address, CONNECT_FAILURE.notAllowed).message)
  }
}

function unreachable(address: SshAddress & { role?: ConnectionRole }, why: string): ServiceError {
  return new ServiceError('NODE_UNREACHABLE', `${describe(address)} cannot be reached over SSH: ${why}`)
}

/** "node cp-1 (10.0.0.5:22)", "node cp-1 (10.0.0.5:22 via jump host bastion)", "jump host bastion (192.0.2.7:22)". */
function describe(address: SshAddress & { role?: ConnectionRole }): string {
  const via = address.via ? ` via jump host ${address.via.name}` : ''
  return `${address.role ?? 'node'} ${address.nodeName} (${address.host}:${address.port}${via})`
}

/** A connection that could not be made because its jump host's could not: the jump host's code, and why, after whom it was for. */
function throughJumpHostFailed(target: RoleAddress, err: unknown): ServiceError {
  if (!isServiceError(err)) return unreachable(target, CONNECT_FAILURE.failed)
  return new ServiceError(err.code, `${describe(target)} cannot be reached over SSH: ${err.message}`)
}

/** Why a jump host did not open a forwarded channel, from the SSH reason code (RFC 4254 5.1); its own words are not repeated. */
function forwardFailure(err: unknown, jumpHostName: string): string {
  const reason = typeof err === 'object' && err !== null && 'reason' in err ? err.reason : undefined
  switch (reason) {
    case 1:
      return `jump host ${jumpHostName} does not allow forwarding (sshd AllowTcpForwarding)`
    case 2:
      return `jump host ${jumpHostName} could not connect to it (refused, unreachable or not resolved there)`
    default:
      return `jump host ${jumpHostName} refused the forwarded channel`
  }
}

/** The identity of a jump host's connection: its address, user and pin, and those of every jump host in front of it. */
function jumpKey(jump: JumpHostEndpoint): string {
  const chain: unknown[] = []
  for (let hop: JumpHostEndpoint | null = jump; hop !== null && chain.length <= MAX_CHAIN_KEY_HOPS; hop = hop.via) {
    chain.push([hop.name, hop.username, hop.host, hop.port, hop.hostKeyFingerprint])
  }
  return JSON.stringify(chain)
}

/** jumpKey stops walking here; the registry refuses longer chains long before (MAX_JUMP_HOSTS_IN_CHAIN in registry.ts). */
const MAX_CHAIN_KEY_HOPS = 64

/** Why authentication failed, naming what was offered, never a key. */
function authRefusal(keyFile: boolean, agent: boolean, agentUnusable: boolean, username: string): string {
  if (!agent) return `the node refused the service's key for user ${username}`
  const offered = keyFile ? 'the key file and the ssh-agent' : 'the ssh-agent'
  if (agentUnusable) return `the ssh-agent (SSH_AGENT_SOCK / SSH_AUTH_SOCK) could not be reached or could not sign, and the node accepted no other key for user ${username}`
  return `the node accepted none of the keys of ${offered} for user ${username}`
}

function handshakeTimedOut(ms: number): string {
  return `${CONNECT_FAILURE.timedOut} (no SSH handshake within ${ms} ms, SSH_CONNECT_TIMEOUT_MS)`
}

/** promise, or the error of onTimeout after ms; a late rejection of promise is swallowed. */
async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  promise.catch(() => undefined)
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
