/**
 * tracking_rewrite: `rewriteHtml` on a ~50 KB newsletter, every link signed with `signToken` (what the send pipeline
 * does per HTML message), against htmlparser2's bare tokenizer over the same input (the floor for any rewriter built
 * on it). Run by bench/scenario.ts; no sink needed.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type { TokenizerCallbacks } from 'htmlparser2';
import { rewriteHtml } from '../packages/core/src/tracking/rewrite-html.js';
import { signToken } from '../packages/core/src/tracking/tracking-token.js';
import type { TrackingKeys } from '../packages/core/src/tracking/tracking-types.js';
import type { Row } from './scenario.js';

const TARGET_BYTES = 50 * 1024;

/** The Mailchimp-like fixture with its body's story block repeated up to ~50 KB: tables, entities in hrefs, VML. */
function newsletter(): string {
  const base = readFileSync(new URL('../packages/core/src/tracking/__fixtures__/mailchimp-like.html', import.meta.url), 'utf8');
  const start = base.indexOf('<h1 ');
  const end = base.indexOf('</table>', base.indexOf('Read reviews')) + '</table>'.length;
  const block = base.slice(start, end);
  let story = '';
  for (let i = 0; base.length + story.length < TARGET_BYTES; i++) story += block.replaceAll('ref=body', `ref=story${i}`);
  return base.slice(0, start) + story + base.slice(end);
}

function timed(fn: () => unknown, ms: number): { perSecond: number; count: number } {
  for (let i = 0; i < 20; i++) fn();
  let count = 0;
  const t = performance.now();
  let now = t;
  while (now - t < ms) {
    for (let i = 0; i < 5; i++) fn();
    count += 5;
    now = performance.now();
  }
  return { perSecond: count / ((now - t) / 1000), count };
}

export async function trackingRewrite({ quick, run }: { quick: boolean; run: number }): Promise<Row> {
  const html = newsletter();
  const bytes = Buffer.byteLength(html);
  const keys: TrackingKeys = { current: 'k1', keys: { k1: Buffer.alloc(32, 7).toString('base64') } };
  const ids = { ownerId: 'owner_bench', messageId: 'msg_01J9ZBENCHBENCHBENCHBENCH' };
  const base = 'https://t.example.com/mail';
  const rewrite = () =>
    rewriteHtml(html, {
      link: (url, link) => `${base}/c/${signToken(keys, { kind: 'click', ...ids, link, url })}`,
      pixelUrl: `${base}/o/${signToken(keys, { kind: 'open', ...ids })}`,
    });
  const noop = () => {};
  const callbacks: TokenizerCallbacks = {
    onattribdata: noop, onattribentity: noop, onattribend: noop, onattribname: noop, oncdata: noop, onclosetag: noop, oncomment: noop,
    ondeclaration: noop, onend: noop, onopentagend: noop, onopentagname: noop, onprocessinginstruction: noop, onselfclosingtag: noop,
    ontext: noop, ontextentity: noop,
  };
  // core's own copy (the root may hoist another major version for other packages)
  const fromCore = createRequire(new URL('../packages/core/package.json', import.meta.url)).resolve('htmlparser2');
  const { Tokenizer } = (await import(pathToFileURL(fromCore).href)) as typeof import('htmlparser2');
  const tokenize = () => { const t = new Tokenizer({ decodeEntities: true }, callbacks); t.write(html); t.end(); };

  const sample = rewrite();
  if (sample.links.length < 50 || !sample.html.includes(`${base}/o/`)) throw new Error(`rewrite found ${sample.links.length} links`);
  const MS = quick ? 400 : 1500;
  // the first measured pays the warm-up: alternate with the run index
  let ours: ReturnType<typeof timed>;
  let floor: ReturnType<typeof timed>;
  if (run % 2 === 0) { ours = timed(rewrite, MS); floor = timed(tokenize, MS); } else { floor = timed(tokenize, MS); ours = timed(rewrite, MS); }
  const mb = bytes / 1e6;
  const unsigned = timed(() => rewriteHtml(html, { link: (_, link) => `${base}/c/${link}`, pixelUrl: `${base}/o/x` }), MS);
  const signing = timed(() => signToken(keys, { kind: 'click', ...ids, link: 7, url: 'https://shop.example.com/p/1?c=%E2%9C%93&lang=fr' }), quick ? 100 : 300);
  return {
    figure: Number((ours.perSecond * mb).toFixed(2)), baseline: Number((floor.perSecond * mb).toFixed(2)), ratio: Number((ours.perSecond / floor.perSecond).toFixed(3)),
    unit: 'MB/s rewriteHtml + signToken per link vs bare htmlparser2 tokenizer',
    n: ours.count, concurrency: 1, input_bytes: bytes, output_bytes: Buffer.byteLength(sample.html), links: sample.links.length,
    ms_per_message: Number((1000 / ours.perSecond).toFixed(3)), sign_per_s: Math.round(signing.perSecond),
    unsigned_mb_s: Number((unsigned.perSecond * mb).toFixed(2)),
  };
}
