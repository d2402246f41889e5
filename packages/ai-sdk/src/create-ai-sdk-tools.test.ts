import { createMailer, defineTool, type Mailer, type MailTool, type ToolContext } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import type { LanguageModelV3GenerateResult } from '@ai-sdk/provider';
import { generateText, stepCountIs } from 'ai';
import { MockLanguageModelV3 } from 'ai/test';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod/v4';
import { createAiSdkTools } from './create-ai-sdk-tools.js';

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

const usage = {
  inputTokens: { total: 10, noCache: 10, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: 5, text: 5, reasoning: 0 },
};

/** A model that asks for one tool call, then answers with text once it has the result. */
function scriptedModel(toolCallId: string, toolName: string, input: unknown): MockLanguageModelV3 {
  const steps: LanguageModelV3GenerateResult[] = [
    {
      content: [{ type: 'tool-call', toolCallId, toolName, input: JSON.stringify(input) }],
      finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
      usage,
      warnings: [],
    },
    { content: [{ type: 'text', text: 'Done: the email is on its way.' }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] },
  ];
  return new MockLanguageModelV3({ doGenerate: steps });
}

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

const email = { to: 'ada@example.com', subject: 'Meeting notes', body: '# Notes\n\n- ship it', format: 'markdown' };

describe('createAiSdkTools with generateText', () => {
  it('runs send_email from a model tool call; the email arrives and the model sees the result', async () => {
    const model = scriptedModel('call-1', 'send_email', email);
    const result = await generateText({ model, tools: createAiSdkTools(mailer), prompt: 'Send Ada the notes', stopWhen: stepCountIs(3) });
    expect(result.text).toBe('Done: the email is on its way.');
    const [received] = await sink.waitForMessages(1);
    expect(received!.subject).toBe('Meeting notes');
    expect(received!.html).toContain('<h1>Notes</h1>');
    const toolResult = result.steps[0]!.toolResults[0]!;
    expect(toolResult).toMatchObject({ toolName: 'send_email', toolCallId: 'call-1', output: { status: 'sent', accepted: ['ada@example.com'], replayed: false } });
    // The second model call carried the tool result back to the model.
    const secondPrompt = JSON.stringify(model.doGenerateCalls[1]!.prompt);
    expect(secondPrompt).toContain('"toolCallId":"call-1"');
    expect(secondPrompt).toContain('"status":"sent"');
  });

  it('sends nothing new when the same tool call is run again', async () => {
    const tools = createAiSdkTools(mailer);
    const first = await generateText({ model: scriptedModel('call-7', 'send_email', email), tools, prompt: 'x', stopWhen: stepCountIs(3) });
    const again = await generateText({ model: scriptedModel('call-7', 'send_email', email), tools, prompt: 'x', stopWhen: stepCountIs(3) });
    const out1 = first.steps[0]!.toolResults[0]!.output as { id: string };
    const out2 = again.steps[0]!.toolResults[0]!.output as { id: string; replayed: boolean };
    expect(out2).toMatchObject({ id: out1.id, replayed: true });
    // Nothing else arrived: counted once the mailer closed its connections and the sink saw each one close.
    await mailer.close();
    await sink.waitForIdle();
    expect(sink.messages).toHaveLength(1);
  });

  it('gives the model an error it can act on, and sends nothing', async () => {
    const result = await generateText({
      model: scriptedModel('call-2', 'send_email', { ...email, subject: 'Hi {name}', variables: {} }),
      tools: createAiSdkTools(mailer),
      prompt: 'x',
      stopWhen: stepCountIs(3),
    });
    expect(result.steps[0]!.toolResults[0]!.output).toMatchObject({ error: { code: 'TEMPLATE_ERROR', missing: ['name'], retryable: false } });
    expect(sink.stats.connections).toBe(0);
  });

  it('waits for approval when needsApproval is on, and sends nothing until then', async () => {
    const tools = createAiSdkTools(mailer, { needsApproval: true });
    const result = await generateText({ model: scriptedModel('call-3', 'send_email', email), tools, prompt: 'x', stopWhen: stepCountIs(3) });
    expect(result.content.some((part) => part.type === 'tool-approval-request')).toBe(true);
    expect(result.steps[0]!.toolResults).toHaveLength(0);
    expect(sink.stats.connections).toBe(0);
    expect(createAiSdkTools(mailer, { needsApproval: true }).get_smtp_status!.needsApproval).toBeFalsy();
    expect(createAiSdkTools(mailer, { needsApproval: ['send_email'] }).send_email!.needsApproval).toBe(true);
  });

  it('passes the tool call’s id and the abort signal to execute', async () => {
    const controller = new AbortController();
    const seen: boolean[] = [];
    // The user cancels the run while the tool is still working: the signal execute holds must say so at once.
    const { tool: recorder, received } = recordingTool((context) => {
      seen.push(context.signal!.aborted);
      controller.abort();
      seen.push(context.signal!.aborted);
    });
    const run = await generateText({
      model: scriptedModel('call-ctx', 'record_context', { note: 'x' }),
      tools: createAiSdkTools([recorder]),
      prompt: 'x',
      stopWhen: stepCountIs(3),
      abortSignal: controller.signal,
    }).then(
      () => 'finished',
      (err: unknown) => err,
    );
    expect(run).not.toBe('finished');
    expect(received).toHaveLength(1);
    expect(received[0]!.toolCallId).toBe('call-ctx');
    expect(received[0]!.signal).toBeInstanceOf(AbortSignal);
    expect(seen).toEqual([false, true]);
  });
});

