/** The dev sink in its own process, so the benchmark's CPU figures are the sender's alone. Prints its port. */
import { startSmtpSink } from '@agent-smtp/testing';

const sink = await startSmtpSink({ parse: false, maxMessages: 100 });
process.stdout.write(`${JSON.stringify({ port: sink.port })}\n`);
process.stdin.resume();
process.stdin.on('end', () => void sink.close().then(() => process.exit(0)));
