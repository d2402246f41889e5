/**
 * npm run bench: the SDK's send path against raw pooled nodemailer, in the same run, to the same dev sink.
 * The sink runs in a child process, so CPU per message is the sender's alone. Prints a table and writes
 * bench/results/send.json. Loopback only.
 *
 *   sequential: one message at a time (what an agent feels), latency p50 / p99
 *   concurrent: N in flight (bulk), messages per second and CPU per message
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createMailer } from '@agent-smtp/core';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import nodemailer from 'nodemailer';

const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 300);
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 3000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 50);
const POOL = 5;

const child = spawn(process.execPath, ['--conditions=@agent-smtp/source', '--import', 'tsx', new URL('./sink-process.ts', import.meta.url).pathname], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
const sink = { host: '127.0.0.1', port: (JSON.parse(line) as { port: number }).port };
const message = (i: number) => ({
  from: 'bench@example.com',
  to: 'ada@example.com',
  subject: `Bench ${i}`,
  text: 'Hello from the benchmark. '.repeat(20),
  html: `<p>${'Hello from the benchmark. '.repeat(20)}</p>`,
});

const raw = nodemailer.createTransport({ pool: true, host: sink.host, port: sink.port, secure: false, ignoreTLS: true, maxConnections: POOL, maxMessages: 1_000 });
const mailer = createMailer({ servers: [{ host: sink.host, port: sink.port, starttls: 'disabled', poolSize: POOL }], env: {} });

type Send = (i: number) => Promise<unknown>;
const senders: Record<string, Send> = {
  'raw nodemailer': (i) => raw.sendMail(message(i)),
  'agent-smtp send': (i) => mailer.send(message(i)),
  'agent-smtp send + template + key': (i) =>
    mailer.send({ ...message(i), subject: 'Bench {n}', text: 'Hello {name}, message {n}. '.repeat(10), variables: { n: i, name: 'Ada' }, idempotencyKey: `bench-${process.pid}-${i}` }),
};

async function sequential(send: Send, offset: number) {
  const times: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const t = performance.now();
    await send(offset + i);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const at = (p: number) => Number(times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(2));
  return { p50_ms: at(0.5), p99_ms: at(0.99) };
}

async function concurrent(send: Send, offset: number) {
  const cpu = process.cpuUsage();
  const t = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => { while (next < CONCURRENT) await send(offset + next++); }));
  const seconds = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  return { msg_per_s: Math.round(CONCURRENT / seconds), cpu_ms_per_msg: Number(((used.user + used.system) / 1000 / CONCURRENT).toFixed(3)) };
}

const results: Record<string, unknown> = {};
let offset = 0;
for (const [name, send] of Object.entries(senders)) {
  for (let i = 0; i < 50; i++) await send(offset++); // warm up connections and JIT
  const seq = await sequential(send, (offset += SEQUENTIAL));
  const con = await concurrent(send, (offset += CONCURRENT));
  results[name] = { ...seq, ...con };
}
const base = results['raw nodemailer'] as { msg_per_s: number; p50_ms: number; cpu_ms_per_msg: number };
for (const [name, r] of Object.entries(results) as [string, typeof base][]) {
  console.log(
    `${name.padEnd(34)} p50 ${String(r.p50_ms).padStart(6)} ms  p99 ${String((r as never as { p99_ms: number }).p99_ms).padStart(6)} ms  ` +
      `${String(r.msg_per_s).padStart(6)} msg/s (${(r.msg_per_s / base.msg_per_s).toFixed(2)}x raw)  cpu ${r.cpu_ms_per_msg} ms/msg (${(r.cpu_ms_per_msg / base.cpu_ms_per_msg).toFixed(2)}x raw)`,
  );
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/send.json', import.meta.url), JSON.stringify({ node: process.version, sequential: SEQUENTIAL, concurrent: CONCURRENT, inFlight: IN_FLIGHT, results }, null, 2));
raw.close();
await mailer.close();
child.stdin!.end();
await once(child, 'exit');
