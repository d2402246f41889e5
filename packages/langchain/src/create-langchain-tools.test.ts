import { createMailer, type Mailer } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/core/testing';
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { AIMessage, type BaseMessage, HumanMessage, ToolMessage } from '@langchain/core/messages';
import type { ChatResult } from '@langchain/core/outputs';
import type { DynamicStructuredTool } from '@langchain/core/tools';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLangChainTools } from './create-langchain-tools.js';

/** A chat model that answers with a script of messages, in order, and records what it was sent. */
class ScriptedChatModel extends BaseChatModel {
  readonly received: BaseMessage[][] = [];
  boundTools: DynamicStructuredTool[] = [];
  constructor(private readonly script: AIMessage[]) {
    super({});
  }
  _llmType(): string {
    return 'scripted';
  }
  override bindTools(tools: DynamicStructuredTool[]) {
    this.boundTools = tools;
    return this;
  }
  async _generate(messages: BaseMessage[]): Promise<ChatResult> {
    this.received.push([...messages]);
    const message = this.script.shift() ?? new AIMessage('(script ended)');
    return { generations: [{ text: typeof message.content === 'string' ? message.content : '', message }] };
  }
}

/** The usual tool-calling loop: call the model, run the tools it asks for, hand back ToolMessages, repeat. */
async function runAgent(model: ScriptedChatModel, tools: DynamicStructuredTool[], prompt: string): Promise<BaseMessage[]> {
  const bound = model.bindTools(tools);
  const messages: BaseMessage[] = [new HumanMessage(prompt)];
  for (let turn = 0; turn < 5; turn++) {
    const reply = (await bound.invoke(messages)) as AIMessage;
    messages.push(reply);
    if (!reply.tool_calls?.length) return messages;
    for (const call of reply.tool_calls) {
      const target = tools.find((t) => t.name === call.name)!;
      messages.push((await target.invoke({ ...call, type: 'tool_call' })) as ToolMessage);
    }
  }
  throw new Error('agent did not finish');
}

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

const sendCall = (id: string, args: Record<string, unknown>) =>
  new AIMessage({ content: '', tool_calls: [{ id, name: 'send_email', args, type: 'tool_call' }] });

describe('createLangChainTools in an agent loop', () => {
  it('sends the email the model asks for and returns a success ToolMessage to the model', async () => {
    const model = new ScriptedChatModel([
      sendCall('call_a1', { to: 'Ada <ada@example.com>', subject: 'Lunch?', body: 'Lunch at {time}?', variables: { time: '12:30' } }),
      new AIMessage('I emailed Ada.'),
    ]);
    const tools = createLangChainTools(mailer);
    const transcript = await runAgent(model, tools, 'Ask Ada to lunch');
    expect(transcript.at(-1)!.content).toBe('I emailed Ada.');
    const [received] = await sink.waitForMessages(1);
    expect(received!.subject).toBe('Lunch?');
    expect(received!.text?.trim()).toBe('Lunch at 12:30?');
    expect(received!.envelope.to).toEqual(['ada@example.com']);

    const toolMessage = model.received[1]!.at(-1) as ToolMessage;
    expect(ToolMessage.isInstance(toolMessage)).toBe(true);
    expect(toolMessage).toMatchObject({ tool_call_id: 'call_a1', name: 'send_email', status: 'success' });
    expect(JSON.parse(toolMessage.content as string)).toMatchObject({ status: 'sent', accepted: ['ada@example.com'], replayed: false });
    expect(toolMessage.artifact).toMatchObject({ status: 'sent' });
    expect(model.boundTools.map((t) => t.name)).toContain('send_email');
  });

  it('returns an error ToolMessage the model can act on when the server refuses the recipient', async () => {
    sink.behavior.rcptTo = () => ({ code: 550, message: '5.1.1 Mailbox unknown' });
    const model = new ScriptedChatModel([sendCall('call_b1', { to: 'ghost@example.com', subject: 's', body: 'b' }), new AIMessage('It bounced.')]);
    await runAgent(model, createLangChainTools(mailer), 'write to ghost');
    const toolMessage = model.received[1]!.at(-1) as ToolMessage;
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
    await new Promise((r) => setTimeout(r, 100));
    expect(sink.messages).toHaveLength(1);
  });

  it('returns plain text when invoked directly with arguments', async () => {
    const status = createLangChainTools(mailer, { include: ['get_smtp_status'] })[0]!;
    const text = await status.invoke({});
    expect(JSON.parse(text as string)).toMatchObject({ servers: [{ name: 'sink', state: 'healthy' }] });
  });
});
