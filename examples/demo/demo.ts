/**
 * npm run demo: sends a templated HTML + text email with an attachment through createMailer and shows
 * what the server received. With no configuration it starts the built-in dev SMTP sink on 127.0.0.1;
 * with SMTP_HOST set (see the README's table) it sends through that server instead. When something is wrong
 * (a server it cannot reach, a bad variable) it prints one line saying what to change and exits 1.
 */
import { AgentSmtpError, createMailer, loadSmtpServersFromEnv, type Mailer, type SmtpServerConfig, SmtpError, ValidationError } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';

let sink: SmtpSink | undefined;
let mailer: Mailer | undefined;
try {
  await runDemo();
} catch (err) {
  // A newcomer's first run: one line saying what to change, not a stack trace and an error object.
  console.error(`demo: ${whatToFix(err)}`);
  process.exitCode = 1;
} finally {
  await mailer?.close();
  await sink?.close();
}

async function runDemo(): Promise<void> {
  const envServers = loadSmtpServersFromEnv(process.env);
  let servers: SmtpServerConfig[] = envServers;
  if (envServers.length === 0) {
    sink = await startSmtpSink();
    servers = [sink.serverConfig({ name: 'dev-sink' })];
    console.log(`No SMTP_HOST set: started the dev SMTP sink on ${sink.host}:${sink.port}.`);
  } else {
    console.log(`Sending through ${envServers.map((s) => `${s.name} (${s.host})`).join(', ')}.`);
  }

  mailer = createMailer({ servers, defaults: { from: process.env.SMTP_FROM_EMAIL ?? 'Agent Smith <agent@example.com>' } });
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
}

/** One line: what went wrong, and what to change in the variables this demo reads. */
/**
 * How the variables of the server at fault are spelled: `SMTP_HOST` for the unnumbered server, `SMTP_HOST_2` when
 * only numbered ones are set (`smtp-2` is the server SMTP_HOST_2 configures), `SMTP_HOST_<n>` when it is unclear which.
 */
function serverVariables(err: AgentSmtpError): (name: string) => string {
  const env = process.env;
  if ((env.SMTP_HOST ?? '').trim() !== '') return (name) => name;
  const numbered = Object.keys(env)
    .map((key) => /^SMTP_HOST_(\d+)$/.exec(key)?.[1])
    .filter((n): n is string => n !== undefined && (env[`SMTP_HOST_${n}`] ?? '').trim() !== '')
    .sort((a, b) => Number(a) - Number(b));
  if (numbered.length === 0) return (name) => name;
  const named = SmtpError.isInstance(err) ? /^smtp-(\d+)$/.exec(err.server ?? '')?.[1] : undefined;
  const n = named !== undefined && numbered.includes(named) ? named : numbered.length === 1 ? numbered[0] : undefined;
  return n !== undefined ? (name) => `${name}_${n}` : (name) => `${name}_<n> (n = ${numbered.join(', ')})`;
}

function whatToFix(err: unknown): string {
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s*[\r\n]+\s*/g, ' ');
  if (!AgentSmtpError.isInstance(err)) return `failed: ${message}`;
  const v = serverVariables(err);
  const devSink = `or unset ${v('SMTP_HOST')} to use the built-in dev SMTP sink.`;
  if (ValidationError.isInstance(err)) {
    // The demo's own message is valid; a refused field came from the variable that set it.
    const variable = err.field === 'to' ? 'DEMO_TO' : err.field === 'from' ? 'SMTP_FROM_EMAIL' : undefined;
    return variable ? `${variable} is not usable: ${message}. Fix ${variable}.` : message;
  }
  switch (err.code) {
    case 'CONFIG_ERROR':
      return `${message} Fix that variable, ${devSink}`;
    case 'SMTP_AUTH':
      return `${message} Check ${v('SMTP_USERNAME')} and ${v('SMTP_PASSWORD')}, and ${v('SMTP_PORT')} with ${v('SMTP_USE_TLS')} or ${v('SMTP_USE_SSL')}.`;
    case 'SMTP_REJECTED':
      return `${message} The server refused this message: check DEMO_TO and SMTP_FROM_EMAIL.`;
    default:
      return `${message} Check that ${v('SMTP_HOST')} and ${v('SMTP_PORT')} name an SMTP server this machine can reach, ${devSink}`;
  }
}
