import { defineTool, type MailTool, type ToolContext } from '@agent-smtp/core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod/v4';
import { createMcpServer, type CreateMcpServerOptions } from './index.js';

let server: McpServer | undefined;
let client: Client | undefined;
afterEach(async () => {
  await client?.close();
  await server?.close();
  client = server = undefined;
});

/**
 * A tool that keeps the context each call received; `hold` makes a call wait until its signal aborts, the way a
 * send waits on a server that has not answered.
 */
function recordingTool(options: { hold?: boolean } = {}): { tool: MailTool; received: ToolContext[]; started: Promise<void> } {
  const received: ToolContext[] = [];
  let markStarted!: () => void;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const tool = defineTool({
    name: 'record_context',
    title: 'Record context',
    description: 'Records what the adapter passed.',
    inputSchema: z.strictObject({ note: z.string() }),
    outputSchema: z.object({ aborted: z.boolean() }),
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    async execute(_input, context) {
      received.push(context!);
      markStarted();
      if (options.hold) await new Promise((resolve) => context!.signal!.addEventListener('abort', resolve, { once: true }));
      return { ok: true, value: { aborted: context?.signal?.aborted ?? false } };
    },
  });
  return { tool: tool as unknown as MailTool, received, started };
}

/** An in-memory client whose every message carries `authInfo`, as an HTTP transport behind auth middleware gives it. */
async function connect(options: Partial<CreateMcpServerOptions>, authInfo?: AuthInfo): Promise<Client> {
  server = createMcpServer(options as CreateMcpServerOptions);
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  if (authInfo) {
    const send = clientTransport.send.bind(clientTransport);
    clientTransport.send = (message, sendOptions) => send(message, { ...sendOptions, authInfo });
  }
  client = new Client({ name: 'context-test', version: '1.0.0' });
  await Promise.all([server.connect(serverTransport), client.connect(clientTransport)]);
  return client;
}

const auth = (extra: Record<string, unknown>, clientId = 'oauth-app'): AuthInfo => ({ token: 't', clientId, scopes: [], extra });

describe('createMcpServer passes the SDK’s extra to execute', () => {
  it('signal, the JSON-RPC id (not as toolCallId), and the caller from authInfo.extra', async () => {
    const { tool, received } = recordingTool();
    const mcp = await connect({ tools: [tool] }, auth({ ownerId: 'alice', agentId: 'assistant' }));
    await mcp.callTool({ name: 'record_context', arguments: { note: 'x' } });
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ ownerId: 'alice', agentId: 'assistant' });
    expect(received[0]!.signal).toBeInstanceOf(AbortSignal);
    expect(received[0]!.requestId).toEqual(expect.any(Number));
    // A JSON-RPC id restarts at 0 per connection: as an idempotency key it would replay another email's result.
    expect(received[0]!.toolCallId).toBeUndefined();
  });

  it('no caller without authInfo, or with authInfo that names no owner (an OAuth clientId is an app, not a user)', async () => {
    const bare = recordingTool();
    await (await connect({ tools: [bare.tool] })).callTool({ name: 'record_context', arguments: { note: 'x' } });
    await client!.close();
    const appOnly = recordingTool();
    await (await connect({ tools: [appOnly.tool] }, auth({}))).callTool({ name: 'record_context', arguments: { note: 'x' } });
    for (const context of [bare.received[0]!, appOnly.received[0]!]) {
      expect(context.ownerId).toBeUndefined();
      expect(context.agentId).toBeUndefined();
    }
  });

  it('identify maps authInfo to the caller when the default does not fit', async () => {
    const { tool, received } = recordingTool();
    const mcp = await connect({ tools: [tool], identify: (info) => ({ ownerId: `tenant:${info.clientId}` }) }, auth({}, 'acme'));
    await mcp.callTool({ name: 'record_context', arguments: { note: 'x' } });
    expect(received[0]).toMatchObject({ ownerId: 'tenant:acme' });
  });

  it('a call the client cancels aborts the signal execute holds', async () => {
    const { tool, received, started } = recordingTool({ hold: true });
    const mcp = await connect({ tools: [tool] });
    const controller = new AbortController();
    const call = mcp.callTool({ name: 'record_context', arguments: { note: 'x' } }, undefined, { signal: controller.signal }).then(
      () => 'answered',
      (err: unknown) => err,
    );
    await started;
    expect(received[0]!.signal!.aborted).toBe(false);
    controller.abort('changed my mind');
    expect(await call).not.toBe('answered');
    // The cancellation travels as a notification; the held call returns once the server has aborted its signal.
    await new Promise<void>((resolve) => (received[0]!.signal!.aborted ? resolve() : received[0]!.signal!.addEventListener('abort', () => resolve(), { once: true })));
    expect(received[0]!.signal!.aborted).toBe(true);
  });
});
