import { ConfigError } from '../errors/config-error.js';
import { TemplateError } from '../errors/template-error.js';

/**
 * How inserted values are written: `html` escapes them for an HTML body, `markdown` backslash-escapes Markdown
 * syntax (so a value cannot become a link, an image or raw HTML once the Markdown is converted), `none` inserts
 * them as they are.
 */
export type TemplateEscape = 'html' | 'markdown' | 'none';

export interface RenderOptions {
  /** Default: `none`. Use `html` for HTML bodies; literal template text is never escaped. */
  escape?: TemplateEscape;
  /** Fail with one `TemplateError` naming every missing variable instead of rendering it as ''. Default: false. */
  strict?: boolean;
  /**
   * Stop once the output is longer than this many characters and return what was rendered so far (which is then
   * longer than `maxLength`), so a caller enforcing a size limit refuses it without a small template having
   * expanded a large value thousands of times in memory first. Default: no limit.
   */
  maxLength?: number;
}

/** A template parsed once, ready to render many times. */
export interface CompiledTemplate {
  readonly source: string;
  /** every variable path the template references, sections included, unique, in order */
  readonly variables: readonly string[];
  render(variables: Record<string, unknown>, options?: RenderOptions): string;
}

export interface TemplateEngineOptions {
  /** Default for `render()` when the call does not say. Default: false. */
  strict?: boolean;
  /** Compiled templates kept; the least recently used is dropped beyond this. Default: 500. */
  cacheSize?: number;
  /**
   * Memory the cache may hold, in bytes, estimated as 4 bytes per character of source (the source is both the
   * cache key and, in pieces, the compiled text) plus 64 per compiled part. The least recently used templates are
   * dropped beyond it, and a template costing more than an eighth of it is compiled on every use and never cached,
   * so one huge source cannot flush the rest. Default: 8 MiB (so sources up to about 256 K characters are cached).
   */
  cacheBytes?: number;
}

interface SectionPart {
  readonly kind: 'section';
  readonly name: string;
  readonly path: readonly string[];
  readonly inverted: boolean;
  /** Index of the first part after the section, so a hidden section is skipped in one step. */
  end: number;
}

type Part =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'variable'; readonly name: string; readonly path: readonly string[] }
  | SectionPart;

type Sigil = '' | '?' | '^' | '/';

interface Tag {
  readonly sigil: Sigil;
  readonly name: string;
  /** Index just past the closing `}`. */
  readonly end: number;
}

