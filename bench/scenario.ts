/**
 * One scenario, one run, in this process (started by bench/run.ts): `scenario.ts <name> <quick 0|1> <run index>`.
 * Starts the dev sink in a child process (so CPU figures are this process's alone), measures the SDK path and its
 * baseline (order rotated by run index: the first sender measured pays the warm-up), prints one JSON line.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { compileTemplate, createMailer, MemoryStore, TemplateEngine, type MailStore } from '@agent-smtp/core';
import nodemailer from 'nodemailer';
import { trackingRewrite } from './tracking-rewrite.js';
import { bulk, bulkOne, claimDepth, type ScaleHelpers } from './store-scale.js';

const [name = '', quickArg = '0', runArg = '0', ...scenarioArgs] = process.argv.slice(2);
const QUICK = quickArg === '1';
const RUN = Number(runArg);
const POOL = 5;
const LOOPBACK = '127.0.0.1';

export interface Row {
  figure: number;
  baseline: number | null;
  ratio: number | null;
  unit: string;
  n: number;
  concurrency: number;
  [extra: string]: unknown;
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const cpuMs = (used: NodeJS.CpuUsage) => (used.user + used.system) / 1000;
function percentile(times: number[], p: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  return round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!);
}
/** Runs `[a, b]` in an order that alternates with the run index. */
async function rotated<A, B>(a: () => Promise<A>, b: () => Promise<B>): Promise<[A, B]> {
  if (RUN % 2 === 0) { const x = await a(); return [x, await b()]; }
  const y = await b();
  return [await a(), y];
}

async function startSink() {
  const child = spawn(process.execPath, ['--conditions=@agent-smtp/source', '--import', 'tsx', new URL('./sink-process.ts', import.meta.url).pathname], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const lines = createInterface({ input: child.stdout! });
  const pending: ((line: string) => void)[] = [];
  const queued: string[] = [];
  lines.on('line', (line) => { const next = pending.shift(); if (next) next(line); else queued.push(line); });
  const nextLine = () => new Promise<string>((resolve) => { const line = queued.shift(); if (line !== undefined) resolve(line); else pending.push(resolve); });
  const port = (JSON.parse(await nextLine()) as { port: number }).port;
  clearTimeout(timer);
  const ask = async (command: string) => { child.stdin!.write(`${command}\n`); return (JSON.parse(await nextLine()) as { count: number }).count; };
  return {
    host: LOOPBACK,
    port,
    /** Messages the sink has accepted since it started. */
    count: () => ask('count'),
    /** Resolves once the sink has accepted `n` messages in all (the sink polls, not this process). */
    waitFor: async (n: number, timeoutMs: number) => {
      let timeout: NodeJS.Timeout | undefined;
      const expired = new Promise<never>((_, reject) => { timeout = setTimeout(() => reject(new Error(`sink did not reach ${n} messages in ${timeoutMs} ms`)), timeoutMs); });
      try { return await Promise.race([ask(`wait ${n}`), expired]); } finally { clearTimeout(timeout); }
    },
    close: async () => {
      const exited = once(child, 'exit');
      child.stdin!.end();
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(kill);
    },
  };
}
type Sink = Awaited<ReturnType<typeof startSink>>;

const message = (i: number) => ({
  from: 'bench@example.com',
  to: 'ada@example.com',
  subject: `Bench ${i}`,
  text: 'Hello from the benchmark. '.repeat(20),
  html: `<p>${'Hello from the benchmark. '.repeat(20)}</p>`,
});
const rawPool = (sink: Sink) =>
  nodemailer.createTransport({ pool: true, host: sink.host, port: sink.port, secure: false, ignoreTLS: true, maxConnections: POOL, maxMessages: Infinity });
const sdkMailer = (sink: Sink, store?: MailStore) =>
  createMailer({ servers: [{ host: sink.host, port: sink.port, starttls: 'disabled', poolSize: POOL }], ...(store ? { store } : {}), defaults: { from: 'bench@example.com' }, env: {} });

type Send = (i: number) => Promise<unknown>;
async function concurrent(send: Send, n: number, inFlight: number, offset: number) {
  const cpu = process.cpuUsage();
  const t = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => { while (next < n) await send(offset + next++); }));
  const seconds = (performance.now() - t) / 1000;
  return { msg_per_s: n / seconds, cpu_ms_per_msg: cpuMs(process.cpuUsage(cpu)) / n };
}
async function sequential(send: Send, n: number, offset: number) {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await send(offset + i);
    times.push(performance.now() - t);
  }
  return { p50_ms: percentile(times, 0.5), p99_ms: percentile(times, 0.99) };
}

