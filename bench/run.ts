/**
 * npm run bench [-- --quick] [-- --json] [-- --only a,b]: every scenario against its baseline, each run in its own
 * child process (bench/scenario.ts) with the dev sink in another. A row is the median of 3 runs (1 with --quick).
 * Every child has a timeout and so does the whole run. Loopback only. See bench/README.md.
 */
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const JSON_OUT = args.includes('--json');
const onlyAt = args.indexOf('--only');
const ONLY = onlyAt >= 0 ? (args[onlyAt + 1] ?? '').split(',') : undefined;
const RUNS = QUICK ? 1 : 3;
const CHILD_TIMEOUT_MS = Number(process.env.BENCH_CHILD_TIMEOUT_MS ?? (QUICK ? 60_000 : 300_000));
const TOTAL_TIMEOUT_MS = QUICK ? 360_000 : 5_400_000;

const SCENARIOS = ['send_overhead', 'pipeline_memory', 'pipeline_postgres', 'enqueue_postgres', 'template_render', 'mcp_tool_call', 'tracking_rewrite', 'claim_depth', 'bulk'];
const NOT_YET: string[] = [];
/**
 * `bulk` runs its four store-and-size children itself and sends 220,000 messages at full size: one run, a longer
 * timeout. A peak RSS is not the kind of figure a median of three steadies.
 */
const RUNS_OF: Record<string, number> = { bulk: 1 };
const TIMEOUT_OF: Record<string, number> = { bulk: QUICK ? 120_000 : 2_400_000 };
const log = (line: string) => process.stderr.write(`${line}\n`);

const children = new Set<ReturnType<typeof spawn>>();
const overall = setTimeout(() => {
  log(`bench: the whole run passed ${TOTAL_TIMEOUT_MS / 1000} s; stopping`);
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
}, TOTAL_TIMEOUT_MS);
overall.unref();

function runOnce(name: string, index: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--conditions=@agent-smtp/source', '--import', 'tsx', new URL('./scenario.ts', import.meta.url).pathname, name, QUICK ? '1' : '0', String(index)],
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    children.add(child);
    let last = '';
    let stderr = '';
    createInterface({ input: child.stdout! }).on('line', (line) => { if (line.trim()) last = line; });
    child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000); });
    // detached: the child leads its own process group, so a timeout also ends its sink
    const timeoutMs = process.env.BENCH_CHILD_TIMEOUT_MS ? CHILD_TIMEOUT_MS : (TIMEOUT_OF[name] ?? CHILD_TIMEOUT_MS);
    const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { child.kill('SIGKILL'); } }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* group already gone */ }
      if (code === 0) {
        try { return resolve(JSON.parse(last) as Record<string, unknown>); } catch { /* fall through */ }
      }
      reject(new Error(signal ? `killed (${signal}) after ${timeoutMs / 1000} s` : `exit ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
/** Median of each numeric field across runs (ratio recomputed per run, then its median); other fields from run 1. */
function combine(runs: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...runs[0] };
  for (const key of Object.keys(runs[0]!)) {
    const values = runs.map((r) => r[key]);
    if (values.every((v) => typeof v === 'number')) out[key] = Number(median(values as number[]).toFixed(3));
  }
  return out;
}

const results: Record<string, unknown> = {};
let failed = 0;
for (const name of SCENARIOS.filter((s) => !ONLY || ONLY.includes(s))) {
  const runs: Record<string, unknown>[] = [];
  const errors: string[] = [];
  const runsOfThis = RUNS_OF[name] ?? RUNS;
  for (let i = 0; i < runsOfThis; i++) {
    const load = loadavg()[0]!;
    try {
      runs.push({ ...(await runOnce(name, i)), loadavg_at_start: Number(load.toFixed(2)) });
      if (!JSON_OUT) log(`  ${name} run ${i + 1}/${runsOfThis} done`);
    } catch (error) {
      errors.push((error as Error).message);
      log(`  ${name} run ${i + 1}/${runsOfThis} failed: ${(error as Error).message}`);
    }
  }
  const meta = { runs: runs.length, node: process.version, cores: availableParallelism(), loadavg: loadavg().map((x) => Number(x.toFixed(2))) };
  if (runs.length === 0) { failed++; results[name] = { error: errors.join('; '), ...meta }; continue; }
  results[name] = { ...combine(runs), ...meta, ...(errors.length ? { errors } : {}) };
}
for (const name of NOT_YET) results[name] = { status: 'not yet' };

if (JSON_OUT) {
  process.stdout.write(`${JSON.stringify({ ...results, _meta: { quick: QUICK, runs_per_row: RUNS, note: QUICK ? '--quick: 1 run per row, small sizes' : 'median of 3 runs' } })}\n`);
} else {
  const fmt = (x: unknown) => (typeof x === 'number' ? String(x) : x === null || x === undefined ? '-' : String(x));
  console.log(`agent-smtp bench (${QUICK ? 'quick: 1 run per row, small sizes' : `median of ${RUNS} runs`}), node ${process.version}, ${availableParallelism()} cores, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`${'key'.padEnd(18)}${'figure'.padStart(10)}${'baseline'.padStart(10)}${'ratio'.padStart(8)}  ${'n'.padStart(7)} ${'conc'.padStart(5)}  unit / details`);
  for (const [name, r] of Object.entries(results) as [string, Record<string, unknown>][]) {
    if (r.status) { console.log(`${name.padEnd(18)}${'not yet'.padStart(10)}`); continue; }
    if (r.error) { console.log(`${name.padEnd(18)}${'FAILED'.padStart(10)}  ${fmt(r.error)}`); continue; }
    const core = new Set(['figure', 'baseline', 'ratio', 'unit', 'n', 'concurrency', 'runs', 'node', 'cores', 'loadavg', 'loadavg_at_start', 'errors']);
    const details = Object.entries(r).filter(([k]) => !core.has(k)).map(([k, v]) => `${k}=${fmt(v)}`).join(' ');
    console.log(`${name.padEnd(18)}${fmt(r.figure).padStart(10)}${fmt(r.baseline).padStart(10)}${fmt(r.ratio).padStart(8)}  ${fmt(r.n).padStart(7)} ${fmt(r.concurrency).padStart(5)}  ${fmt(r.unit)}`);
    console.log(`${''.padEnd(18)}  ${details}`);
  }
}
clearTimeout(overall);
process.exit(failed ? 1 : 0);
