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

/** Resolves once every connection the sink saw has closed: nothing more can arrive after that. */
async function sinkDone(): Promise<void> {
  const until = Date.now() + 8_000;
  while (sink.stats.closed < sink.stats.connections) {
    if (Date.now() > until) throw new Error('timed out waiting for the sink’s connections to close');
    await new Promise((r) => setTimeout(r, 20));
  }
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
    await sinkDone();
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
