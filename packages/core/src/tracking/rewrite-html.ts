import { QuoteType, Tokenizer, type TokenizerCallbacks } from 'htmlparser2';

/** A link with this attribute (any value, or none) is never rewritten. */
export const NO_TRACK_ATTRIBUTE = 'data-agent-smtp-notrack';
/** Marks the unsubscribe link (the footer the pipeline adds carries it); never rewritten. */
export const UNSUBSCRIBE_ATTRIBUTE = 'data-agent-smtp-unsubscribe';

export interface RewriteHtmlOptions {
  /**
   * Called for each rewritable link, in document order, with its URL (entities decoded, leading and trailing
   * whitespace and inner tabs and newlines removed, as a browser reads it) and its index among rewritable links.
   * Returns the URL to write in its place, or undefined to keep the link as it is.
   */
  link?: ((url: string, index: number) => string | undefined) | undefined;
  /** The open pixel's URL: a 1x1 image goes before the last `</body>` (else `</html>`, else at the end). */
  pixelUrl?: string | undefined;
  /** HTML put before the pixel (or where the pixel would go), e.g. a visible unsubscribe footer. */
  footerHtml?: string | undefined;
}

export interface RewrittenLink {
  index: number;
  url: string;
}

export interface RewrittenHtml {
  html: string;
  /** Every rewritable link, in document order (also those `link` chose to keep). */
  links: RewrittenLink[];
}

/**
 * Rewrites the `href` of `<a>`, `<area>` and VML (`<v:roundrect>` and kin) tags that point at http(s) URLs, and adds
 * a footer and an open pixel. Only those attribute values change: every other byte (entities, case, quoting,
 * whitespace, comments, doctype) stays as it was, and with no `link`, `pixelUrl` or `footerHtml` the output is the
 * input. One pass of htmlparser2's tokenizer, linear in the input; malformed HTML never throws (a tag cut off by the
 * end of the input is left alone).
 *
 * Not rewritten: `mailto:`, `tel:`, `sms:`, `javascript:`, `#fragment` and relative URLs (a `<base href>` is not
 * applied: such links stay as written), and links carrying `data-agent-smtp-notrack` or `data-agent-smtp-unsubscribe`.
 *
 * Conditional comments (`<!--[if mso]> … <![endif]-->`) are comments to an HTML parser, but Outlook renders them,
 * and the VML buttons inside are often the only link Outlook users can click. So the text of a comment that starts
 * with `[if` is tokenized once more and its links are rewritten too, in document order. That is safe: a replacement
 * is attribute-escaped, `<` and `>` included, so it cannot end the comment. Other comments are left untouched.
 */
export function rewriteHtml(html: string, options: RewriteHtmlOptions = {}): RewrittenHtml {
  const scan = scanHtml(html, options.link);
  let insertAt = html.length;
  if (scan.lastBodyClose >= 0) insertAt = scan.lastBodyClose;
  else if (scan.lastHtmlClose >= 0) insertAt = scan.lastHtmlClose;
  const insert = `${options.footerHtml ?? ''}${options.pixelUrl === undefined ? '' : openPixel(options.pixelUrl)}`;
  if (insert) insertEdit(scan.edits, { start: insertAt, end: insertAt, text: insert });
  return { html: applyEdits(html, scan.edits), links: scan.links };
}

/** The open pixel: 1x1, no border or spacing. Not `display:none`, which some clients take as a reason not to load it. */
function openPixel(url: string): string {
  return `<img src="${escapeAttribute(url)}" width="1" height="1" alt="" border="0" style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" />`;
}

// ─── scanning ─────────────────────────────────────────────────────────────────────────────────────────────────────

interface Edit {
  start: number;
  end: number;
  text: string;
}

interface HrefValue {
  /** The raw value's span in the input, without its quotes. */
  start: number;
  end: number;
  quote: QuoteType;
  decoded: string;
}

/** What a scan finds; shared by the pass over the document and the passes over its conditional comments. */
interface ScanResult {
  readonly link: RewriteHtmlOptions['link'];
  readonly edits: Edit[];
  readonly links: RewrittenLink[];
  lastBodyClose: number;
  lastHtmlClose: number;
}

function scanHtml(html: string, link: RewriteHtmlOptions['link']): ScanResult {
  const result: ScanResult = { link, edits: [], links: [], lastBodyClose: -1, lastHtmlClose: -1 };
  new LinkFinder(result, html, 0, true).run();
  return result;
}

/**
 * The tokenizer's callbacks, over `source` (the document, or a conditional comment's text at `offset` in it). The
 * tokenizer reports positions only; values are sliced from `source` when needed, i.e. for link tags only.
 */
class LinkFinder implements TokenizerCallbacks {
  // The tag being read: whether it may carry a link, its first href, and whether an opt-out attribute was seen.
  private linkTag = false;
  private href: HrefValue | undefined;
  private hrefSeen = false;
  private optedOut = false;
  // The attribute being read.
  private inHref = false;
  private nameEnd = 0;
  private pieces: string[] = [];

  constructor(
    private readonly result: ScanResult,
    private readonly source: string,
    private readonly offset: number,
    /** False for the text of a conditional comment, which is never scanned deeper. */
    private readonly top: boolean,
  ) {}

  run(): void {
    const tokenizer = new Tokenizer({ decodeEntities: true }, this);
    tokenizer.write(this.source);
    tokenizer.end();
  }

  onopentagname(start: number, end: number): void {
    this.linkTag = isLinkTag(this.source, start, end);
    this.href = undefined;
    this.hrefSeen = false;
    this.optedOut = false;
    this.inHref = false;
  }

