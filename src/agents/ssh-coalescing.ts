// Fewer SSH packets for the same SFTP requests. The write path sends its
// requests in waves (node-fs.ts NodePipeline): a dozen requests that go out
// in the same tick of the event loop and are answered together. ssh2 makes
// each request an SSH packet of its own, and each packet costs the same work
// at both ends whatever its size: padding from the CSPRNG, encryption and MAC
// here; on the node, sshd's decryption, its MAC check and a write into the
// pipe to sftp-server. On a node that is also busy running its pods, and on
// a service instance writing to fifty nodes at once, that work is what a
// write costs, not the bytes. So both are coalesced per tick:
//
// - the SFTP channel's data: every request sent in one tick leaves as one
//   CHANNEL_DATA message (SFTP is a byte stream; how it is cut into channel
//   messages means nothing to the server, which reads whole requests off its
//   input), up to the channel's packet size;
// - the TCP socket's writes: every SSH packet written in one tick leaves in
//   one writev(2) (the pattern Node's docs give for cork).

import type { Socket } from 'node:net'
import type { SFTPWrapper } from 'ssh2'

/** What ssh2's SFTP class uses of the connection's protocol object (lib/protocol/SFTP.js). */
interface ChannelProtocol {
  channelData(channel: number, data: Buffer): void
  channelClose(channel: number): void
}

/** The parts of ssh2's SFTP object (lib/protocol/SFTP.js) that this reaches into: checked, so that an ssh2 without them fails loudly, not silently uncoalesced. */
interface SftpInternals {
  _protocol: ChannelProtocol
  outgoing: { id: number; packetSize: number }
}

/**
 * The SFTP session, its requests of one tick sent as one CHANNEL_DATA
 * message (at most the channel's packet size each). Nothing else changes:
 * ssh2 has counted the bytes against the channel's window before it hands
 * them over, and a close sends what is pending first, so the order of
 * everything on the channel is kept.
 */
export function coalescingRequestsPerTick(sftp: SFTPWrapper): SFTPWrapper {
  const internals = sftp as unknown as SftpInternals
  const protocol = internals._protocol
  if (typeof protocol?.channelData !== 'function' || typeof protocol.channelClose !== 'function' || typeof internals.outgoing?.packetSize !== 'number') {
    throw new Error('this ssh2 version has no SFTP channel internals as expected (lib/protocol/SFTP.js): see src/agents/ssh-coalescing.ts')
  }
  const pending: Buffer[] = []
  let pendingBytes = 0
  let scheduled = false
  const flush = (): void => {
    scheduled = false
    if (pending.length === 0) return
    const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes)
    pending.length = 0
    pendingBytes = 0
    protocol.channelData(internals.outgoing.id, data)
  }
  const channelData = (channel: number, data: Buffer): void => {
    if (channel !== internals.outgoing.id) {
      flush()
      protocol.channelData(channel, data)
      return
    }
    if (pendingBytes + data.length > internals.outgoing.packetSize) flush()
    pending.push(data)
    pendingBytes += data.length
    if (!scheduled) {
      scheduled = true
      process.nextTick(flush)
    }
  }
  const channelClose = (channel: number): void => {
    flush()
    protocol.channelClose(channel)
  }
  // A proxy, not a copy: every other property is the connection's own protocol object, whose state ssh2 changes.
  const coalescing = new Proxy(protocol, {
    get(target, property, receiver) {
      if (property === 'channelData') return channelData
      if (property === 'channelClose') return channelClose
      const value: unknown = Reflect.get(target, property, receiver)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  internals._protocol = coalescing
  return sftp
}

/**
 * ssh2 writes every SSH packet to the socket on its own, one write(2) each.
 * Packets sent together (two waves' messages, a window adjust) then cost a
 * system call each, which on loopback and in VMs costs far more than the
 * bytes. Corked until the end of the tick, they leave as one writev(2).
 */
export function coalescingWritesPerTick(socket: Socket): Socket {
  const write = socket.write
  let corked = false
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>): boolean {
    if (!corked) {
      corked = true
      this.cork()
      process.nextTick(() => {
        corked = false
        this.uncork()
      })
    }
    return write.apply(this, args as never)
  } as Socket['write']
  socket.setNoDelay(true)
  return socket
}
