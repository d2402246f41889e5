import type { Server, Socket } from 'node:net';
import tls from 'node:tls';
import { simpleParser } from 'mailparser';
import type { AddressObject, ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { SmtpServerConfig } from '@agent-smtp/core';
import { testCertificate } from './test-certificate.js';

/** An SMTP reply the sink answers with, e.g. `{ code: 550, message: '5.1.1 No such user' }`. */
export interface SinkReply {
  code: number;
  message?: string;
}

/**
 * What the sink does after the final dot of a message. `'hang'` keeps the message and never answers, so the client
 * times out waiting for the reply; `'drop'` keeps the message and closes the connection without answering. Both are
 * the "ambiguous" outcome: the server has the bytes but the client cannot know it.
 */
export type SinkDataAction = SinkReply | 'hang' | 'drop';

/**
 * Hooks deciding how the sink answers. Return `undefined` (or a reply below 400) to accept; a 4xx/5xx reply refuses
 * that command with exactly that reply. Hooks are read on every command, so tests can swap them at any time.
 */
export interface SinkBehavior {
  /** Instead of the greeting, e.g. 421 to refuse the connection. */
  connect?: (session: SinkSession) => SinkReply | undefined;
  /**
   * Before the credentials are checked, e.g. 535 even with the right password. `password` is what the client sent,
   * so a test can play a server that echoes the exchange back.
   */
  auth?: (user: string, session: SinkSession, password: string) => SinkReply | undefined;
  mailFrom?: (address: string, session: SinkSession) => SinkReply | undefined;
  /** Per recipient: refusing some of them gives the client a partial rejection. */
  rcptTo?: (address: string, session: SinkSession) => SinkReply | undefined;
  /** After the final dot, with the message as received. A 2xx reply's message becomes the 250 text. */
  data?: (message: ReceivedMessage, session: SinkSession) => SinkDataAction | undefined;
}

export interface SinkSession {
  id: string;
  remoteAddress: string;
  secure: boolean;
  user: string | undefined;
}

export interface ReceivedAttachment {
  filename: string | undefined;
  contentType: string;
  content: Buffer;
  size: number;
}

export interface ReceivedMessage {
  /** Exactly what MAIL FROM and the accepted RCPT TO commands said. */
  envelope: { from: string; to: string[] };
  /** The message bytes as received, after the dot-unstuffing of DATA. */
  raw: Buffer;
  subject: string | undefined;
  /** Header text, e.g. `"Ann" <ann@example.com>`. */
  from: string | undefined;
  to: string | undefined;
  cc: string | undefined;
  messageId: string | undefined;
  /** mailparser's header map, keys in lower case. Empty when the sink runs with `parse: false`. */
  headers: Map<string, unknown>;
  /** The text/plain content as sent; undefined when there is none (it is never derived from the HTML). */
  text: string | undefined;
  html: string | undefined;
  attachments: ReceivedAttachment[];
  secure: boolean;
  user: string | undefined;
  receivedAt: Date;
}

export interface SmtpSinkOptions {
  /**
   * `'none'` (default): plain only; STARTTLS is neither offered nor accepted. `'starttls'`: plain, advertising STARTTLS with the test certificate (AUTH is then
   * refused until the client upgrades). `'implicit'`: TLS from the first byte.
   */
  tls?: 'none' | 'starttls' | 'implicit';
  /** When set, AUTH PLAIN and LOGIN are offered and required; other credentials get 535. When unset, AUTH is not offered. */
  auth?: { user: string; pass: string };
  /** Initial behavior; `sink.behavior` can be replaced or changed while the sink runs. */
  behavior?: SinkBehavior;
  /** Default true. false keeps only envelope and raw bytes (for benchmarks): no MIME parsing per message. */
  parse?: boolean;
  /** Keep at most this many messages, dropping the oldest. Default: unlimited. */
  maxMessages?: number;
  /** SIZE limit in bytes, advertised in EHLO; larger messages get 552 and are not kept. */
  size?: number;
}

export interface SmtpSink {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** True when the sink speaks implicit TLS. */
  readonly secure: boolean;
  /** CA certificate (PEM) a client passes as `tls.ca`, with `servername: 'localhost'`, to verify the sink. */
  readonly certificate: string;
  /** Messages kept so far, oldest first. The same array for the sink's whole life. */
  readonly messages: ReceivedMessage[];
  behavior: SinkBehavior;
  /**
   * Cumulative since start (clear() leaves them): connections opened, messages accepted with 2xx, commands refused by
   * behavior, QUIT commands received, and client connections closed (by either side).
   */
  readonly stats: { connections: number; messages: number; rejected: number; quits: number; closed: number };
  /**
   * A server config a mailer can use directly: host, port, secure, starttls (`required` for a STARTTLS sink,
   * `disabled` for a plain one), auth, and tls `{ ca: certificate, servername: 'localhost' }`. Overrides are shallow.
   */
  serverConfig(overrides?: Partial<SmtpServerConfig>): SmtpServerConfig;
  /**
   * Resolves with the kept messages once at least `count` have been received since start or the last clear()
   * (hung and dropped messages count: the sink has them). Rejects after `timeoutMs` (default 5000), saying how many arrived.
   */
  waitForMessages(count: number, timeoutMs?: number): Promise<ReceivedMessage[]>;
  /**
   * Resolves once every connection the sink has seen is closed: after a client closed its pool, nothing more can
   * arrive, so a test can count what did (the peer's own signal, not a sleep). Rejects after `timeoutMs` (default 8000).
   */
  waitForIdle(timeoutMs?: number): Promise<void>;
  /** Empties `messages` and restarts the count waitForMessages uses. */
  clear(): void;
  /** Stops listening and destroys every open client socket, hung ones included, without a grace period. */
  close(): Promise<void>;
}

interface Waiter {
  count: number;
  resolve: (messages: ReceivedMessage[]) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

const HOST = '127.0.0.1';

/**
 * Starts a real SMTP server on 127.0.0.1 and a free port that keeps every message it receives and answers with the
 * reply codes its behavior chooses, so tests can drive every SMTP failure class against a real client.
 */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const tlsMode = options.tls ?? 'none';
  const credentials = options.auth;
  const parse = options.parse ?? true;
  const maxMessages = options.maxMessages;
  if (maxMessages !== undefined && !(Number.isInteger(maxMessages) && maxMessages > 0)) {
    throw new RangeError(`startSmtpSink: maxMessages must be a positive integer (got ${String(maxMessages)}).`);
  }

  const messages: ReceivedMessage[] = [];
  const stats = { connections: 0, messages: 0, rejected: 0, quits: 0, closed: 0 };
  /** Called when the last open connection closes (see waitForIdle). */
  const idleWaiters = new Set<() => void>();
  const waiters = new Set<Waiter>();
  /** Every accepted TCP socket; for TLS sessions these are the plain sockets underneath. */
  const sockets = new Set<Socket>();
  let receivedSinceClear = 0;
  let closing: Promise<void> | undefined;

  const record = (message: ReceivedMessage): void => {
    messages.push(message);
    if (maxMessages !== undefined && messages.length > maxMessages) messages.shift();
    receivedSinceClear++;
    for (const waiter of waiters) {
      if (receivedSinceClear >= waiter.count) {
        clearTimeout(waiter.timer);
        waiters.delete(waiter);
        waiter.resolve([...messages]);
      }
    }
  };

  /** Runs a hook; a hook that throws is a bug in the test, so the client gets a 451 naming it rather than a hang. */
  const ask = <T>(hook: keyof SinkBehavior, run: () => T): T | SinkReply => {
    try {
      const reply = run();
      if (isReply(reply) && !(Number.isInteger(reply.code) && reply.code >= 200 && reply.code <= 599)) {
        return { code: 451, message: `sink behavior.${hook} returned an invalid reply code ${String(reply.code)}` };
      }
      return reply;
    } catch (error) {
      return { code: 451, message: `sink behavior.${hook} threw: ${error instanceof Error ? error.message : String(error)}` };
    }
  };

  /** Calls back with an SMTP error when the reply refuses the command; anything else accepts it. */
  const answer = (reply: SinkReply | undefined, hook: keyof SinkBehavior, callback: (err?: Error | null) => void): void => {
    if (reply && reply.code >= 400) {
      stats.rejected++;
      callback(smtpError(reply, hook));
      return;
    }
    callback();
  };

  const serverOptions: SMTPServerOptions = {
    name: 'localhost',
    banner: 'agent-smtp dev sink',
    disableReverseLookup: true,
    logger: false,
    secure: tlsMode === 'implicit',
    ...(tlsMode === 'none' ? {} : { key: testCertificate.key, cert: testCertificate.cert }),
    // Without credentials there is nothing to check, so AUTH is not offered and nodemailer skips it. A plain sink
    // neither offers nor accepts STARTTLS: hiding it is not enough, since smtp-server would still upgrade a client
    // that asks anyway (nodemailer's requireTLS does), with its own built-in certificate, long expired.
    disabledCommands: [...(credentials ? [] : ['AUTH']), ...(tlsMode === 'none' ? ['STARTTLS'] : [])],
    authOptional: !credentials,
    authMethods: ['PLAIN', 'LOGIN'],
    // Like a real submission server, a STARTTLS sink wants the upgrade before credentials.
    allowInsecureAuth: tlsMode === 'none',
    ...(options.size === undefined ? {} : { size: options.size }),

    onConnect(session, callback) {
      const hook = sink.behavior.connect;
      answer(hook && ask('connect', () => hook(sinkSession(session))), 'connect', callback);
    },

    onAuth(auth, session, callback) {
      const user = auth.username ?? '';
      const hook = sink.behavior.auth;
      const reply = hook && ask('auth', () => hook(user, sinkSession(session), auth.password ?? ''));
      if (reply && reply.code >= 400) {
        stats.rejected++;
        callback(smtpError(reply, 'auth'));
        return;
      }
      if (!credentials || user !== credentials.user || auth.password !== credentials.pass) {
        callback(smtpError({ code: 535, message: '5.7.8 Authentication credentials invalid' }, 'auth'));
        return;
      }
      callback(null, { user });
    },

    onClose() {
      stats.closed++;
      if (stats.closed >= stats.connections) for (const idle of [...idleWaiters]) idle();
    },

    onMailFrom(address, session, callback) {
      const hook = sink.behavior.mailFrom;
      answer(hook && ask('mailFrom', () => hook(address.address, sinkSession(session))), 'mailFrom', callback);
    },

    onRcptTo(address, session, callback) {
      const hook = sink.behavior.rcptTo;
      answer(hook && ask('rcptTo', () => hook(address.address, sinkSession(session))), 'rcptTo', callback);
    },

    onData(stream, session, callback) {
      // smtp-server resets the envelope as soon as we answer, so take it while the transaction is still open.
      const mailFrom = session.envelope.mailFrom;
      const envelope = { from: mailFrom ? mailFrom.address : '', to: session.envelope.rcptTo.map((rcpt) => rcpt.address) };
      const context = sinkSession(session);
      readAll(stream).then(
        async (raw) => {
          if (stream.sizeExceeded) {
            // smtp-server answers 552 itself whatever we say; the message was not accepted, so it is not kept.
            callback(smtpError({ code: 552, message: `message exceeds the sink's SIZE limit of ${String(options.size)} bytes` }, 'data'));
            return;
          }
          let message: ReceivedMessage;
          try {
            message = await toReceivedMessage(raw, envelope, context, parse);
          } catch (error) {
            // mailparser accepts nearly any bytes, so a failure here is a broken environment, not a strange message;
            // answering 451 makes it visible in the test that sent it instead of leaving a message with no fields.
            const reason = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ');
            callback(smtpError({ code: 451, message: `4.3.0 the dev sink could not parse the message: ${reason}` }, 'data'));
            return;
          }
          const hook = sink.behavior.data;
          const action = hook && ask('data', () => hook(message, context));
          if (action === 'hang') {
            // Deliberately never calling back: the client's only way out is its own timeout, as with a stuck server.
            record(message);
            return;
          }
          if (action === 'drop') {
            record(message);
            dropConnection(server, session);
            return;
          }
          if (action && action.code >= 400) {
            stats.rejected++;
            callback(smtpError(action, 'data'));
            return;
          }
          // Recorded before the reply goes out, so a client that saw 250 always finds its message in the sink.
          record(message);
          stats.messages++;
          callback(null, action?.message);
        },
        () => {
          // The client went away mid-message; there is no one to answer and nothing complete to keep.
        },
      );
    },
  };

  const server = new SMTPServer(serverOptions);
  countQuits(server, stats);
  // smtp-server re-emits client socket errors (resets from clients that time out on a hung sink, TLS failures) on
  // the server; unhandled they would crash the test process, and every one of them is the client's to report.
  server.on('error', () => undefined);

  // Implicit TLS is terminated by Node's tls.Server, which hands smtp-server sockets that are already secure.
  // smtp-server's own implicit-TLS listener calls getProtocol() on a TLS socket whose handshake ended because the
  // socket beneath it closed, and on Node 20 that segfaults (SSL_get_version on a freed SSL). Its close() closes
  // exactly such sockets when a client has just connected, and a segfault takes the whole test worker down.
  const listener: Server =
    tlsMode === 'implicit'
      ? tls.createServer({ key: testCertificate.key, cert: testCertificate.cert }, (secureSocket) => server.connect(secureSocket))
      : server.server;
  listener.on('connection', (socket: Socket) => {
    stats.connections++;
    // STARTTLS strips every listener from the plain socket, a 'close' listener of ours included, so the set is
    // pruned here instead.
    for (const known of sockets) if (known.destroyed) sockets.delete(known);
    sockets.add(socket);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    listener.once('error', onError);
    listener.listen(0, HOST, () => {
      listener.off('error', onError);
      resolve();
    });
  });
  const address = listener.address();
  if (!address || typeof address === 'string') throw new Error('startSmtpSink: the server is not listening on a TCP port.');
  const port = address.port;

  const sink: SmtpSink = {
    host: HOST,
    port,
    secure: tlsMode === 'implicit',
    certificate: testCertificate.cert,
    messages,
    behavior: options.behavior ?? {},
    stats,

    serverConfig(overrides = {}) {
      return {
        host: HOST,
        port,
        secure: tlsMode === 'implicit',
        ...(tlsMode === 'implicit' ? {} : { starttls: tlsMode === 'starttls' ? ('required' as const) : ('disabled' as const) }),
        ...(credentials ? { auth: { ...credentials } } : {}),
        tls: { ca: testCertificate.cert, servername: 'localhost' },
        ...overrides,
      };
    },

    waitForMessages(count, timeoutMs = 5000) {
      if (receivedSinceClear >= count) return Promise.resolve([...messages]);
      if (closing) return Promise.reject(new Error(`waitForMessages(${count}): the sink is closed; ${receivedSinceClear} message(s) arrived.`));
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          count,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(waiter);
            reject(
              new Error(
                `waitForMessages(${count}): only ${receivedSinceClear} message(s) arrived within ${timeoutMs} ms ` +
                  `(counting since start or the last clear()).`,
              ),
            );
          }, timeoutMs),
        };
        waiters.add(waiter);
      });
    },

    waitForIdle(timeoutMs = 8000) {
      if (stats.closed >= stats.connections) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          idleWaiters.delete(done);
          resolve();
        };
        const timer = setTimeout(() => {
          idleWaiters.delete(done);
          reject(new Error(`waitForIdle: ${stats.connections - stats.closed} of ${stats.connections} connection(s) still open after ${timeoutMs} ms.`));
        }, timeoutMs);
        idleWaiters.add(done);
      });
    },

    clear() {
      messages.length = 0;
      receivedSinceClear = 0;
    },

    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const waiter of waiters) {
          clearTimeout(waiter.timer);
          waiter.reject(new Error(`waitForMessages(${waiter.count}): the sink was closed after ${receivedSinceClear} message(s).`));
        }
        waiters.clear();
        // Not smtp-server's close(): it gives clients 30 s to say QUIT, and a hung client never will. Closing the
        // listener resolves once every socket is gone, so they are destroyed here, TLS sockets before the plain
        // sockets under them.
        listener.close(() => resolve());
        for (const connection of server.connections) connection._socket.destroy();
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
  return sink;
}