// ─── send_overhead ───────────────────────────────────────────────────────────────────────────────────────────
async function sendOverhead(): Promise<Row> {
  const N = QUICK ? 600 : 3000, SEQ = QUICK ? 100 : 300, C = 50;
  const sink = await startSink();
  const raw = rawPool(sink);
  const mailer = sdkMailer(sink, new MemoryStore());
  const rawSend: Send = (i) => raw.sendMail(message(i));
  const sdkSend: Send = (i) => mailer.send(message(i));
  let offset = 0;
  // Both paths warmed before either is measured: nodemailer's code is shared, so whichever went first paid its JIT.
  for (let i = 0; i < 200; i++) { await sdkSend(offset++); await rawSend(offset++); }
  const measure = async (send: Send) => {
    for (let i = 0; i < 50; i++) await send(offset++);
    const seq = await sequential(send, SEQ, (offset += SEQ));
    const con = await concurrent(send, N, C, (offset += N));
    return { ...seq, ...con };
  };
  const [sdk, base] = await rotated(() => measure(sdkSend), () => measure(rawSend));
  raw.close();
  await mailer.close();
  await sink.close();
  return {
    figure: Math.round(sdk.msg_per_s), baseline: Math.round(base.msg_per_s), ratio: round(sdk.msg_per_s / base.msg_per_s), unit: 'msg/s',
    n: N, concurrency: C, pool: POOL,
    cpu_ms_per_msg: round(sdk.cpu_ms_per_msg), baseline_cpu_ms_per_msg: round(base.cpu_ms_per_msg), cpu_ratio: round(sdk.cpu_ms_per_msg / base.cpu_ms_per_msg),
    seq_n: SEQ, p50_ms: sdk.p50_ms, p99_ms: sdk.p99_ms, baseline_p50_ms: base.p50_ms, baseline_p99_ms: base.p99_ms,
  };
}

// ─── pipelines: enqueue + worker + template, against raw pool on pre-rendered messages ───────────────────────────
const PIPE_HTML = '<h1>Hi {name}</h1><p>Your order {order} of {total} ships {when}.</p>{?vip}<p>Thanks for being VIP.</p>{/vip}<p>{footer}</p>';
const pipeVars = (i: number) => ({ name: `Ada ${i}`, order: `A-${i}`, total: `$${(i % 97) + 3}.00`, when: 'tomorrow', vip: i % 3 === 0, footer: 'Example Inc, 1 Street' });
const pipeTemplate = (i: number) => ({ to: 'ada@example.com', subject: 'Order {order}', html: PIPE_HTML, text: 'Hi {name}, order {order} ships {when}.', variables: pipeVars(i) });
const pipeRendered = (i: number) => {
  const v = pipeVars(i);
  return {
    from: 'bench@example.com', to: 'ada@example.com', subject: compileTemplate('Order {order}').render(v),
    html: compileTemplate(PIPE_HTML).render(v, { escape: 'html' }), text: compileTemplate('Hi {name}, order {order} ships {when}.').render(v),
  };
};

