import { createMailer, createMailTools, type Mailer } from '@agent-smtp/core';
import { createAiSdkTools } from '@agent-smtp/ai-sdk';
import { createLangChainTools } from '@agent-smtp/langchain';
import { createMcpServer } from '@agent-smtp/mcp';
import { convertToOpenAITool } from '@langchain/core/utils/function_calling';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { asSchema } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

type Described = { name: string; description: string; inputSchema: unknown };

// `$schema` names the draft each framework writes against; the schema itself is what must match.
const normalize = (schema: unknown): unknown => {
  const { $schema: _ignored, ...rest } = schema as Record<string, unknown>;
  return JSON.parse(JSON.stringify(rest));
};
const byName = (list: Described[]): Record<string, Described> =>
  Object.fromEntries(list.map((t) => [t.name, { ...t, inputSchema: normalize(t.inputSchema) }]));

describe('adapter parity', () => {
  let mailer: Mailer;
  let client: Client;
  let views: Record<'core' | 'mcp' | 'aiSdk' | 'langchain', Record<string, Described>>;

  beforeAll(async () => {
    mailer = createMailer({ servers: [{ host: '127.0.0.1', port: 2525 }], defaults: { from: 'agent@example.com' }, env: {} });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    client = new Client({ name: 'parity', version: '1.0.0' });
    await createMcpServer({ mailer }).connect(serverSide);
    await client.connect(clientSide);
    const { tools: mcpTools } = await client.listTools();
    const aiSdk = createAiSdkTools(mailer);
    views = {
      core: byName(createMailTools(mailer).map((t) => ({ name: t.name, description: t.description, inputSchema: asSchema(t.inputSchema).jsonSchema }))),
      mcp: byName(mcpTools.map((t) => ({ name: t.name, description: t.description ?? '', inputSchema: t.inputSchema }))),
      aiSdk: byName(
        await Promise.all(
          Object.entries(aiSdk).map(async ([name, t]) => ({ name, description: t.description ?? '', inputSchema: await asSchema(t.inputSchema).jsonSchema })),
        ),
      ),
      langchain: byName(
        createLangChainTools(mailer).map((t) => {
          const fn = convertToOpenAITool(t).function;
          return { name: fn.name, description: fn.description ?? '', inputSchema: fn.parameters };
        }),
      ),
    };
  });
  afterAll(async () => {
    await client?.close();
    await mailer?.close();
  });

  it('exposes the same tool names everywhere', () => {
    const names = Object.keys(views.core).sort();
    expect(names).toHaveLength(8);
    for (const view of [views.mcp, views.aiSdk, views.langchain]) expect(Object.keys(view).sort()).toEqual(names);
  });

  it.each(['mcp', 'aiSdk', 'langchain'] as const)('%s shows the models the same descriptions and input JSON Schemas', (adapter) => {
    for (const [name, tool] of Object.entries(views.core)) {
      expect(views[adapter][name]!.description, name).toBe(tool.description);
      expect(views[adapter][name]!.inputSchema, name).toEqual(tool.inputSchema);
    }
  });

  it('describes send_email’s input fully (required fields, enums, descriptions)', () => {
    const schema = views.mcp.send_email!.inputSchema as { required: string[]; properties: Record<string, { description?: string; enum?: string[] }> };
    expect(schema.required.sort()).toEqual(['body', 'subject', 'to']);
    expect(schema.properties.format!.enum).toEqual(['text', 'html', 'markdown']);
    for (const [field, property] of Object.entries(schema.properties)) expect(property.description, field).toBeTruthy();
  });
});
