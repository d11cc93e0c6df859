// Which process opened the other end of a loopback TCP connection, read from
// Linux's /proc: the kernel's socket table (/proc/net/tcp, /proc/net/tcp6)
// names the client socket's inode, and /proc/self/fd lists the sockets this
// process holds. A server on 127.0.0.1 can so tell a connection made by the
// test process itself from one made by another process (sshd forwarding a
// channel to it).

import { readdir, readFile, readlink } from 'node:fs/promises'
import type { Socket } from 'node:net'

/** Whether this process holds the client end of the connection that `accepted` (a server's socket) is the server end of. */
export async function clientIsThisProcess(accepted: Socket): Promise<boolean> {
  const clientPort = accepted.remotePort
  const serverPort = accepted.localPort
  if (clientPort === undefined || serverPort === undefined) throw new Error('the connection is closed')
  const inode = await clientSocketInode(clientPort, serverPort)
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
    if (target === `socket:[${inode}]`) return true
  }
  return false
}

async function clientSocketInode(clientPort: number, serverPort: number): Promise<string> {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, '0')
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of (await readFile(table, 'utf8')).split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      if (fields[1]?.endsWith(`:${hex(clientPort)}`) && fields[2]?.endsWith(`:${hex(serverPort)}`)) return fields[9] as string
    }
  }
  throw new Error(`no socket 127.0.0.1:${clientPort} -> :${serverPort} in /proc/net/tcp`)
}
