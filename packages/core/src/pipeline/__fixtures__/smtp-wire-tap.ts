import net from 'node:net';

/** A TCP relay in front of an SMTP server that records the commands the client sent, byte for byte. */
export interface SmtpWireTap {
  readonly port: number;
  /** Client command lines as sent (message content between DATA and the final dot left out). */
  readonly commands: string[];
  /** The addresses of every `RCPT TO:<…>` exactly as written on the wire, parameters dropped. */
  rcptTo(): string[];
  close(): Promise<void>;
}

const RCPT_TO = /^RCPT TO:<(.*)>(?: [^<>]*)?$/i;

/**
 * smtp-server hands its callbacks a decoded address (it turns an A-label back into Unicode), so the sink's envelope
 * cannot tell `xn--bcher-kva` from `bücher`; this tap reads what actually crossed the socket.
 */
export async function startSmtpWireTap(target: { host: string; port: number }): Promise<SmtpWireTap> {
  const commands: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client).add(upstream);
    let pending = Buffer.alloc(0);
    let inData = false;
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      pending = Buffer.concat([pending, chunk]);
      for (let end = pending.indexOf('\r\n'); end !== -1; end = pending.indexOf('\r\n')) {
        const line = pending.subarray(0, end).toString('utf8');
        pending = pending.subarray(end + 2);
        if (inData) inData = line !== '.';
        else {
          commands.push(line);
          inData = line.toUpperCase() === 'DATA';
        }
      }
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    commands,
    rcptTo: () => commands.flatMap((line) => RCPT_TO.exec(line)?.[1] ?? []),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
