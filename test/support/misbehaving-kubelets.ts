// Servers on 127.0.0.1 that answer /healthz the way a broken kubelet (or
// something else on its port) might: bytes that are not HTTP, a connection
// closed at once, a 200 whose body never ends. Real sockets, asked directly by
// the local agent and through an SSH forward by the SSH agent.

import { createServer as createHttpServer } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net'

export interface MisbehavingKubelets {
  notHttpPort: number
  hangsUpPort: number
  endlessBodyPort: number
  stop(): Promise<void>
}

export async function startMisbehavingKubelets(): Promise<MisbehavingKubelets> {
  const sockets = new Set<Socket>()
  const track = (server: Server) => server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  const notHttp = createTcpServer((socket) => socket.end('SSH-2.0-OpenSSH_9.2 this is not HTTP\r\n\r\n'))
  const hangsUp = createTcpServer((socket) => socket.destroy())
  const endless = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    const chunk = 'x'.repeat(16 * 1024)
    const timer = setInterval(() => res.write(chunk), 5)
    res.write(chunk)
    res.on('close', () => clearInterval(timer))
  })
  const servers = [notHttp, hangsUp, endless]
  const ports: number[] = []
  for (const server of servers) {
    track(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    ports.push((server.address() as AddressInfo).port)
  }
  return {
    notHttpPort: ports[0] as number,
    hangsUpPort: ports[1] as number,
    endlessBodyPort: ports[2] as number,
    async stop() {
      for (const socket of sockets) socket.destroy()
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
    },
  }
}
