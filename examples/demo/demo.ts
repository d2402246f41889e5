/**
 * npm run demo: sends a templated HTML + text email with an attachment through createMailer and shows
 * what the server received. With no configuration it starts the built-in dev SMTP sink on 127.0.0.1;
 * with SMTP_HOST set (see the README's table) it sends through that server instead.
 */
import { createMailer, loadSmtpServersFromEnv, type SmtpServerConfig } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';

const envServers = loadSmtpServersFromEnv(process.env);
let sink: SmtpSink | undefined;
let servers: SmtpServerConfig[] = envServers;
if (envServers.length === 0) {
  sink = await startSmtpSink();
  servers = [sink.serverConfig({ name: 'dev-sink' })];
  console.log(`No SMTP_HOST set: started the dev SMTP sink on ${sink.host}:${sink.port}.`);
} else {
  console.log(`Sending through ${envServers.map((s) => `${s.name} (${s.host})`).join(', ')}.`);
}

const mailer = createMailer({ servers, defaults: { from: process.env.SMTP_FROM_EMAIL ?? 'Agent Smith <agent@example.com>' } });
try {
  const result = await mailer.send({
    to: process.env.DEMO_TO ?? { name: 'Ada Lovelace', address: 'ada@example.com' },
    subject: 'Your order {order.id} has shipped',
    text: 'Hi {name},\n\nOrder {order.id} is on its way.{?tracking} Track it: {tracking}{/tracking}\n\n— the agent',
    html: '<p>Hi {name},</p><p>Order <b>{order.id}</b> is on its way.</p>{?tracking}<p><a href="{tracking}">Track it</a></p>{/tracking}',
    variables: { name: 'Ada', order: { id: 'A-1042' }, tracking: 'https://example.com/track/A-1042' },
    attachments: [{ filename: 'receipt.txt', content: 'Order A-1042\nTotal: 42.00 EUR\n' }],
    idempotencyKey: `demo-${Date.now()}`,
  });
  console.log(`\nSend result: status=${result.status} server=${result.server} id=${result.id}`);
  console.log(`  accepted: ${result.accepted.join(', ') || '-'}  rejected: ${result.rejected.join(', ') || '-'}`);

  if (sink) {
    const [received] = await sink.waitForMessages(1);
    console.log('\nThe SMTP server received:');
    console.log(`  from:        ${received!.from}`);
    console.log(`  to:          ${received!.to}`);
    console.log(`  subject:     ${received!.subject}`);
    console.log(`  text:        ${received!.text?.split('\n')[0]}`);
    console.log(`  html:        ${received!.html ? `${received!.html.length} characters` : '-'}`);
    console.log(`  attachments: ${received!.attachments.map((a) => `${a.filename} (${a.size} bytes)`).join(', ')}`);
  }

  console.log('\nPool status:');
  for (const s of mailer.status().servers) {
    console.log(`  ${s.name} ${s.host}:${s.port} state=${s.state} sent=${s.messagesSent} failures=${s.totalFailures}`);
  }
} finally {
  await mailer.close();
  await sink?.close();
}
