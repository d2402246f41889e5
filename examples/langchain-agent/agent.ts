/**
 * npm start: a LangChain.js agent (createAgent) that emails a reminder with the agent-smtp tools.
 * Without OPENAI_API_KEY a scripted model from @langchain/core/testing plays the agent and the mail goes to the
 * built-in dev SMTP sink; with it, ChatOpenAI decides (set SMTP_HOST to send through a real server, DEMO_TO for
 * the recipient).
 */
import { createMailer, loadSmtpServersFromEnv } from '@agent-smtp/core';
import { startSmtpSink } from '@agent-smtp/testing';
import { createLangChainTools } from '@agent-smtp/langchain';
import { AIMessage, ToolMessage } from '@langchain/core/messages';
import { fakeModel } from '@langchain/core/testing';
import { createAgent } from 'langchain';

const to = process.env.DEMO_TO ?? 'ada@example.com';
const envServers = loadSmtpServersFromEnv(process.env);
const sink = envServers.length ? undefined : await startSmtpSink();
const mailer = createMailer({
  servers: sink ? [sink.serverConfig({ name: 'dev-sink' })] : envServers,
  defaults: { from: process.env.SMTP_FROM_EMAIL ?? 'Reminder Bot <bot@example.com>' },
});

async function chatModel() {
  if (process.env.OPENAI_API_KEY) {
    const { ChatOpenAI } = await import('@langchain/openai');
    return new ChatOpenAI({ model: process.env.OPENAI_MODEL ?? 'gpt-4o-mini' });
  }
  // The scripted agent: one send_email call, then a closing sentence.
  return fakeModel()
    .respondWithTools([
      {
        name: 'send_email',
        id: 'call_1',
        args: { to, subject: 'Reminder: {what}', body: 'Hi,\n\nA reminder: {what} is due {when}.\n\n— your agent', variables: { what: 'the quarterly report', when: 'Friday' } },
      },
    ])
    .respond(new AIMessage(`I sent the reminder to ${to}.`));
}

try {
  const agent = createAgent({ model: await chatModel(), tools: createLangChainTools(mailer) });
  const { messages } = await agent.invoke({ messages: [{ role: 'user', content: `Email ${to} a reminder that the quarterly report is due Friday.` }] });
  for (const message of messages) {
    if (ToolMessage.isInstance(message)) console.log(`tool ${message.name} (${message.status}) -> ${message.content}`);
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
