/**
 * The dev sink in its own process, so the benchmark's CPU figures are the sender's alone. Prints its port, then
 * answers lines on stdin: `count` → `{"count":n}` (messages accepted since start); `wait <n>` → `{"count":n}` once at
 * least n have been accepted (polling here, in the sink's process, so the sender pays nothing for it).
 * Exits when stdin ends.
 */
import { createInterface } from 'node:readline';
import { startSmtpSink } from '@agent-smtp/testing';

const sink = await startSmtpSink({ parse: false, maxMessages: 100 });
const reply = () => process.stdout.write(`${JSON.stringify({ count: sink.stats.messages })}\n`);
process.stdout.write(`${JSON.stringify({ port: sink.port })}\n`);
const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  const [command, arg] = line.trim().split(/\s+/);
  if (command === 'count') reply();
  else if (command === 'wait') {
    const target = Number(arg);
    const check = () => (sink.stats.messages >= target ? reply() : setTimeout(check, 5));
    check();
  }
});
input.on('close', () => void sink.close().then(() => process.exit(0)));