async function pipeline(store: MailStore, label: string, N: number, C: number, extra: Record<string, unknown> = {}): Promise<Row> {
  const sink = await startSink();
  const raw = rawPool(sink);
  const mailer = sdkMailer(sink, store);
  // warm up both paths' connections and JIT
  for (let i = 0; i < 20; i++) { await raw.sendMail(pipeRendered(i)); await mailer.send(message(i)); }
  const sdkRun = async () => {
    const before = await sink.count();
    const cpu = process.cpuUsage();
    const t = performance.now();
    const ids: string[] = [];
    // The bulk API: batches of 500, one store call each (mailer.enqueue per message is the tools' path).
    const templates = function* () { for (let i = 0; i < N; i++) yield pipeTemplate(i); };
    await mailer.enqueueMany(templates(), { batchSize: 500, onResult: (item) => { if (item.result) ids.push(item.result.id); } });
    const enqueuedMs = performance.now() - t;
    const worker = mailer.startWorker({ concurrency: C, pollMs: 50 });
    await sink.waitFor(before + N, QUICK ? 40_000 : 240_000);
    const seconds = (performance.now() - t) / 1000;
    const used = process.cpuUsage(cpu);
    await worker.stop();
    let failed = 0;
    for (const id of ids) if ((await mailer.getStatus(id))?.status !== 'sent') failed++;
    return { msg_per_s: N / seconds, cpu_ms_per_msg: cpuMs(used) / N, enqueue_ms: enqueuedMs, failed };
  };
  const rawRun = async () => {
    const messages = Array.from({ length: N }, (_, i) => pipeRendered(i));
    return concurrent((i) => raw.sendMail(messages[i]!), N, C, 0);
  };
  const [sdk, base] = await rotated(sdkRun, rawRun);
  raw.close();
  await mailer.close();
  await sink.close();
  return {
    figure: Math.round(sdk.msg_per_s), baseline: Math.round(base.msg_per_s), ratio: round(sdk.msg_per_s / base.msg_per_s), unit: 'msg/s (enqueue+drain end to end)',
    n: N, concurrency: C, pool: POOL, store: label,
    enqueue_ms: Math.round(sdk.enqueue_ms), failed: sdk.failed,
    // The two phases apart: `mailer.enqueueMany` in batches of 500, then the worker draining what it queued.
    enqueue_msg_per_s: Math.round(N / (sdk.enqueue_ms / 1000)), drain_msg_per_s: Math.round(N / (N / sdk.msg_per_s - sdk.enqueue_ms / 1000)),
    cpu_ms_per_msg: round(sdk.cpu_ms_per_msg), baseline_cpu_ms_per_msg: round(base.cpu_ms_per_msg), cpu_ratio: round(sdk.cpu_ms_per_msg / base.cpu_ms_per_msg),
    ...extra,
  };
}

