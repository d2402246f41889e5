import { afterEach } from 'vitest';
import { type SmtpSink, type SmtpSinkOptions, startSmtpSink } from '@agent-smtp/testing';

/** A mailer, a service, anything with `close()`. */
type Closable = { close(): Promise<unknown> };

/**
 * Sinks and mailers a test file opens, closed after each test (mailers first, so their workers stop before the
 * servers they send to go away). Call once at the top level of a test file.
 */
export function useTestResources(): { sink(options?: SmtpSinkOptions): Promise<SmtpSink>; track<M extends Closable>(mailer: M): M } {
  const sinks: SmtpSink[] = [];
  const mailers: Closable[] = [];
  afterEach(async () => {
    await Promise.all(mailers.splice(0).map((m) => m.close()));
    await Promise.all(sinks.splice(0).map((s) => s.close()));
  });
  return {
    async sink(options) {
      const sink = await startSmtpSink(options);
      sinks.push(sink);
      return sink;
    },
    track(mailer) {
      mailers.push(mailer);
      return mailer;
    },
  };
}
