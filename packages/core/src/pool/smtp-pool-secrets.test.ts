import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { resolveSmtpServerConfigs, type SmtpServerConfig } from '../config/smtp-server-config.js';
import { SmtpError } from '../errors/smtp-error.js';
import { createMailer } from '../mailer/mailer.js';
import { echoReply, PASSWORD_CORPUS, secretForms } from '../secrets/__fixtures__/secret-corpus.js';
import { poolMessage, usePoolResources } from './__fixtures__/pool-fixtures.js';

const resources = useTestResources();
const pools = usePoolResources();

const USER = 'robot@example.com';

/** Every form of the login found in `text`, by label; [] when none is. */
function leaks(text: string, user: string, pass: string): string[] {
  return Object.entries(secretForms(user, pass))
    .filter(([, form]) => text.includes(form))
    .map(([label]) => `${label} of ${JSON.stringify(pass)}`);
}

/** Everything a caller can see of an error: message, inspection (stack, fields, cause chain) and JSON. */
function everythingOf(error: unknown): string {
  return `${String((error as Error).message)}\n${inspect(error, { depth: 10 })}\n${JSON.stringify(error)}`;
}

// Issue 7 item 14: a server that echoes the AUTH exchange in its replies put the credentials, base64 and plain, into
// results, errors and status. Whatever a server says, no text the pool produces holds a configured secret.
describe('SmtpPool keeps credentials out of everything it returns', () => {
  it.each(PASSWORD_CORPUS.map((pass, i) => [pass, i % 2 === 0 ? 'PLAIN' : 'LOGIN'] as const))(
    'password %j (AUTH %s) echoed in a 535 appears in no error, status or verify result',
    async (pass, method) => {
      const echoed: string[] = [];
      const sink = await resources.sink({
        auth: { user: USER, pass: `${pass}-but-not-this` },
        behavior: {
          auth: (user, _session, password) => {
            echoed.push(password);
            return { code: 535, message: echoReply(user, password) };
          },
        },
      });
      const pool = pools.pool({ servers: [{ ...sink.serverConfig(), name: 'echo', auth: { user: USER, pass, method } }] });

      const error = await pool.send(poolMessage()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SmtpError);
      expect((error as SmtpError).code).toBe('SMTP_AUTH');
      // The reply itself is kept, less the secrets: the user can still read what the server said.
      expect((error as SmtpError).message).toContain('Authentication failed');
      const verified = await pool.verify();
      expect(verified[0]!.ok).toBe(false);

      const seen = [everythingOf(error), JSON.stringify(pool.status()), inspect(pool.status(), { depth: 10 }), JSON.stringify(verified), inspect(pool, { depth: 10 })].join('\n');
      expect(leaks(seen, USER, pass)).toEqual([]);
      // The server really had the password to echo, on the send and on verify().
      expect(echoed).toEqual([pass, pass]);
      expect(sink.messages).toHaveLength(0);
    },
  );

  it('scrubs echoes from every other reply: a 4xx attempt, the final 250, a rejected recipient, a refusal’s cause', async () => {
    const pass = 'pässwörd-üñíçødé';
    const otherPass = 'hunter2-S3cret!';
    const first = await resources.sink({
      auth: { user: USER, pass },
      behavior: { mailFrom: () => ({ code: 451, message: `4.3.0 try later, ${pass}` }) },
    });
    const second = await resources.sink({
      auth: { user: USER, pass: otherPass },
      behavior: {
        rcptTo: (to) => (to.startsWith('nobody') ? { code: 550, message: `5.1.1 no such user (${Buffer.from(otherPass).toString('base64')})` } : undefined),
        data: () => ({ code: 250, message: `2.0.0 queued for ${USER}:${otherPass}` }),
      },
    });
    const pool = pools.pool({
      servers: [
        { ...first.serverConfig(), name: 'first', priority: 2, maxRetries: 0 },
        { ...second.serverConfig(), name: 'second', priority: 1 },
      ],
    });
    const result = await pool.send(poolMessage({ envelope: { from: 'agent@example.com', to: ['ada@example.com', 'nobody@example.com'] } }));
    expect(result).toMatchObject({ status: 'sent', server: 'second', rejected: ['nobody@example.com'] });
    expect(result.attempts[0]).toMatchObject({ server: 'first', responseCode: 451 });
    expect(result.response).toContain('2.0.0 queued for');
    const seen = `${JSON.stringify(result)}\n${inspect(result, { depth: 10 })}`;
    expect([...leaks(seen, USER, pass), ...leaks(seen, USER, otherPass)]).toEqual([]);
    expect(await second.waitForMessages(1)).toHaveLength(1);

    // A refusal of every recipient keeps nodemailer's error as the cause: scrubbed too.
    second.behavior = { rcptTo: () => ({ code: 550, message: `5.7.1 denied for ${otherPass}` }) };
    const refusal = await pool.send(poolMessage()).catch((e: unknown) => e);
    expect(refusal).toMatchObject({ code: 'SMTP_REJECTED' });
    expect((refusal as Error).cause).toBeInstanceOf(Error);
    expect([...leaks(everythingOf(refusal), USER, pass), ...leaks(everythingOf(refusal), USER, otherPass)]).toEqual([]);
  });

  it('keeps auth.pass off every enumerable property: pool, mailer, resolved config', async () => {
    const pass = 'hunter2-S3cret!';
    const sink = await resources.sink({ auth: { user: USER, pass } });
    const config: SmtpServerConfig = { ...sink.serverConfig(), name: 'only', tls: { ca: sink.certificate, servername: 'localhost', passphrase: 'tls-key-passphrase' } };
    const pool = pools.pool({ servers: [config] });
    await pool.send(poolMessage());
    const mailer = resources.track(createMailer({ servers: [config], defaults: { from: 'agent@example.com' }, env: {} }));
    await mailer.send({ to: 'ada@example.com', subject: 'hi', text: 'hello' });
    const [resolved] = resolveSmtpServerConfigs([config]);

    const seen = [
      inspect(pool, { depth: 10 }),
      inspect(mailer, { depth: 10 }),
      JSON.stringify(pool),
      JSON.stringify(resolved),
      inspect(resolved, { depth: 10 }),
      JSON.stringify({ ...resolved!.auth }),
    ].join('\n');
    expect(leaks(seen, USER, pass)).toEqual([]);
    expect(seen).not.toContain('tls-key-passphrase');
    // Still there for whoever reads it on purpose: the transport needs it.
    expect(resolved!.auth!.pass).toBe(pass);
    expect(resolved!.tls!.passphrase).toBe('tls-key-passphrase');
    expect(await sink.waitForMessages(2)).toHaveLength(2);
  });

  it('treats a changed password as a changed server on reload, though JSON of the two configs is the same', async () => {
    const sink = await resources.sink({ auth: { user: USER, pass: 'new-password' } });
    const pool = pools.pool({ servers: [{ ...sink.serverConfig(), name: 'only', auth: { user: USER, pass: 'old-password' } }] });
    await expect(pool.send(poolMessage())).rejects.toMatchObject({ code: 'SMTP_AUTH' });
    pool.reload([{ ...sink.serverConfig(), name: 'only', auth: { user: USER, pass: 'new-password' } }]);
    expect((await pool.send(poolMessage())).status).toBe('sent');
  });
});