describe('createAiSdkTools: approval the agent’s policy asks for', () => {
  const outside = { to: 'grace@partner.test', subject: 'Proposal', body: 'Here is our proposal.' };
  const answered = (text: string) =>
    new MockLanguageModelV3({ doGenerate: [{ content: [{ type: 'text', text }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] }] });

  /** A mailer whose policy holds mail to anyone outside example.com for a human. */
  async function heldOutside(): Promise<void> {
    await mailer.close();
    mailer = createMailer({
      servers: [sink.serverConfig({ name: 'sink' })],
      defaults: { from: 'agent@example.com' },
      policy: { approval: { outside: ['@example.com'] } },
      env: {},
    });
  }

  /** The first run: the model asks to send outside; generateText stops at the approval request, having sent nothing. */
  async function untilApprovalRequest(tools: ReturnType<typeof createAiSdkTools>) {
    const prompt = [{ role: 'user' as const, content: 'Send Grace the proposal' }];
    const first = await generateText({ model: scriptedModel('call-held', 'send_email', outside), tools, messages: prompt, stopWhen: stepCountIs(3) });
    const request = first.content.find((part) => part.type === 'tool-approval-request');
    expect(request).toMatchObject({ type: 'tool-approval-request', toolCall: { toolCallId: 'call-held', toolName: 'send_email' } });
    expect(first.steps[0]!.toolResults).toHaveLength(0);
    expect(sink.stats.connections).toBe(0);
    return { messages: [...prompt, ...first.response.messages], approvalId: (request as { approvalId: string }).approvalId };
  }

  it('asks before a send the policy holds; approved, it is sent once and the audit names the approver', async () => {
    await heldOutside();
    const tools = createAiSdkTools(mailer, { approvedBy: 'ops@example.com' });
    const { messages, approvalId } = await untilApprovalRequest(tools);
    const model2 = answered('Sent.');
    const model2Prompt = () => model2.doGenerateCalls[0]!.prompt;
    const second = await generateText({
      model: model2,
      tools,
      messages: [...messages, { role: 'tool', content: [{ type: 'tool-approval-response', approvalId, approved: true }] }],
      stopWhen: stepCountIs(3),
    });
    // The approved call ran before the model's next turn; its result is in the tool message handed back.
    const toolMessages = second.response.messages.filter((m) => m.role === 'tool');
    expect(JSON.stringify(toolMessages)).toContain('"status":"sent"');
    expect(JSON.stringify(model2Prompt())).toContain('"status":"sent"');
    const [received] = await sink.waitForMessages(1);
    expect(received!.envelope.to).toEqual(['grace@partner.test']);
    const approvals = await mailer.listAudit({ action: 'approve' });
    expect(approvals.entries.map((e) => e.actor)).toEqual(['ops@example.com']);
    await mailer.close();
    await sink.waitForIdle();
    expect(sink.messages).toHaveLength(1);
  });

  it('denied, nothing is sent and the model is told', async () => {
    await heldOutside();
    const tools = createAiSdkTools(mailer);
    const { messages, approvalId } = await untilApprovalRequest(tools);
    const second = await generateText({
      model: answered('Understood, not sent.'),
      tools,
      messages: [...messages, { role: 'tool', content: [{ type: 'tool-approval-response', approvalId, approved: false, reason: 'not this one' }] }],
      stopWhen: stepCountIs(3),
    });
    expect(JSON.stringify(second.response.messages)).toContain('execution-denied');
    await mailer.close();
    await sink.waitForIdle();
    expect(sink.messages).toHaveLength(0);
    expect(sink.stats.connections).toBe(0);
  });

  it('sends at once what the policy lets through, without asking', async () => {
    await heldOutside();
    const result = await generateText({ model: scriptedModel('call-in', 'send_email', email), tools: createAiSdkTools(mailer), prompt: 'x', stopWhen: stepCountIs(3) });
    expect(result.content.some((part) => part.type === 'tool-approval-request')).toBe(false);
    expect(result.steps[0]!.toolResults[0]!.output).toMatchObject({ status: 'sent' });
    await sink.waitForMessages(1);
  });

  it('policyApproval: false leaves the send pending instead of asking', async () => {
    await heldOutside();
    const result = await generateText({
      model: scriptedModel('call-pending', 'send_email', outside),
      tools: createAiSdkTools(mailer, { policyApproval: false }),
      prompt: 'x',
      stopWhen: stepCountIs(3),
    });
    expect(result.content.some((part) => part.type === 'tool-approval-request')).toBe(false);
    expect(result.steps[0]!.toolResults[0]!.output).toMatchObject({ status: 'pending_approval' });
    await mailer.close();
    await sink.waitForIdle();
    expect(sink.stats.connections).toBe(0);
  });

  it('a call the model made again with no approval in the messages is held, not sent', async () => {
    await heldOutside();
    const tools = createAiSdkTools(mailer);
    const execute = tools.send_email!.execute!;
    const output = await execute(outside, { toolCallId: 'forged', messages: [{ role: 'user', content: 'x' }] });
    expect(output).toMatchObject({ status: 'pending_approval' });
    await mailer.close();
    await sink.waitForIdle();
    expect(sink.stats.connections).toBe(0);
  });
});
