/** Time of the first zod-to-JSON-Schema conversion of every tool against the client's first Ajv compile. */
import { createMailer, createMailTools, MemoryStore } from '@agent-smtp/core';
import { z } from 'zod/v4';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv-provider.js';

const mailer = createMailer({ servers: [{ host: '127.0.0.1', port: 2525, starttls: 'disabled' }], store: new MemoryStore(), defaults: { from: 'b@example.com' }, env: {} });
let t = performance.now();
const tools = createMailTools(mailer, {});
const create = performance.now() - t;
t = performance.now();
const out = tools.map((tool) => ({ i: z.toJSONSchema(tool.inputSchema, { target: 'draft-7', io: 'input' }), o: z.toJSONSchema(tool.outputSchema, { target: 'draft-7', io: 'output' }) }));
const convert = performance.now() - t;
t = performance.now();
tools.map((tool) => ({ i: z.toJSONSchema(tool.inputSchema, { target: 'draft-7', io: 'input' }), o: z.toJSONSchema(tool.outputSchema, { target: 'draft-7', io: 'output' }) }));
const convert2 = performance.now() - t;
const v = new AjvJsonSchemaValidator();
t = performance.now();
for (const x of out) v.getValidator(x.o as never);
const ajv = performance.now() - t;
t = performance.now();
for (const x of out) v.getValidator(x.o as never);
const ajv2 = performance.now() - t;
console.log({ tools: tools.length, createMailTools_ms: create.toFixed(1), convert_first_ms: convert.toFixed(1), convert_again_ms: convert2.toFixed(1), ajv_first_ms: ajv.toFixed(1), ajv_again_ms: ajv2.toFixed(1) });
await mailer.close();
