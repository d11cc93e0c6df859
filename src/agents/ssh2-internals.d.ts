// The one file of ssh2's internals that src/agents/sudo.ts imports: the window
// and packet size ssh2 assumes for every channel it opens (ssh2 ships no types,
// and @types/ssh2 covers its public API only).
declare module 'ssh2/lib/Channel.js' {
  const channel: { MAX_WINDOW: number; PACKET_SIZE: number }
  export default channel
}
