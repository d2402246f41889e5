/**
 * npm start: an AI SDK agent that emails a meeting summary with the agent-smtp tools.
 * Without OPENAI_API_KEY a scripted model plays the agent and the mail goes to the built-in dev SMTP sink;
 * with it, a real model decides (set SMTP_HOST to send through a real server, DEMO_TO for the recipient).
 */
import { createAiSdkTools } from '@agent-smtp/ai-sdk';
import { createMailer, loadSmtpServersFromEnv } from '@agent-smtp/core';
import { startSmtpSink } from '@agent-smtp/testing';
import { generateText, type LanguageModel, stepCountIs } from 'ai';
import { MockLanguageModelV3 } from 'ai/test';

const to = process.env.DEMO_TO ?? 'ada@example.com';
const envServers = loadSmtpServersFromEnv(process.env);
const sink = envServers.length ? undefined : await startSmtpSink();
const mailer = createMailer({
  servers: sink ? [sink.serverConfig({ name: 'dev-sink' })] : envServers,
  defaults: { from: process.env.SMTP_FROM_EMAIL ?? 'Meeting Bot <bot@example.com>' },
});

async function model(): Promise<LanguageModel> {
  if (process.env.OPENAI_API_KEY) {
    const { openai } = await import('@ai-sdk/openai');
    return openai(process.env.OPENAI_MODEL ?? 'gpt-4o-mini');
  }
  // The scripted agent: one send_email call, then a closing sentence once it sees the result.
  const usage = { inputTokens: { total: 0, noCache: 0, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 0, text: 0, reasoning: 0 } };
  return new MockLanguageModelV3({
    doGenerate: [
      {
        content: [
          {
            type: 'tool-call',
            toolCallId: 'call-1',
            toolName: 'send_email',
            input: JSON.stringify({
              to,
              subject: 'Summary: {meeting}',
              body: '## {meeting}\n\n- Launch moves to **Tuesday**\n- Ada owns the release notes',
              format: 'markdown',
              variables: { meeting: 'Weekly sync' },
            }),
          },
        ],
        finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
        usage,
        warnings: [],
      },
      { content: [{ type: 'text', text: `I sent the summary to ${to}.` }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] },
    ],
  });
}

try {
  const result = await generateText({
    model: await model(),
    tools: createAiSdkTools(mailer),
    stopWhen: stepCountIs(4),
    prompt: `Email ${to} a short Markdown summary of our weekly sync: the launch moves to Tuesday and Ada owns the release notes.`,
  });
  for (const step of result.steps) for (const r of step.toolResults) console.log(`tool ${r.toolName} ->`, JSON.stringify(r.output));
  console.log(`agent: ${result.text}`);
  if (sink) {
    const [received] = await sink.waitForMessages(1);
    console.log(`the SMTP server received "${received!.subject}" for ${received!.envelope.to.join(', ')} (html: ${received!.html?.length ?? 0} chars)`);
  }
} finally {
  await mailer.close();
  await sink?.close();
}
