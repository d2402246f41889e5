import { describe, expect, it } from 'vitest';
import { maxRequestBytesFor, readEnvelope } from './stdio-transport.js';

/** The first and last 4 KiB of a line, as the transport keeps them of a line too long to read. */
function ends(line: string): { head: Buffer; tail: Buffer } {
  const bytes = Buffer.from(line);
  return { head: bytes.subarray(0, 4096), tail: bytes.subarray(-4096) };
}

const big = 'A'.repeat(50_000);
const params = `{"name":"send_email","arguments":{"to":"ada@example.com","attachments":[{"filename":"a","content_base64":"${big}"}]}}`;

describe('readEnvelope', () => {
  // Each shape a client may write, with the id and method that answer must carry (or none when it cannot be known).
  const corpus: [string, string, { id?: string | number; method?: string }][] = [
    ['TypeScript SDK order: method, params, jsonrpc, id', `{"method":"tools/call","params":${params},"jsonrpc":"2.0","id":7}\n`, { id: 7, method: 'tools/call' }],
    ['Python SDK order: jsonrpc, id, method, params', `{"jsonrpc":"2.0","id":"req-1","method":"tools/call","params":${params}}`, { id: 'req-1', method: 'tools/call' }],
    ['whitespace and CRLF', ` { "jsonrpc" : "2.0" , "method" : "tools/call" , "params" : ${params} , "id" : 12 }\r\n`, { id: 12, method: 'tools/call' }],
    ['an escaped quote in a string id', `{"jsonrpc":"2.0","method":"tools/call","params":${params},"id":"a\\"b"}`, { id: 'a"b', method: 'tools/call' }],
    ['a notification (no id)', `{"jsonrpc":"2.0","method":"notifications/message","params":${params}}`, { method: 'notifications/message' }],
    ['an "id" nested in params is not the request id', `{"jsonrpc":"2.0","method":"tools/call","params":{"id":5,"blob":"${big}"}}`, { method: 'tools/call' }],
    ['an id in the middle cannot be found', `{"jsonrpc":"2.0","method":"tools/call","params":${params},"id":3,"meta":{"x":"${big}"}}`, { method: 'tools/call' }],
    ['"id" text inside a string is not an id', `{"method":"tools/call","params":{"text":"${big}, \\"id\\": 9}"}}`, { method: 'tools/call' }],
    ['not JSON', 'x'.repeat(60_000), {}],
    ['an id that is not a string or number', `{"jsonrpc":"2.0","id":true,"method":"tools/call","params":${params}}`, { method: 'tools/call' }],
  ];

  it.each(corpus)('%s', (_, line, expected) => {
    expect(readEnvelope(ends(line))).toEqual(expected);
  });

  it('reads the kept 4 KiB ends of adversarial lines promptly', () => {
    const hostile = ['"'.repeat(4096), `{${'"a":'.repeat(1000)}`, `,"id":"${'\\'.repeat(4000)}`, ' '.repeat(4096), `{"id":${'9'.repeat(4090)}`];
    const started = performance.now();
    for (const text of hostile) readEnvelope({ head: Buffer.from(text), tail: Buffer.from(text) });
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('maxRequestBytesFor', () => {
  it('leaves room for base64 attachments and JSON escaping of a message at the limit', () => {
    const limit = 10 * 1024 * 1024;
    const base64OfLimit = Math.ceil(limit / 3) * 4;
    expect(maxRequestBytesFor(limit)).toBeGreaterThan(base64OfLimit + 64 * 1024);
    expect(maxRequestBytesFor(limit)).toBeGreaterThan(2 * limit);
  });
});
