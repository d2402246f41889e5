import type { Readable, Writable } from 'node:stream';
import { Transform, type TransformCallback } from 'node:stream';
import { DEFAULT_LIMITS, formatToolError } from '@agent-smtp/core';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

export interface StdioTransportOptions {
  /**
   * The mailer's `limits.maxMessageBytes`: the request size limit is derived from it (`maxRequestBytesFor`), so that
   * every email the mailer would accept also fits in one stdio message. Default: `DEFAULT_LIMITS.maxMessageBytes`.
   */
  maxMessageBytes?: number;
  /** Largest JSON-RPC message read from stdin (one line, newline included). Default: `maxRequestBytesFor(maxMessageBytes)`. */
  maxRequestBytes?: number;
  /** Default: `process.stdin`. */
  stdin?: Readable;
  /** Default: `process.stdout`. */
  stdout?: Writable;
}

/**
 * The largest MCP request that can carry an email of `maxMessageBytes`: attachments travel base64-encoded (a third
 * more), JSON escaping can double text (quotes, backslashes, line breaks), and addresses, subject and the JSON-RPC
 * envelope need a little more. For the default 10 MiB messages this is about 20 MiB.
 */
export function maxRequestBytesFor(maxMessageBytes: number): number {
  return 2 * maxMessageBytes + ENVELOPE_BYTES;
}

const ENVELOPE_BYTES = 64 * 1024;
/** How much of an oversized line is kept to find its id and method: they sit at its start or its end. */
const KEEP_BYTES = 4 * 1024;

/**
 * `StdioServerTransport` with a request size limit that agrees with the mailer's message limit, and that answers a
 * request over it instead of dying.
 *
 * The SDK's own transport buffers stdin until a newline and, from 1.32, closes itself when that buffer passes
 * 10 MB: an email with an 8 MiB attachment (under the 10 MiB message limit) made the server stop reading, answer
 * nothing more and never exit. Here a line guard in front of it reads each line in bounded memory: a line within
 * `maxRequestBytes` goes to the SDK in one piece (whose buffer limit is raised to match, so it never trips), and a
 * longer one is dropped while being read, keeping only its first and last bytes to find the request's id. That
 * request gets an answer (for `tools/call`, an error result the model can act on). A request whose id cannot be
 * found cannot be answered, and the client would wait for it forever: the transport then closes with `failure`
 * set, and `agent-smtp-mcp` exits with that reason.
 */
export class AgentSmtpStdioTransport extends StdioServerTransport {
  /** Why the transport closed on its own (set before `onclose` runs); undefined after an ordinary `close()`. */
  failure: Error | undefined;
  readonly maxRequestBytes: number;
  private readonly input: Readable;
  private readonly guard: JsonRpcLineGuard;
  private readonly maxMessageBytes: number;

  constructor(options: StdioTransportOptions = {}) {
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_LIMITS.maxMessageBytes;
    const maxRequestBytes = options.maxRequestBytes ?? maxRequestBytesFor(maxMessageBytes);
    if (!Number.isSafeInteger(maxRequestBytes) || maxRequestBytes < 1024) {
      throw new RangeError(`maxRequestBytes is ${String(maxRequestBytes)} but must be a whole number of bytes, at least 1024.`);
    }
    const guard = new JsonRpcLineGuard(maxRequestBytes);
    // The guard hands the SDK one whole line at a time, so its buffer never holds more than one line.
    super(guard, options.stdout ?? process.stdout, { maxBufferSize: maxRequestBytes + 1 });
    this.guard = guard;
    this.input = options.stdin ?? process.stdin;
    this.maxRequestBytes = maxRequestBytes;
    this.maxMessageBytes = maxMessageBytes;
    guard.onOversized = (line) => this.refuse(line);
    (options.stdout ?? process.stdout).on('error', (err: Error) => this.fail(new Error(`cannot write to stdout: ${err.message}`)));
  }

  override async start(): Promise<void> {
    await super.start();
    this.input.on('error', this.onInputError);
    this.input.pipe(this.guard);
  }

  override async close(): Promise<void> {
    this.input.unpipe(this.guard);
    this.input.off('error', this.onInputError);
    await super.close();
  }

  private readonly onInputError = (err: Error): void => this.fail(new Error(`cannot read stdin: ${err.message}`));

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.onerror?.(error);
    void this.close();
  }

  private refuse(line: OversizedLine): void {
    const { id, method } = readEnvelope(line);
    const what = `a ${formatBytes(line.bytes)} message on stdin, over the ${formatBytes(this.maxRequestBytes)} limit for one message`;
    if (id === undefined) {
      if (method?.startsWith('notifications/')) {
        this.onerror?.(new Error(`Dropped ${what} (notification ${method}).`));
        return;
      }
      this.fail(new Error(`received ${what}, and could not read its id to answer it; stopping so the client does not wait forever`));
      return;
    }
    this.onerror?.(new Error(`Refused ${what} (${method ?? 'unknown method'}, id ${JSON.stringify(id)}).`));
    void this.send(method === 'tools/call' ? this.toolError(id, line.bytes) : protocolError(id, `Request refused: it is ${what}.`));
  }

  /** A `tools/call` over the limit is almost always an email with large attachments: say so, in the tool's terms. */
  private toolError(id: string | number, bytes: number): JSONRPCMessage {
    const text = formatToolError({
      code: 'VALIDATION_ERROR',
      field: 'attachments',
      message:
        `The request is ${formatBytes(bytes)}, over the ${formatBytes(this.maxRequestBytes)} this server reads in one call, so it was not read. ` +
        `Emails may be up to ${formatBytes(this.maxMessageBytes)} of text and files; attachments count a third more in content_base64.`,
      retryable: false,
      hint: 'Nothing was sent. Send smaller or fewer attachments (or a link to the files instead) and call the tool again.',
    });
    return { jsonrpc: '2.0', id, result: { isError: true, content: [{ type: 'text', text }] } };
  }
}

