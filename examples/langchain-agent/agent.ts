/**
 * npm start: a LangChain.js tool-calling agent that emails a reminder with the agent-smtp tools.
 * Without OPENAI_API_KEY a scripted chat model plays the agent and the mail goes to the built-in dev SMTP
 * sink; with it, ChatOpenAI decides (set SMTP_HOST to send through a real server, DEMO_TO for the recipient).
 */
import { createMailer, loadSmtpServersFromEnv } from '@agent-smtp/core';
import { startSmtpSink } from '@agent-smtp/core/testing';
import { createLangChainTools } from '@agent-smtp/langchain';
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { AIMessage, type BaseMessage, HumanMessage, type ToolMessage } from '@langchain/core/messages';
import type { ChatResult } from '@langchain/core/outputs';
import type { DynamicStructuredTool } from '@langchain/core/tools';

const to = process.env.DEMO_TO ?? 'ada@example.com';
const envServers = loadSmtpServersFromEnv(process.env);
const sink = envServers.length ? undefined : await startSmtpSink();
const mailer = createMailer({
  servers: sink ? [sink.serverConfig({ name: 'dev-sink' })] : envServers,
  defaults: { from: process.env.SMTP_FROM_EMAIL ?? 'Reminder Bot <bot@example.com>' },
});
const tools = createLangChainTools(mailer);

/** Plays the agent without an API key: asks for one send_email call, then answers. */
class ScriptedChatModel extends BaseChatModel {
  private readonly script = [
    new AIMessage({
      content: '',
      tool_calls: [
        {
          id: 'call_1',
          name: 'send_email',
          type: 'tool_call',
          args: { to, subject: 'Reminder: {what}', body: 'Hi,\n\nA reminder: {what} is due {when}.\n\n— your agent', variables: { what: 'the quarterly report', when: 'Friday' } },
        },
      ],
    }),
    new AIMessage(`I sent the reminder to ${to}.`),
  ];
  _llmType(): string {
    return 'scripted';
  }
  override bindTools() {
    return this;
  }
  async _generate(): Promise<ChatResult> {
    const message = this.script.shift() ?? new AIMessage('Done.');
    return { generations: [{ text: String(message.content), message }] };
  }
}

async function chatModel() {
  if (!process.env.OPENAI_API_KEY) return new ScriptedChatModel({});
  const { ChatOpenAI } = await import('@langchain/openai');
  return new ChatOpenAI({ model: process.env.OPENAI_MODEL ?? 'gpt-4o-mini' });
}

try {
  const model = (await chatModel()).bindTools!(tools);
  const messages: BaseMessage[] = [new HumanMessage(`Email ${to} a reminder that the quarterly report is due Friday.`)];
  for (let turn = 0; turn < 5; turn++) {
    const reply = (await model.invoke(messages)) as AIMessage;
    messages.push(reply);
    if (!reply.tool_calls?.length) break;
    for (const call of reply.tool_calls) {
      const tool = tools.find((t) => t.name === call.name) as DynamicStructuredTool;
      const result = (await tool.invoke({ ...call, type: 'tool_call' })) as ToolMessage;
      console.log(`tool ${call.name} (${result.status}) -> ${result.content}`);
      messages.push(result);
    }
  }
  console.log(`agent: ${messages.at(-1)!.content}`);
  if (sink) {
    const [received] = await sink.waitForMessages(1);
    console.log(`the SMTP server received "${received!.subject}" for ${received!.envelope.to.join(', ')}`);
  }
} finally {
  await mailer.close();
  await sink?.close();
}