/**
 * smtp-server has no hook for QUIT, so each new connection's QUIT handler is wrapped to count it: that is how a test
 * learns that a client closed politely rather than just dropping the socket.
 */
function countQuits(server: SMTPServer, stats: { quits: number }): void {
  type Connection = { handler_QUIT: (command: unknown, callback: () => void) => void };
  const internals = server as unknown as { connect(socket: unknown, options: unknown): void; connections: Set<Connection> };
  const connect = internals.connect.bind(server);
  internals.connect = (socket, options) => {
    const before = new Set(internals.connections);
    connect(socket, options);
    for (const connection of internals.connections) {
      if (before.has(connection)) continue;
      const quit = connection.handler_QUIT.bind(connection);
      connection.handler_QUIT = (command, callback) => {
        stats.quits++;
        quit(command, callback);
      };
    }
  };
}

function isReply(value: unknown): value is SinkReply {
  return typeof value === 'object' && value !== null && 'code' in value;
}

function smtpError(reply: SinkReply, hook: keyof SinkBehavior): Error {
  const error = new Error(reply.message ?? `Refused by the dev sink (behavior.${hook})`) as Error & { responseCode: number };
  error.responseCode = reply.code;
  return error;
}

function sinkSession(session: SMTPServerSession): SinkSession {
  return {
    id: session.id,
    remoteAddress: session.remoteAddress,
    secure: session.secure,
    user: typeof session.user === 'string' ? session.user : undefined,
  };
}