/** `new AgentSmtpStdioTransport(options)`: pass it to `server.connect()`. */
export function createStdioServerTransport(options: StdioTransportOptions = {}): AgentSmtpStdioTransport {
  return new AgentSmtpStdioTransport(options);
}

interface OversizedLine {
  bytes: number;
  head: Buffer;
  tail: Buffer;
}

/**
 * Splits stdin into lines and passes each whole line on, in one chunk; a line longer than `maxLineBytes` is not
 * passed on but reported, and only its first and last `KEEP_BYTES` are kept while the rest streams past.
 */
class JsonRpcLineGuard extends Transform {
  onOversized: (line: OversizedLine) => void = () => {};
  private parts: Buffer[] = [];
  private size = 0;
  private head: Buffer | undefined;
  private tail = Buffer.alloc(0);

  constructor(private readonly maxLineBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let start = 0;
    for (let newline = chunk.indexOf(0x0a); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
      this.addToLine(chunk.subarray(start, newline + 1));
      this.endLine();
      start = newline + 1;
    }
    if (start < chunk.length) this.addToLine(chunk.subarray(start));
    done();
  }

  private addToLine(part: Buffer): void {
    this.size += part.length;
    if (this.head) {
      this.tail = part.length >= KEEP_BYTES ? Buffer.from(part.subarray(-KEEP_BYTES)) : Buffer.concat([this.tail, part]).subarray(-KEEP_BYTES);
      return;
    }
    this.parts.push(part);
    if (this.size > this.maxLineBytes) {
      const seen = Buffer.concat(this.parts);
      this.head = Buffer.from(seen.subarray(0, KEEP_BYTES));
      this.tail = Buffer.from(seen.subarray(-KEEP_BYTES));
      this.parts = [];
    }
  }

  private endLine(): void {
    if (this.head) this.onOversized({ bytes: this.size, head: this.head, tail: this.tail });
    else this.push(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts));
    this.parts = [];
    this.size = 0;
    this.head = undefined;
    this.tail = Buffer.alloc(0);
  }
}

const STRING = String.raw`"(?:[^"\\]|\\.)*"`;
const KEY = new RegExp(String.raw`\s*(${STRING})\s*:\s*`, 'y');
const PRIMITIVE = new RegExp(String.raw`(${STRING}|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)\s*([,}])`, 'y');
// Anchored at the end with a single brace, so the id found is the top-level object's last member, not a nested one's.
const TAIL_ID = new RegExp(String.raw`,\s*"id"\s*:\s*(-?\d+|${STRING})\s*\}\s*$`);

/**
 * The JSON-RPC id and method of a line too long to parse, from its first and last bytes. Clients write the id and
 * method as top-level members before `params` (`{"jsonrpc","id","method",…}`) or the id after it (the TypeScript
 * SDK: `{"method","params","jsonrpc","id"}`). The leading members are read one by one up to the first object or
 * array; the last member only when it is `"id"`.
 */
export function readEnvelope(line: { head: Buffer; tail: Buffer }): { id?: string | number; method?: string } {
  const members = leadingMembers(line.head.toString('utf8'));
  let id = members.get('id');
  if (id === undefined) {
    const match = TAIL_ID.exec(line.tail.toString('utf8'));
    if (match) id = JSON.parse(match[1]!) as unknown;
  }
  const method = members.get('method');
  return {
    ...(typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? { id } : {}),
    ...(typeof method === 'string' ? { method } : {}),
  };
}

function leadingMembers(text: string): Map<string, unknown> {
  const members = new Map<string, unknown>();
  const open = /^\s*\{/.exec(text);
  if (!open) return members;
  let at = open[0].length;
  for (;;) {
    KEY.lastIndex = at;
    const key = KEY.exec(text);
    if (!key) break;
    PRIMITIVE.lastIndex = KEY.lastIndex;
    const value = PRIMITIVE.exec(text);
    if (!value) break;
    members.set(JSON.parse(key[1]!) as string, JSON.parse(value[1]!) as unknown);
    if (value[2] === '}') break;
    at = PRIMITIVE.lastIndex;
  }
  return members;
}

function protocolError(id: string | number, message: string): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: { code: -32600, message } };
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}
