import { createMailer, defineTool, type Mailer, type MailTool, type ToolContext } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { AIMessage, ToolMessage } from '@langchain/core/messages';
import { fakeModel } from '@langchain/core/testing';
import { createAgent } from 'langchain';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod/v4';
import { createLangChainTools } from './create-langchain-tools.js';

let sink: SmtpSink;
let mailer: Mailer;
beforeEach(async () => {
  sink = await startSmtpSink();
  mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, env: {} });
});
afterEach(async () => {
  await mailer.close();
  await sink.close();
});

/** A tool that keeps the context each call received; `during` runs inside the call, while the framework waits on it. */
function recordingTool(during?: (context: ToolContext) => void): { tool: MailTool; received: ToolContext[] } {
  const received: ToolContext[] = [];
  const tool = defineTool({
    name: 'record_context',
    title: 'Record context',
    description: 'Records what the adapter passed.',
    inputSchema: z.strictObject({ note: z.string() }),
    outputSchema: z.object({ recorded: z.boolean() }),
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    async execute(_input, context) {
      received.push(context!);
      during?.(context!);
      return { ok: true, value: { recorded: true } };
    },
  });
  return { tool: tool as unknown as MailTool, received };
}

describe('createLangChainTools in a LangChain agent (createAgent, scripted model from @langchain/core/testing)', () => {
  it('sends the email the model asks for and returns a success ToolMessage to the model', async () => {
    const model = fakeModel()
      .respondWithTools([{ name: 'send_email', id: 'call_a1', args: { to: 'Ada <ada@example.com>', subject: 'Lunch?', body: 'Lunch at {time}?', variables: { time: '12:30' } } }])
      .respond(new AIMessage('I emailed Ada.'));
    const agent = createAgent({ model, tools: createLangChainTools(mailer) });
    const { messages } = await agent.invoke({ messages: [{ role: 'user', content: 'Ask Ada to lunch' }] });
    expect(messages.at(-1)!.content).toBe('I emailed Ada.');
    const [received] = await sink.waitForMessages(1);
    expect(received!.subject).toBe('Lunch?');
    expect(received!.text?.trim()).toBe('Lunch at 12:30?');
    expect(received!.envelope.to).toEqual(['ada@example.com']);

    // What the model was given back on its second turn.
    const toolMessage = model.calls[1]!.messages.at(-1) as ToolMessage;
    expect(ToolMessage.isInstance(toolMessage)).toBe(true);
    expect(toolMessage).toMatchObject({ tool_call_id: 'call_a1', name: 'send_email', status: 'success' });
    expect(JSON.parse(toolMessage.content as string)).toMatchObject({ status: 'sent', accepted: ['ada@example.com'], replayed: false });
    expect(toolMessage.artifact).toMatchObject({ status: 'sent' });
  });

  it('returns an error ToolMessage the model can act on when the server refuses the recipient', async () => {
    sink.behavior.rcptTo = () => ({ code: 550, message: '5.1.1 Mailbox unknown' });
    const model = fakeModel()
      .respondWithTools([{ name: 'send_email', id: 'call_b1', args: { to: 'ghost@example.com', subject: 's', body: 'b' } }])
      .respond(new AIMessage('It bounced.'));
    const agent = createAgent({ model, tools: createLangChainTools(mailer) });
    await agent.invoke({ messages: [{ role: 'user', content: 'write to ghost' }] });
    const toolMessage = model.calls[1]!.messages.at(-1) as ToolMessage;
    expect(toolMessage.status).toBe('error');
    expect(toolMessage.content).toContain('SMTP_REJECTED');
    expect(toolMessage.content).toContain('5.1.1 Mailbox unknown');
    expect(toolMessage.content).toContain('Do not retry');
    expect(sink.messages).toHaveLength(0);
  });

  it('sends once when the framework retries the same tool call', async () => {
    const tools = createLangChainTools(mailer);
    const call = { id: 'call_c1', name: 'send_email', args: { to: 'ada@example.com', subject: 'Once', body: 'x' }, type: 'tool_call' as const };
    const first = (await tools[0]!.invoke(call)) as ToolMessage;
    const retry = (await tools[0]!.invoke(call)) as ToolMessage;
    expect(JSON.parse(retry.content as string)).toMatchObject({ id: JSON.parse(first.content as string).id, replayed: true });
    // Nothing else arrived: counted once the mailer closed its connections and the sink saw each one close.
    await mailer.close();
    await sink.waitForIdle();
    expect(sink.messages).toHaveLength(1);
  });

  it('returns plain text when invoked directly with arguments', async () => {
    const status = createLangChainTools(mailer, { include: ['get_smtp_status'] })[0]!;
    const text = await status.invoke({});
    expect(JSON.parse(text as string)).toMatchObject({ servers: [{ name: 'sink', state: 'healthy' }] });
  });

  it('passes the tool call’s id and the run’s signal to execute', async () => {
    const controller = new AbortController();
    const seen: boolean[] = [];
    // The user cancels the run while the tool is still working: the signal execute holds must say so at once.
    const { tool: recorder, received } = recordingTool((context) => {
      seen.push(context.signal!.aborted);
      controller.abort();
      seen.push(context.signal!.aborted);
    });
    const model = fakeModel()
      .respondWithTools([{ name: 'record_context', id: 'call_ctx1', args: { note: 'x' } }])
      .respond(new AIMessage('Recorded.'));
    const agent = createAgent({ model, tools: createLangChainTools([recorder]) });
    const run = await agent.invoke({ messages: [{ role: 'user', content: 'record' }] }, { signal: controller.signal }).then(
      () => 'finished',
      (err: unknown) => err,
    );
    expect(run).not.toBe('finished');
    expect(received).toHaveLength(1);
    expect(received[0]!.toolCallId).toBe('call_ctx1');
    expect(received[0]!.signal).toBeInstanceOf(AbortSignal);
    expect(seen).toEqual([false, true]);
  });
});

describe('createLangChainTools: a send the agent’s policy holds for approval', () => {
  it('reaches the model as a success ToolMessage saying it awaits a human, with the id; nothing is sent', async () => {
    await mailer.close();
    mailer = createMailer({
      servers: [sink.serverConfig({ name: 'sink' })],
      defaults: { from: 'agent@example.com' },
      policy: { recipients: { allow: ['@example.com', '@partner.test'] }, approval: { outside: ['@example.com'] } },
      env: {},
    });
    const model = fakeModel()
      .respondWithTools([{ name: 'send_email', id: 'call_held', args: { to: 'grace@partner.test', subject: 'Proposal', body: 'Here it is.' } }])
      .respond(new AIMessage('The email awaits approval.'));
    const agent = createAgent({ model, tools: createLangChainTools(mailer) });
    await agent.invoke({ messages: [{ role: 'user', content: 'Send Grace the proposal' }] });
    const toolMessage = model.calls[1]!.messages.at(-1) as ToolMessage;
    expect(toolMessage).toMatchObject({ tool_call_id: 'call_held', name: 'send_email', status: 'success' });
    const value = JSON.parse(toolMessage.content as string) as { id: string; status: string; note: string; approval: { reason: string } };
    expect(value).toMatchObject({ status: 'pending_approval', id: expect.stringMatching(/^msg_/), approval: { reason: expect.stringContaining('grace@partner.test') } });
    expect(value.note).toContain('Do not send it again');
    expect((await mailer.listPending()).map((p) => p.id)).toEqual([value.id]);
    await mailer.close();
    await sink.waitForIdle();
    expect(sink.stats.connections).toBe(0);
  });
});