  onattribname(start: number, end: number): void {
    this.inHref = false;
    if (!this.linkTag) return;
    const name = this.source.slice(start, end).toLowerCase();
    if (name === 'href' && !this.hrefSeen) {
      // Browsers use the first of duplicate attributes.
      this.hrefSeen = true;
      this.inHref = true;
      this.nameEnd = end;
      this.pieces = [];
    } else if (name === NO_TRACK_ATTRIBUTE || name === UNSUBSCRIBE_ATTRIBUTE) {
      this.optedOut = true;
    }
  }

  onattribdata(start: number, end: number): void {
    if (this.inHref) this.pieces.push(this.source.slice(start, end));
  }

  onattribentity(codepoint: number): void {
    if (this.inHref) this.pieces.push(String.fromCodePoint(codepoint));
  }

  onattribend(quote: QuoteType, end: number): void {
    if (!this.inHref) return;
    this.inHref = false;
    if (quote === QuoteType.NoValue) return;
    const source = this.source;
    let start: number;
    if (quote === QuoteType.Unquoted) {
      // After the name: whitespace, `=`, whitespace, then the value.
      start = source.indexOf('=', this.nameEnd) + 1;
      while (start < end && isHtmlWhitespace(source.charCodeAt(start))) start++;
    } else {
      // `end` is just past the closing quote; the opening one is the first such quote after the name.
      start = source.indexOf(quote === QuoteType.Double ? '"' : "'", this.nameEnd) + 1;
      end -= 1;
    }
    const decoded = this.pieces.length === 1 ? this.pieces[0]! : this.pieces.join('');
    this.href = { start: start + this.offset, end: end + this.offset, quote, decoded };
    this.pieces = [];
  }

  onopentagend(): void {
    this.tagEnd();
  }

  onselfclosingtag(): void {
    this.tagEnd();
  }

  onclosetag(start: number, end: number): void {
    if (!this.top || end - start !== 4) return;
    const name = this.source.slice(start, end).toLowerCase();
    // `start` is the name's; the tag's `</` is just before it.
    if (name === 'body') this.result.lastBodyClose = start - 2;
    else if (name === 'html') this.result.lastHtmlClose = start - 2;
  }

  /** `[start, end - offset)` is the comment's text, without `<!--` and `-->`. */
  oncomment(start: number, end: number, offset: number): void {
    if (!this.top) return;
    end -= offset;
    const source = this.source;
    let i = start;
    while (i < end && isHtmlWhitespace(source.charCodeAt(i))) i++;
    if (end - i < 3 || source.slice(i, i + 3).toLowerCase() !== '[if') return;
    new LinkFinder(this.result, source.slice(start, end), start, false).run();
  }

  oncdata(): void {}
  ondeclaration(): void {}
  onprocessinginstruction(): void {}
  ontext(): void {}
  ontextentity(): void {}
  onend(): void {}

  private tagEnd(): void {
    const href = this.href;
    this.linkTag = false;
    this.href = undefined;
    if (!href || this.optedOut) return;
    const url = trackableUrl(href.decoded);
    if (url === undefined) return;
    const { links, edits, link } = this.result;
    const index = links.length;
    links.push({ index, url });
    const replacement = link?.(url, index);
    if (replacement === undefined) return;
    const escaped = escapeAttribute(replacement);
    // An unquoted value gets double quotes; a quoted one keeps its quotes (the escape suits either).
    edits.push({ start: href.start, end: href.end, text: href.quote === QuoteType.Unquoted ? `"${escaped}"` : escaped });
  }
}

/** `a`, `area`, or a VML element (`v:roundrect`, `v:rect`, …), in any case; slices only names that may match. */
function isLinkTag(source: string, start: number, end: number): boolean {
  const first = source.charCodeAt(start) | 0x20;
  if (first === 0x61) return end - start === 1 || (end - start === 4 && source.slice(start, end).toLowerCase() === 'area');
  return first === 0x76 && source.charCodeAt(start + 1) === 0x3a;
}

// ─── URLs ─────────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * The URL as a browser reads an href (leading and trailing C0 controls and spaces stripped, tabs and newlines
 * removed), when its scheme is http or https; else undefined. Loops, not regexes: the value is attacker-sized.
 */
function trackableUrl(value: string): string | undefined {
  let start = 0;
  let end = value.length;
  while (start < end && value.charCodeAt(start) <= 0x20) start++;
  while (end > start && value.charCodeAt(end - 1) <= 0x20) end--;
  let url = value.slice(start, end);
  if (url.includes('\t') || url.includes('\n') || url.includes('\r')) url = url.replace(/[\t\n\r]/g, '');
  const scheme = url.slice(0, 6).toLowerCase();
  return scheme.startsWith('http:') || scheme === 'https:' ? url : undefined;
}

/** Safe inside either quote, and inside a comment (no `>`, so no `-->`). */
function escapeAttribute(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/[&"'<>]/g, (c) => ATTRIBUTE_ESCAPES[c]!);
}
const NEEDS_ESCAPE = /[&"'<>]/;
const ATTRIBUTE_ESCAPES: Record<string, string> = { '&': '&amp;', '"': '&quot;', "'": '&#39;', '<': '&lt;', '>': '&gt;' };

const isHtmlWhitespace = (c: number) => c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0c || c === 0x0d;

/** Keeps `edits` in order of position (links after `</body>` come after the footer). */
function insertEdit(edits: Edit[], edit: Edit): void {
  let i = edits.length;
  while (i > 0 && edits[i - 1]!.start > edit.start) i--;
  edits.splice(i, 0, edit);
}

function applyEdits(html: string, edits: readonly Edit[]): string {
  if (edits.length === 0) return html;
  let out = '';
  let at = 0;
  for (const edit of edits) {
    out += html.slice(at, edit.start) + edit.text;
    at = edit.end;
  }
  return out + html.slice(at);
}