interface OpenSection {
  readonly part: SectionPart;
  readonly position: number;
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const DOT = 0x2e;
const QUESTION = 0x3f;
const CARET = 0x5e;
const SLASH = 0x2f;

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function isNameChar(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || code === 0x5f || isDigit(code);
}

/**
 * Reads a tag starting at the `{` at `start`, or returns undefined when the braces hold anything else, so
 * CSS, JSON and prose braces stay literal text without needing to be escaped.
 */
function matchTag(source: string, start: number): Tag | undefined {
  let i = start + 1;
  let sigil: Sigil = '';
  const first = source.charCodeAt(i);
  if (first === QUESTION) sigil = '?';
  else if (first === CARET) sigil = '^';
  else if (first === SLASH) sigil = '/';
  if (sigil !== '') i++;

  const nameStart = i;
  let isFirstSegment = true;
  for (;;) {
    const segmentStart = i;
    while (isNameChar(source.charCodeAt(i))) i++;
    if (i === segmentStart) return undefined;
    if (isDigit(source.charCodeAt(segmentStart))) {
      // A segment may be an array index, but only after the first, and only if it is all digits.
      if (isFirstSegment) return undefined;
      for (let j = segmentStart + 1; j < i; j++) if (!isDigit(source.charCodeAt(j))) return undefined;
    }
    isFirstSegment = false;
    const next = source.charCodeAt(i);
    if (next === CLOSE_BRACE) return { sigil, name: source.slice(nameStart, i), end: i + 1 };
    if (next !== DOT) return undefined;
    i++;
  }
}

function where(source: string, index: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = source.indexOf('\n'); i !== -1 && i < index; i = source.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `line ${line}, column ${index - lineStart + 1}`;
}

function parse(source: string): { parts: Part[]; variables: string[] } {
  const parts: Part[] = [];
  const variables = new Set<string>();
  const open: OpenSection[] = [];
  // Text waiting to become a part; `{{` folds into it so a literal brace never splits the text.
  let pending = '';
  let literalStart = 0;
  let searchFrom = 0;

  const flush = (until: number): void => {
    pending += source.slice(literalStart, until);
    if (pending !== '') parts.push({ kind: 'text', text: pending });
    pending = '';
  };

  for (;;) {
    const brace = source.indexOf('{', searchFrom);
    if (brace === -1) break;
    if (source.charCodeAt(brace + 1) === OPEN_BRACE) {
      pending += source.slice(literalStart, brace + 1);
      literalStart = searchFrom = brace + 2;
      continue;
    }
    const tag = matchTag(source, brace);
    if (tag === undefined) {
      searchFrom = brace + 1;
      continue;
    }
    flush(brace);
    literalStart = searchFrom = tag.end;

    if (tag.sigil === '') {
      variables.add(tag.name);
      parts.push({ kind: 'variable', name: tag.name, path: tag.name.split('.') });
    } else if (tag.sigil === '/') {
      const top = open.pop();
      if (top === undefined) {
        throw new TemplateError(
          `Closing tag {/${tag.name}} at ${where(source, brace)} has no open section; ` +
            `open one with {?${tag.name}} or {^${tag.name}}, or write {{/${tag.name}} for literal text`,
          { position: brace },
        );
      }
      if (top.part.name !== tag.name) {
        const opener = `{${top.part.inverted ? '^' : '?'}${top.part.name}}`;
        throw new TemplateError(
          `Closing tag {/${tag.name}} at ${where(source, brace)} does not match ${opener} opened at ` +
            `${where(source, top.position)}; close ${opener} with {/${top.part.name}} first`,
          { position: brace },
        );
      }
      top.part.end = parts.length;
    } else {
      variables.add(tag.name);
      const section: SectionPart = { kind: 'section', name: tag.name, path: tag.name.split('.'), inverted: tag.sigil === '^', end: -1 };
      parts.push(section);
      open.push({ part: section, position: brace });
    }
  }

  const unclosed = open.at(-1);
  if (unclosed !== undefined) {
    const { name, inverted } = unclosed.part;
    throw new TemplateError(
      `Section {${inverted ? '^' : '?'}${name}} opened at ${where(source, unclosed.position)} is never closed; ` +
        `add {/${name}} where it should end`,
      { position: unclosed.position },
    );
  }
  flush(source.length);
  return { parts, variables: [...variables] };
}

/** Own properties only: a template must never reach `constructor`, `__proto__` or anything else inherited. */
function resolve(root: unknown, path: readonly string[]): unknown {
  let value = root;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function isShown(value: unknown, inverted: boolean): boolean {
  const truthy = Array.isArray(value) ? value.length > 0 : Boolean(value);
  return truthy !== inverted;
}

/** The text for a present value, or undefined when it has no sensible text (objects, functions, bad dates). */
function format(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(value);
    // Inside a list, null and undefined print as '' as Array#join does; alone they are caught as missing first.
    case 'undefined':
      return '';
    case 'object': {
      if (value === null) return '';
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
      if (!Array.isArray(value)) return undefined;
      let text = '';
      for (let i = 0; i < value.length; i++) {
        const item = format(value[i]);
        if (item === undefined) return undefined;
        text += i === 0 ? item : `, ${item}`;
      }
      return text;
    }
    default:
      return undefined;
  }
}

/** Says why `format()` refused a value, and what to write instead. */
function describeUnprintable(name: string, value: unknown): string {
  if (Array.isArray(value)) {
    const index = value.findIndex((item) => format(item) === undefined);
    return `{${name}} is a list that cannot be printed: ${describeUnprintable(`${name}.${index}`, value[index])}`;
  }
  if (value instanceof Date) return `{${name}} is an invalid Date`;
  if (typeof value === 'object' && value !== null) {
    const field = Object.keys(value).find((key) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(key));
    return field === undefined
      ? `{${name}} is an object with no printable fields; pass a string, number, date or list`
      : `{${name}} is an object; use a field such as {${name}.${field}}`;
  }
  return `{${name}} is a ${typeof value}; pass a string, number, date or list`;
}

const HTML_SPECIAL = /[&<>"']/;

/**
 * Most values hold nothing to escape: one scan with a compiled regex says so and the value is returned as it is.
 * A switch, not an object keyed by char code: a lookup that misses (almost every character) walks the prototype
 * chain, and that was three quarters of render time.
 */
function escapeHtml(text: string): string {
  const first = text.search(HTML_SPECIAL);
  if (first === -1) return text;
  let out = text.slice(0, first);
  let last = first;
  for (let i = first; i < text.length; i++) {
    let entity: string;
    switch (text.charCodeAt(i)) {
      case 0x26:
        entity = '&amp;';
        break;
      case 0x3c:
        entity = '&lt;';
        break;
      case 0x3e:
        entity = '&gt;';
        break;
      case 0x22:
        entity = '&quot;';
        break;
      case 0x27:
        entity = '&#39;';
        break;
      default:
        continue;
    }
    if (last !== i) out += text.slice(last, i);
    out += entity;
    last = i + 1;
  }
  return last === text.length ? out : out + text.slice(last);
}

// CommonMark lets a backslash escape any ASCII punctuation, which then renders as the literal character.
const MARKDOWN_PUNCTUATION = /[!-/:-@[-`{-~]/g;

function escapeMarkdown(text: string): string {
  return text.replace(MARKDOWN_PUNCTUATION, '\\$&');
}

function renderParts(parts: readonly Part[], variables: Record<string, unknown>, options: RenderOptions | undefined): string {
  const escape = options?.escape === 'html' ? escapeHtml : options?.escape === 'markdown' ? escapeMarkdown : undefined;
  const strict = options?.strict === true;
  const maxLength = options?.maxLength ?? Number.POSITIVE_INFINITY;
  // Allocated only when a strict render actually finds a fault, so the common path stays allocation-free. Sets,
  // because a template may name a hundred thousand distinct missing variables.
  let missing: Set<string> | undefined;
  let unprintable: Set<string> | undefined;
  let out = '';

  let i = 0;
  while (i < parts.length) {
    if (out.length > maxLength) return out;
    const part = parts[i] as Part;
    i++;
    if (part.kind === 'text') {
      out += part.text;
    } else if (part.kind === 'section') {
      if (!isShown(resolve(variables, part.path), part.inverted)) i = part.end;
    } else {
      const value = resolve(variables, part.path);
      if (value === undefined || value === null) {
        if (strict) (missing ??= new Set()).add(part.name);
        continue;
      }
      const text = format(value);
      if (text === undefined) {
        if (strict) (unprintable ??= new Set()).add(describeUnprintable(part.name, value));
        continue;
      }
      out += escape ? escape(text) : text;
    }
  }

  if (missing !== undefined || unprintable !== undefined) {
    const faults = missing === undefined ? [] : [`Missing template variables: ${[...missing].join(', ')}`];
    if (unprintable !== undefined) faults.push(...unprintable);
    throw new TemplateError(faults.join('. '), { missing: missing === undefined ? [] : [...missing] });
  }
  return out;
}

/** Parses `source` once; the result renders with a flat loop, skipping hidden sections in one jump. */
export function compileTemplate(source: string): CompiledTemplate {
  return compileCounted(source).template;
}

function compileCounted(source: string): { template: CompiledTemplate; parts: number } {
  const { parts, variables } = parse(source);
  // Frozen because an engine hands the same compiled template to every caller of the same source.
  const template = Object.freeze({
    source,
    variables: Object.freeze(variables),
    render: (values: Record<string, unknown>, options?: RenderOptions) => renderParts(parts, values, options),
  });
  return { template, parts: parts.length };
}

const BYTES_PER_SOURCE_CHAR = 4;
const BYTES_PER_PART = 64;
const DEFAULT_CACHE_BYTES = 8 * 1024 * 1024;

/** True when `source` holds a tag or a `{{`, i.e. when rendering could change it. */
export function hasTemplateTags(source: string): boolean {
  for (let brace = source.indexOf('{'); brace !== -1; brace = source.indexOf('{', brace + 1)) {
    if (source.charCodeAt(brace + 1) === OPEN_BRACE || matchTag(source, brace) !== undefined) return true;
  }
  return false;
}

interface CacheEntry {
  readonly template: CompiledTemplate;
  readonly bytes: number;
}

/** Compiles templates once per source string and keeps the most recently used ones, bounded by count and bytes. */
export class TemplateEngine {
  readonly #strict: boolean;
  readonly #cacheSize: number;
  readonly #cacheBytes: number;
  // A Map iterates in insertion order, so re-inserting on every hit makes the first key the least recently used.
  readonly #cache = new Map<string, CacheEntry>();
  // The last entry in #cache's order; a hit on it needs no re-insertion (which costs a Map delete and set).
  #newest: CacheEntry | undefined;
  #cachedBytes = 0;

  constructor(options: TemplateEngineOptions = {}) {
    const cacheSize = options.cacheSize ?? 500;
    if (!Number.isInteger(cacheSize) || cacheSize < 0) {
      throw new ConfigError(`TemplateEngine cacheSize must be a whole number of templates, 0 or more (got ${String(cacheSize)})`, {
        setting: 'cacheSize',
      });
    }
    const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
    if (!Number.isInteger(cacheBytes) || cacheBytes < 0) {
      throw new ConfigError(`TemplateEngine cacheBytes must be a whole number of bytes, 0 or more (got ${String(cacheBytes)})`, {
        setting: 'cacheBytes',
      });
    }
    this.#strict = options.strict ?? false;
    this.#cacheSize = cacheSize;
    this.#cacheBytes = cacheBytes;
  }

  /** Estimated bytes the cache holds now (see `cacheBytes`). */
  get cachedBytes(): number {
    return this.#cachedBytes;
  }

  compile(source: string): CompiledTemplate {
    const cached = this.#cache.get(source);
    if (cached !== undefined) {
      if (cached !== this.#newest) {
        this.#cache.delete(source);
        this.#cache.set(source, cached);
        this.#newest = cached;
      }
      return cached.template;
    }
    const { template, parts } = compileCounted(source);
    const bytes = source.length * BYTES_PER_SOURCE_CHAR + parts * BYTES_PER_PART;
    if (this.#cacheSize > 0 && bytes <= this.#cacheBytes / 8) {
      const added = { template, bytes };
      this.#cache.set(source, added);
      this.#newest = added;
      this.#cachedBytes += bytes;
      for (const [key, entry] of this.#cache) {
        if (this.#cache.size <= this.#cacheSize && this.#cachedBytes <= this.#cacheBytes) break;
        this.#cache.delete(key);
        this.#cachedBytes -= entry.bytes;
      }
    }
    return template;
  }

  render(source: string, variables: Record<string, unknown>, options: RenderOptions = {}): string {
    return this.compile(source).render(variables, { escape: options.escape, strict: options.strict ?? this.#strict, maxLength: options.maxLength });
  }
}

let defaultEngine: TemplateEngine | undefined;

/** Renders with a shared engine (non-strict by default, at most 500 cached templates and 8 MiB). */
export function renderTemplate(source: string, variables: Record<string, unknown>, options?: RenderOptions): string {
  defaultEngine ??= new TemplateEngine();
  return defaultEngine.render(source, variables, options);
}
