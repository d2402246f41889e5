import { randomUUID } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach } from 'vitest';
import { SmtpPool, type PoolMessage, type SmtpPoolOptions } from '../smtp-pool.js';

/** A message as the pool takes it. */
export function poolMessage(overrides: Partial<PoolMessage> = {}): PoolMessage {
  const messageId = `<${randomUUID()}@test.example>`;
  return {
    from: 'agent@example.com',
    to: 'ada@example.com',
    subject: 'Pool test',
    text: 'hello',
    envelope: { from: 'agent@example.com', to: ['ada@example.com'] },
    messageId,
    ...overrides,
  };
}

/** A raw TCP peer on 127.0.0.1, closed (with every socket destroyed) after each test. */
export interface TcpPeer {
  port: number;
  /** Sockets accepted so far. */
  readonly accepted: Socket[];
  /** Sockets the client has closed so far. */
  readonly closedByClient: number;
  close(): Promise<void>;
}

/**
 * Pools and raw peers a test file opens, force-closed after each test so that a failing test leaves nothing
 * running for the next one. Call once at the top level of a test file.
 */
export function usePoolResources(): {
  pool(options: SmtpPoolOptions): SmtpPool;
  peer(onSocket: (socket: Socket, index: number) => void): Promise<TcpPeer>;
} {
  const pools: SmtpPool[] = [];
  const peers: TcpPeer[] = [];
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ force: true })));
    await Promise.all(peers.splice(0).map((p) => p.close()));
  });
  return {
    pool(options) {
      const pool = new SmtpPool(options);
      pools.push(pool);
      return pool;
    },
    async peer(onSocket) {
      const peer = await startTcpPeer(onSocket);
      peers.push(peer);
      return peer;
    },
  };
}

/** Starts a TCP listener whose `onSocket` decides what each accepted connection does. */
export async function startTcpPeer(onSocket: (socket: Socket, index: number) => void): Promise<TcpPeer> {
  const accepted: Socket[] = [];
  let closedByClient = 0;
  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('end', () => closedByClient++);
    accepted.push(socket);
    onSocket(socket, accepted.length - 1);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    port,
    accepted,
    get closedByClient() {
      return closedByClient;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of accepted) socket.destroy();
      }),
  };
}

/** A peer that accepts connections and never says a word: a server hung before its greeting. */
export function neverGreets(): (socket: Socket) => void {
  return () => undefined;
}

/** Relays a connection to `port` on 127.0.0.1 byte for byte, so the peer behind it sees a normal client. */
export function relayTo(port: number): (socket: Socket) => void {
  return (socket) => {
    const upstream = connect(port, '127.0.0.1');
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
    socket.pipe(upstream).pipe(socket);
    socket.once('close', () => upstream.destroy());
    upstream.once('close', () => socket.destroy());
  };
}

/**
 * A relay whose server-to-client direction can be held: while held, the server's replies are kept back, so a client
 * command stays unanswered (a send stays in flight) for exactly as long as the test wants.
 */
export function gatedRelay(port: number): { handler: (socket: Socket) => void; hold(): void; release(): void } {
  let held: { socket: Socket; chunk: Buffer }[] | undefined;
  return {
    handler(socket) {
      const upstream = connect(port, '127.0.0.1');
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
      socket.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        if (held) held.push({ socket, chunk });
        else socket.write(chunk);
      });
      socket.once('close', () => upstream.destroy());
      upstream.once('close', () => socket.destroy());
    },
    hold() {
      held ??= [];
    },
    release() {
      const pending = held ?? [];
      held = undefined;
      for (const { socket, chunk } of pending) socket.write(chunk);
    },
  };
}

/** Resolves once `condition` holds, polling; rejects naming `what` after `timeoutMs`. */
export async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** How a promise settled, and how long after `since` it did. */
export async function settlement<T>(promise: Promise<T>, since: () => number): Promise<{ value?: T; error?: unknown; afterMs: number }> {
  try {
    const value = await promise;
    return { value, afterMs: Date.now() - since() };
  } catch (error) {
    return { error, afterMs: Date.now() - since() };
  }
}