async function postgresStore() {
  const { createPostgresStore } = await import('@agent-smtp/store-postgres');
  const schema = `agent_smtp_bench_${process.pid}_${Date.now()}`;
  const url = process.env.DATABASE_URL;
  if (url) {
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    const store = createPostgresStore({ client: pool, schema });
    await store.migrate();
    const where = new URL(url);
    return {
      store, label: `postgres server ${where.hostname}:${where.port || 5432}`, client: pool, schema,
      close: async () => { await pool.query(`drop schema if exists "${schema}" cascade`); await pool.end(); },
    };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const db = await PGlite.create();
  const store = createPostgresStore({ client: db, schema });
  await store.migrate();
  return { store, label: 'PGlite (in-process, DATABASE_URL unset)', client: db, schema, close: () => db.close() };
}

async function pipelineMemory(): Promise<Row> {
  return pipeline(new MemoryStore(), 'memory', QUICK ? 500 : 5000, 10);
}
async function pipelinePostgres(): Promise<Row> {
  const db = await postgresStore();
  try {
    return await pipeline(db.store, db.label, QUICK ? 300 : 5000, 10);
  } finally {
    await db.close();
  }
}

// ─── enqueue_postgres ──────────────────────────────────────────────────────────────────────────────────────────
async function enqueuePostgres(): Promise<Row> {
  const N = QUICK ? 5000 : 100_000, BATCH = 1000;
  const { newOutboxRecord, sampleStoredEmail } = await import('@agent-smtp/testing/store-contract');
  const db = await postgresStore();
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
  const rssBefore = process.memoryUsage().rss;
  const email = sampleStoredEmail({ attachments: [] });
  const batchOf = (prefix: string, done: number) => Array.from({ length: Math.min(BATCH, N - done) }, (_, j) =>
    newOutboxRecord('bench-owner', { email: { ...email, subject: `Bench ${done + j}` }, idempotencyKey: `${prefix}-${done + j}` }));
  try {
    const t = performance.now();
    for (let done = 0; done < N; done += BATCH) {
      await db.store.outbox.enqueueMany(batchOf('k', done));
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    const seconds = (performance.now() - t) / 1000;
    // Informative, not the figure: two batches in flight (a loader that builds the next batch while the database
    // stores the last), so this process's work and the server's overlap on two cores.
    const t2 = performance.now();
    let next = 0;
    await Promise.all([0, 1].map(async () => { for (let done = (next += BATCH) - BATCH; done < N; done = (next += BATCH) - BATCH) await db.store.outbox.enqueueMany(batchOf('p', done)); }));
    const seconds2 = (performance.now() - t2) / 1000;
    return {
      figure: Math.round(N / seconds), baseline: null, ratio: null, unit: 'msg/s', n: N, concurrency: 1, batch: BATCH, store: db.label,
      seconds: round(seconds, 2), peak_rss_mb: round(peak / 2 ** 20, 1), rss_before_mb: round(rssBefore / 2 ** 20, 1), target_msg_per_s: 20_000,
      two_in_flight_msg_per_s: Math.round(N / seconds2),
    };
  } finally {
    clearInterval(sampler);
    await db.close();
  }
}

// ─── template_render ───────────────────────────────────────────────────────────────────────────────────────────
/** ~5 KB of HTML, 30 variables, 2 sections; the same template for both engines. */
function templates() {
  const vars: Record<string, unknown> = {};
  const fields = Array.from({ length: 28 }, (_, i) => `field${i}`);
  fields.forEach((f, i) => { vars[f] = i % 4 === 0 ? `Value <${i}> & "quoted" text` : `Plain value number ${i} for the customer`; });
  vars.vip = true;
  vars.noOrders = false;
  const row = (f: string, tag: (n: string) => string) =>
    `<tr><td style="padding:8px;border-bottom:1px solid #eee;font-family:Arial,sans-serif">${f}</td><td style="padding:8px;border-bottom:1px solid #eee">${tag(f)}</td></tr>\n`;
  const build = (tag: (n: string) => string, open: (n: string) => string, close: (n: string) => string, openNot: (n: string) => string, closeNot: (n: string) => string) =>
    `<!doctype html><html><head><meta charset="utf-8"><title>Your account</title></head><body style="margin:0;background:#f6f6f6">` +
    `<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center"><table width="600" style="background:#fff">\n` +
    `<tr><td><h1 style="font-family:Arial,sans-serif;font-size:22px">Hello ${tag('field0')},</h1><p>Here is the summary of your account activity this month.</p></td></tr>\n` +
    fields.slice(1, 15).map((f) => row(f, tag)).join('') +
    `${open('vip')}<tr><td colspan="2" style="background:#fffbe6;padding:12px">As a VIP member (${tag('field15')}) you get free shipping on every order.</td></tr>${close('vip')}\n` +
    fields.slice(16).map((f) => row(f, tag)).join('') +
    `${openNot('noOrders')}<tr><td colspan="2">You have open orders; track them from your dashboard.</td></tr>${closeNot('noOrders')}\n` +
    `<tr><td colspan="2" style="font-size:12px;color:#888;padding:16px">You receive this email because you have an account with Example Inc. ` +
    `Example Inc, 1 Example Street, Example City. Unsubscribe any time from your settings page.</td></tr>\n</table></td></tr></table></body></html>`;
  const core = build((n) => `{${n}}`, (n) => `{?${n}}`, (n) => `{/${n}}`, (n) => `{^${n}}`, (n) => `{/${n}}`);
  const hbs = build((n) => `{{${n}}}`, (n) => `{{#if ${n}}}`, () => `{{/if}}`, (n) => `{{#unless ${n}}}`, () => `{{/unless}}`);
  return { core, hbs, vars, variableCount: fields.length + 2 };
}

function opsPerSecond(fn: () => unknown, ms: number): number {
  for (let i = 0; i < 2000; i++) fn();
  let ops = 0;
  const t = performance.now();
  let now = t;
  while (now - t < ms) {
    for (let i = 0; i < 200; i++) fn();
    ops += 200;
    now = performance.now();
  }
  return ops / ((now - t) / 1000);
}

async function templateRender(): Promise<Row> {
  const { default: Handlebars } = await import('handlebars');
  const { core, hbs, vars, variableCount } = templates();
  const compiled = compileTemplate(core);
  const engine = new TemplateEngine();
  const hb = Handlebars.compile(hbs);
  const a = compiled.render(vars, { escape: 'html' }), b = hb(vars);
  if (a.length < 4000 || Math.abs(a.length - b.length) > 200) throw new Error(`templates differ: ${a.length} vs ${b.length} chars`);
  const MS = QUICK ? 400 : 1500;
  const [ours, theirs] = await rotated(async () => opsPerSecond(() => compiled.render(vars, { escape: 'html' }), MS), async () => opsPerSecond(() => hb(vars), MS));
  const viaEngine = opsPerSecond(() => engine.render(core, vars, { escape: 'html' }), MS);
  return {
    figure: Math.round(ours), baseline: Math.round(theirs), ratio: round(ours / theirs), unit: 'renders/s (compiled, html escape)',
    n: Math.round(ours * (MS / 1000)), concurrency: 1, template_bytes: core.length, output_bytes: a.length, variables: variableCount, sections: 2,
    engine_render_per_s: Math.round(viaEngine), engine_ratio: round(viaEngine / theirs),
  };
}

// ─── mcp_tool_call ─────────────────────────────────────────────────────────────────────────────────────────────
/**
 * `tools/list` and `send_email` through the MCP server over three transports: the SDK's in-memory pair (the server's
 * own cost), stdio (the server in its own process, as an MCP client starts it: `bench/mcp-stdio-server.ts`) and
 * stateless Streamable HTTP (`startMcpHttpServer`, a fresh `McpServer` per request). Baseline: `mailer.send` in this
 * process to the same sink. The stdio server's mailer has its own pool, so stdio's added latency also holds one
 * process hop each way (JSON-RPC lines over pipes).
 */
async function mcpToolCall(): Promise<Row> {
  const N = QUICK ? 100 : 500, LISTS = QUICK ? 100 : 200;
  const { createMcpServer, startMcpHttpServer } = await import('@agent-smtp/mcp');
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { InMemoryTransport } = await import('@modelcontextprotocol/sdk/inMemory.js');
  const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
  const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
  type McpClient = InstanceType<typeof Client>;
  const sink = await startSink();
  const mailer = sdkMailer(sink, new MemoryStore());
  const direct: Send = (i) => mailer.send({ to: 'ada@example.com', subject: `Bench ${i}`, text: 'Hello from the benchmark. '.repeat(20) });

  const measure = async (client: McpClient) => {
    let t = performance.now();
    const tools = (await client.listTools()).tools.length;
    const listFirst = performance.now() - t;
    const listTimes: number[] = [];
    for (let i = 0; i < LISTS; i++) { t = performance.now(); await client.listTools(); listTimes.push(performance.now() - t); }
    const viaMcp: Send = async (i) => {
      const r = await client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: `Bench ${i}`, body: 'Hello from the benchmark. '.repeat(20) } });
      if (r.isError) throw new Error(`send_email failed: ${JSON.stringify(r.content)}`);
    };
    for (let i = 0; i < 30; i++) { await viaMcp(i); await direct(i); }
    const [mcp, base] = await rotated(() => sequential(viaMcp, N, 0), () => sequential(direct, N, 0));
    return { tools, listFirst, listTimes, mcp, base };
  };
  const fields = (prefix: string, m: Awaited<ReturnType<typeof measure>>) => ({
    [`${prefix}_p50_ms`]: m.mcp.p50_ms, [`${prefix}_p99_ms`]: m.mcp.p99_ms, [`${prefix}_baseline_p50_ms`]: m.base.p50_ms,
    [`${prefix}_added_p50_ms`]: round(m.mcp.p50_ms - m.base.p50_ms), [`${prefix}_added_p99_ms`]: round(m.mcp.p99_ms - m.base.p99_ms),
    [`${prefix}_tools_list_first_ms`]: round(m.listFirst), [`${prefix}_tools_list_p50_ms`]: percentile(m.listTimes, 0.5),
    [`${prefix}_tools_list_p99_ms`]: percentile(m.listTimes, 0.99),
  });

  // in-memory: the server's own cost, no transport
  const server = createMcpServer({ mailer });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  const memClient = new Client({ name: 'bench', version: '1.0.0' });
  await Promise.all([server.connect(serverTransport), memClient.connect(clientTransport)]);
  const mem = await measure(memClient);
  await memClient.close();
  await server.close();

  // stdio: the server in its own process, spawned by the SDK's client transport
  const stdioTransport = new StdioClientTransport({
    command: process.execPath,
    args: ['--conditions=@agent-smtp/source', '--import', 'tsx', new URL('./mcp-stdio-server.ts', import.meta.url).pathname, String(sink.port)],
    stderr: 'inherit',
  });
  const stdioClient = new Client({ name: 'bench', version: '1.0.0' });
  await stdioClient.connect(stdioTransport);
  const stdio = await measure(stdioClient);
  await stdioClient.close();

  // HTTP: stateless Streamable HTTP, in this process
  const http = await startMcpHttpServer({ mailer, port: 0 });
  const httpClient = new Client({ name: 'bench', version: '1.0.0' });
  await httpClient.connect(new StreamableHTTPClientTransport(new URL(http.url)));
  const overHttp = await measure(httpClient);
  await httpClient.close();
  await http.close();

  await mailer.close();
  await sink.close();
  return {
    figure: stdio.mcp.p50_ms, baseline: stdio.base.p50_ms, ratio: round(stdio.mcp.p50_ms / stdio.base.p50_ms), unit: 'ms p50 send_email over stdio vs mailer.send',
    n: N, concurrency: 1, tools: stdio.tools, tools_list_n: LISTS,
    added_p50_ms: round(stdio.mcp.p50_ms - stdio.base.p50_ms), added_p99_ms: round(stdio.mcp.p99_ms - stdio.base.p99_ms),
    ...fields('stdio', stdio), ...fields('http', overHttp), ...fields('inmemory', mem),
  };
}

const scaleHelpers = { quick: QUICK, postgresStore, startSink, sdkMailer } as unknown as ScaleHelpers;

const scenarios: Record<string, () => Promise<Row>> = {
  send_overhead: sendOverhead,
  pipeline_memory: pipelineMemory,
  pipeline_postgres: pipelinePostgres,
  enqueue_postgres: enqueuePostgres,
  template_render: templateRender,
  mcp_tool_call: mcpToolCall,
  tracking_rewrite: () => trackingRewrite({ quick: QUICK, run: RUN }),
  claim_depth: () => claimDepth(scaleHelpers),
  bulk: () => bulk(scaleHelpers),
  // one store and size of `bulk`, started by it: `bulk_one <quick> <run> <memory|postgres> <n>`
  bulk_one: () => bulkOne(scaleHelpers, scenarioArgs[0] ?? 'memory', Number(scenarioArgs[1] ?? 1000)),
};

const run = scenarios[name];
if (!run) {
  process.stderr.write(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}\n`);
  process.exit(2);
}
const row = await run();
process.stdout.write(`${JSON.stringify(row)}\n`);
process.exit(0);