function readAll(stream: SMTPServerDataStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
    });
    stream.once('end', () => resolve(Buffer.concat(chunks, length)));
    stream.once('error', reject);
    // smtp-server destroys the stream without an error when nobody listens for one; 'close' before 'end' means that.
    stream.once('close', () => reject(new Error('the connection closed before the final dot')));
  });
}

/**
 * The data stream carries no reference to its socket, but the session id is the connection's id, and smtp-server
 * keeps its live connections in `server.connections`. `_socket` is the topmost socket (the TLS one after STARTTLS).
 */
function dropConnection(server: SMTPServer, session: SMTPServerSession): void {
  for (const connection of server.connections) {
    if (connection.id === session.id) {
      connection._socket.destroy();
      return;
    }
  }
}

async function toReceivedMessage(
  raw: Buffer,
  envelope: ReceivedMessage['envelope'],
  session: SinkSession,
  parse: boolean,
): Promise<ReceivedMessage> {
  const base: ReceivedMessage = {
    envelope,
    raw,
    subject: undefined,
    from: undefined,
    to: undefined,
    cc: undefined,
    messageId: undefined,
    headers: new Map(),
    text: undefined,
    html: undefined,
    attachments: [],
    secure: session.secure,
    user: session.user,
    receivedAt: new Date(),
  };
  if (!parse) return base;
  // The skip options keep the parts as sent: no text derived from HTML, no links rewritten, no cid: images inlined.
  const parsed: ParsedMail = await simpleParser(raw, {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipTextLinks: true,
    skipImageLinks: true,
  });
  return {
    ...base,
    subject: parsed.subject,
    from: parsed.from?.text,
    to: addressText(parsed.to),
    cc: addressText(parsed.cc),
    messageId: parsed.messageId,
    headers: parsed.headers,
    // With skipHtmlToText mailparser reports an HTML-only message's text as ''.
    text: parsed.text || undefined,
    html: parsed.html === false ? undefined : parsed.html,
    attachments: parsed.attachments.map((attachment) => ({
      filename: attachment.filename,
      contentType: attachment.contentType,
      content: attachment.content,
      size: attachment.size,
    })),
  };
}

function addressText(value: AddressObject | AddressObject[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.map((address) => address.text).join(', ') : value.text;
}
