import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { MemoryStore } from '../store/memory-store.js';
import { createMailer, type Mailer, type MailerOptions } from './mailer.js';

const resources = useTestResources();

const sink = resources.sink;

function mailer(options: MailerOptions): Mailer {
  return resources.track(createMailer({ defaults: { from: 'Agent <agent@example.com>' }, ...options }));
}

describe('Mailer.send against a real SMTP server', () => {
  it.each([
    ['plain', { tls: 'none' }],
    ['STARTTLS', { tls: 'starttls' }],
    ['implicit TLS', { tls: 'implicit' }],
  ] as const)('delivers over %s', async (_label, options) => {
    const server = await sink(options);
    const m = mailer({ servers: [server.serverConfig({ name: 'only' })] });
    const result = await m.send({ to: 'ada@example.com', subject: 'Hello', text: 'Plain body' });
    expect(result).toMatchObject({ status: 'sent', server: 'only', accepted: ['ada@example.com'], rejected: [], replayed: false });
    const [received] = await server.waitForMessages(1);
    expect(received!.secure).toBe(options.tls !== 'none');
    expect(received!.envelope).toEqual({ from: 'agent@example.com', to: ['ada@example.com'] });
    expect(received!.subject).toBe('Hello');
    expect(received!.text?.trim()).toBe('Plain body');
    expect(received!.messageId).toBe(result.messageId);
  });

  it.each(['PLAIN', 'LOGIN'] as const)('authenticates with AUTH %s', async (method) => {
    const server = await sink({ tls: 'starttls', auth: { user: 'robot', pass: 's3cret!' } });
    const m = mailer({ servers: [server.serverConfig({ auth: { user: 'robot', pass: 's3cret!', method } })] });
    await m.send({ to: 'ada@example.com', subject: 'Auth', text: 'x' });
    const [received] = await server.waitForMessages(1);
    expect(received!.user).toBe('robot');
  });

  it('keeps UTF-8 subjects, names and bodies intact', async () => {
    const server = await sink();
    const m = mailer({ servers: [server.serverConfig()] });
    await m.send({
      from: { name: 'Agent Zoë 🤖', address: 'agent@example.com' },
      to: { name: '山田 太郎', address: 'taro@example.jp' },
      subject: 'Ünïcødé ✓ 你好 — déjà vu',
      text: 'Grüße aus Köln 🌍\n第二行',
      html: '<p>Grüße <b>🌍</b> 你好</p>',
    });
    const [received] = await server.waitForMessages(1);
    expect(received!.subject).toBe('Ünïcødé ✓ 你好 — déjà vu');
    expect(received!.from).toBe('"Agent Zoë 🤖" <agent@example.com>');
    expect(received!.to).toBe('"山田 太郎" <taro@example.jp>');
    expect(received!.text?.trim()).toBe('Grüße aus Köln 🌍\n第二行');
    expect(received!.html).toContain('<p>Grüße <b>🌍</b> 你好</p>');
  });

  it('round-trips attachments byte for byte', async () => {
    const server = await sink();
    const m = mailer({ servers: [server.serverConfig()] });
    const binary = randomBytes(256 * 1024);
    await m.send({
      to: 'ada@example.com',
      subject: 'Files',
      text: 'see attached',
      attachments: [
        { filename: 'data.bin', content: binary.toString('base64'), encoding: 'base64', contentType: 'application/octet-stream' },
        { filename: 'notes — é.txt', content: 'line one\nligne deux é\n' },
        { filename: 'raw.bin', content: new Uint8Array([0, 1, 2, 253, 254, 255]) },
      ],
    });
    const [received] = await server.waitForMessages(1);
    const byName = new Map(received!.attachments.map((a) => [a.filename, a]));
    const sha = (b: Buffer | Uint8Array): string => createHash('sha256').update(b).digest('hex');
    expect(sha(byName.get('data.bin')!.content)).toBe(sha(binary));
    expect(byName.get('notes — é.txt')!.content.toString('utf8')).toBe('line one\nligne deux é\n');
    expect([...byName.get('raw.bin')!.content]).toEqual([0, 1, 2, 253, 254, 255]);
  });

  it('puts cc and bcc in the envelope and never writes a Bcc header', async () => {
    const server = await sink();
    const m = mailer({ servers: [server.serverConfig()] });
    await m.send({ to: 'to@example.com', cc: ['cc1@example.com', 'TO@example.com'], bcc: 'secret@example.com', subject: 's', text: 't' });
    const [received] = await server.waitForMessages(1);
    expect(received!.envelope.to).toEqual(['to@example.com', 'cc1@example.com', 'secret@example.com']);
    expect(received!.cc).toContain('cc1@example.com');
    expect(received!.headers.has('bcc')).toBe(false);
    expect(received!.raw.toString('utf8')).not.toContain('secret@example.com');
  });

  it.each([
    ['subject', { subject: 'Hi\r\nBcc: victim@evil.example' }],
    ['to[0].name', { to: [{ name: 'Eve\r\nBcc: victim@evil.example', address: 'eve@example.com' }] }],
    ['headers.X-Ref', { headers: { 'X-Ref': '1\r\nBcc: victim@evil.example' } }],
  ])('refuses CRLF in %s and nothing reaches the server', async (field, patch) => {
    const server = await sink();
    const m = mailer({ servers: [server.serverConfig()] });
    const attempt = m.send({ to: 'ada@example.com', subject: 'ok', text: 'x', ...patch });
    await expect(attempt).rejects.toBeInstanceOf(ValidationError);
    await expect(attempt).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field });
    expect(server.stats.connections).toBe(0);
    expect(server.messages).toHaveLength(0);
  });

  it('refuses a line break that a template variable puts into the subject', async () => {
    const server = await sink();
    const m = mailer({ servers: [server.serverConfig()] });
    const attempt = m.send({ to: 'a@example.com', subject: 'Hi {name}', text: 'x', variables: { name: 'x\r\nBcc: v@evil.example' } });
    await expect(attempt).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'subject' });
    expect(server.stats.connections).toBe(0);
  });

  it('renders templates: escaped in HTML, raw in text and subject, strict about missing variables', async () => {
    const server = await sink();
    const m = mailer({ servers: [server.serverConfig()] });
    await m.send({
      to: 'ada@example.com',
      subject: 'Order {order.id} for {name}',
      text: 'Hi {name},{?vip} VIP{/vip}{^vip} regular{/vip} customer.',
      html: '<p>Hi {name}</p>{?vip}<b>VIP</b>{/vip}',
      variables: { name: 'Ada <& Co>', order: { id: 42 }, vip: true },
    });
    const [received] = await server.waitForMessages(1);
    expect(received!.subject).toBe('Order 42 for Ada <& Co>');
    expect(received!.text?.trim()).toBe('Hi Ada <& Co>, VIP customer.');
    expect(received!.html).toContain('<p>Hi Ada &lt;&amp; Co&gt;</p><b>VIP</b>');

    const missing = m.send({ to: 'a@example.com', subject: 'Hi {name}', text: '{greeting} {name}', variables: {} });
    await expect(missing).rejects.toMatchObject({ code: 'TEMPLATE_ERROR', missing: ['name', 'greeting'] });
    expect(server.messages).toHaveLength(1);
  });

  it('sends Markdown as an HTML part plus the Markdown as the text part, escaping template values', async () => {
    const server = await sink();
    const m = mailer({ servers: [server.serverConfig()] });
    await m.send({ to: 'ada@example.com', subject: 'MD', markdown: '# Hello {name}\n\n**Bold** and [a link](https://example.com).', variables: { name: '<script>x</script>' } });
    const [received] = await server.waitForMessages(1);
    expect(received!.html).toContain('<h1>Hello &lt;script&gt;x&lt;/script&gt;</h1>');
    expect(received!.html).toContain('<strong>Bold</strong> and <a href="https://example.com">a link</a>');
    expect(received!.html).not.toContain('<script>');
    expect(received!.text?.trim()).toBe('# Hello <script>x</script>\n\n**Bold** and [a link](https://example.com).');
  });

  it('keeps Markdown in a template value from becoming a link or an image', async () => {
    const server = await sink();
    const m = mailer({ servers: [server.serverConfig()] });
    const name = '![x](https://tracker.evil.example/p.gif) [Reset your password](https://evil.example/login) **bold** <b>raw</b>';
    await m.send({ to: 'ada@example.com', subject: 'MD', markdown: 'Hello {name}, see [our site](https://example.com).', variables: { name } });
    const [received] = await server.waitForMessages(1);
    expect(received!.html).not.toContain('<img');
    expect(received!.html).not.toContain('href="https://evil.example');
    expect(received!.html).not.toContain('<strong>');
    expect(received!.html).not.toContain('<b>');
    expect(received!.html).toContain('[Reset your password](https://evil.example/login)');
    expect(received!.html).toContain('<a href="https://example.com">our site</a>');
    expect(received!.text).toContain(name);
  });

  it('sends once per idempotency key, replays the first result, and refuses a different message under it', async () => {
    const server = await sink();
    const store = new MemoryStore();
    const m = mailer({ servers: [server.serverConfig()], store });
    const email = { to: 'ada@example.com', subject: 'Once', text: 'only once', idempotencyKey: 'order-42-receipt' };
    const first = await m.send(email);
    const second = await m.send(email);
    expect(second).toEqual({ ...first, replayed: true, rejectedReasons: [] });
    const conflict = m.send({ ...email, text: 'something else' });
    await expect(conflict).rejects.toMatchObject({ code: 'IDEMPOTENCY_CONFLICT' });
    await expect(conflict).rejects.toSatisfy(AgentSmtpError.isInstance);
    expect(await m.getStatus(first.id)).toMatchObject({ status: 'sent', idempotencyKey: 'order-42-receipt' });
    // Once the mailer has closed, nothing more can reach the sink: what it has now is all it would ever get.
    await m.close();
    expect(server.messages).toHaveLength(1);
  });

  it('sends once when the same key is used by concurrent calls', async () => {
    const server = await sink();
    const m = mailer({ servers: [server.serverConfig()] });
    const email = { to: 'ada@example.com', subject: 'Race', text: 'x', idempotencyKey: 'race-1' };
    const results = await Promise.all(Array.from({ length: 20 }, () => m.send(email)));
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    await m.close();
    expect(server.messages).toHaveLength(1);
  });

  it('records status history and an audit entry without secrets', async () => {
    const server = await sink({ auth: { user: 'robot', pass: 'hunter2-very-secret' } });
    const store = new MemoryStore();
    const m = mailer({ servers: [server.serverConfig()], store, ownerId: 'user-1', agentId: 'agent-a' });
    const result = await m.send({ to: 'ada@example.com', subject: 's', text: 't' });
    const record = await m.getStatus(result.id);
    expect(record!.history.map((h) => h.type)).toEqual(['queued', 'claimed', 'sent']);
    expect(record).toMatchObject({ ownerId: 'user-1', agentId: 'agent-a', server: result.server });
    expect(await store.outbox.get('someone-else', result.id)).toBeUndefined();
    const audit = await store.audit.list('user-1');
    expect(audit[0]).toMatchObject({ action: 'send', outcome: 'ok', agentId: 'agent-a', messageId: result.id });
    expect(JSON.stringify({ audit, record, status: m.status() })).not.toContain('hunter2-very-secret');
  });

  it('reloads from where its servers came from: a function is called again, a list in code is kept', async () => {
    const a = await sink();
    const b = await sink();
    let current = [a.serverConfig({ name: 'a' })];
    const m = mailer({ servers: () => current, env: { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(b.port) } });
    current = [b.serverConfig({ name: 'b' })];
    await m.reload();
    expect((await m.send({ to: 'x@example.com', subject: 'after reading the function again', text: 't' })).server).toBe('b');
    const fixed = mailer({ servers: [a.serverConfig({ name: 'a' })], env: { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(b.port) } });
    await fixed.reload();
    expect(fixed.status().servers.map((s) => s.name)).toEqual(['a']);
    expect((await fixed.send({ to: 'x@example.com', subject: 'after keeping the list', text: 't' })).server).toBe('a');
    // Each sink kept its message before answering 250, so once the sends resolved both lists are complete.
    expect(b.messages.map((received) => received.subject)).toEqual(['after reading the function again']);
    expect(a.messages.map((received) => received.subject)).toEqual(['after keeping the list']);
  });

  it('takes its servers and sender from the environment when none are given', async () => {
    const server = await sink();
    const m = createMailer({
      env: { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(server.port), SMTP_FROM_EMAIL: 'env-sender@example.com', SMTP_USE_TLS: 'false' },
    });
    resources.track(m);
    await m.send({ to: 'ada@example.com', subject: 'env', text: 'x' });
    const [received] = await server.waitForMessages(1);
    expect(received!.envelope.from).toBe('env-sender@example.com');
    expect(() => createMailer({ env: {} })).toThrow(/SMTP_HOST/);
  });
});
