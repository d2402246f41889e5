import { marked } from 'marked';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { TemplateError } from '../errors/template-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { type ParsedAddress, parseAddress } from '../message/address.js';
import { fingerprintEmail } from '../message/fingerprint.js';
import { DEFAULT_MAX_MARKDOWN_BYTES, type MessageLimits } from '../message/limits.js';
import { assertMessageFits } from '../message/message-size.js';
import { assertSingleLine, type NormalizedEmail, normalizeEmail } from '../message/normalize-email.js';
import { assertStorableText } from '../message/storable-text.js';
import { toStoredEmail } from '../message/stored-email.js';
import { checkFrom, checkRecipientsAndContent, type CompiledPolicy, OPEN_POLICY, policedComposed } from '../policy/check-policy.js';
import type { NewOutboxRecord } from '../store/mail-store.js';
import { randomUuid } from '../store/random-uuid.js';
import { applyTracking, type ResolvedTracking } from './apply-tracking.js';
import type { TemplateEngine } from '../template/template-engine.js';

/** What composing needs to know about the mailer: its defaults, limits and template engine. */
export interface ComposeContext {
  limits: MessageLimits;
  templates: TemplateEngine;
  defaultFrom: ParsedAddress | undefined;
  /** The sender the servers imply (their `from`, or a username that is an address). */
  serverFrom: ParsedAddress | undefined;
  defaultReplyTo: ParsedAddress[];
  defaultHeaders: Record<string, string>;
  /** The agent's policy (default: none). Its checks run on the wire-form addresses, before any template is rendered. */
  policy?: CompiledPolicy | undefined;
  /** Links, pixel and unsubscribe headers (default: none); needs `ids`. */
  tracking?: ResolvedTracking | undefined;
  /** The owner and the record id the message will be stored under, assigned before composing. */
  ids?: { ownerId: string; messageId: string } | undefined;
}

/**
 * The compose pipeline: normalize -> defaults -> sender identity -> policy -> render -> Markdown -> tracking -> final checks.
 * Returns the email as it will be stored and sent. Throws a typed error naming the field (a `PolicyError` for what
 * the agent's policy refuses).
 */
export function composeEmail(input: unknown, context: ComposeContext): NormalizedEmail {
  const email = normalizeEmail(input, context.limits);
  const policy = context.policy ?? OPEN_POLICY;
  // A sender the caller chose must be one the policy allows; the configured one always is.
  if (email.from) checkFrom(email.from, context.defaultFrom ?? context.serverFrom, policy);
  // A reply-to the caller chose is held to the recipient rules (replies would carry the thread there); the default is not.
  const agentReplyTo = email.replyTo.length ? email.replyTo : undefined;
  applyDefaults(email, context);
  checkRecipientsAndContent(policedComposed(email, agentReplyTo), policy);
  if (email.variables) renderTemplates(email, email.variables, context.templates, context.limits);
  else if (email.markdown !== undefined) setMarkdownBody(email, email.markdown, email.markdown, context.limits);
  if (context.tracking && context.ids) {
    // Taken before tracking: its tokens name the record, so two calls with one key would never look alike otherwise.
    if (email.idempotencyKey !== undefined) email.fingerprint = contentFingerprint(email);
    applyTracking(email, context.tracking, context.ids);
  }
  // The final size check: the message as it will be stored and sent, after rendering and defaults.
  assertMessageFits(email, context.limits);
  return email;
}

/** A new outbox record id. */
export function newRecordId(): string {
  return randomUuid('msg_');
}

/** The outbox record for a composed email: the Message-ID is assigned here, once (the id too, unless given). */
export function toNewOutboxRecord(
  email: NormalizedEmail,
  owner: { ownerId: string; agentId: string | undefined },
  maxAttempts: number,
  id: string = newRecordId(),
): NewOutboxRecord {
  const stored = toStoredEmail(email);
  return {
    id,
    ownerId: owner.ownerId,
    agentId: owner.agentId,
    idempotencyKey: email.idempotencyKey,
    fingerprint: email.idempotencyKey === undefined ? undefined : (email.fingerprint ?? contentFingerprint(email, stored)),
    messageId: randomUuid('<', `@${stored.from.domain}>`),
    email: stored,
    // Undefined is "now" by the store's clock: this process's clock may be off.
    sendAt: email.sendAt,
    maxAttempts,
    tags: email.tags,
    metadata: email.metadata,
  };
}

/** What tells a retry (the same content) from a conflict under one idempotency key. */
function contentFingerprint(email: NormalizedEmail, stored = toStoredEmail(email)): string {
  return fingerprintEmail(stored, { tags: email.tags, metadata: email.metadata });
}

function applyDefaults(email: NormalizedEmail, context: ComposeContext): void {
  const from = email.from ?? context.defaultFrom ?? context.serverFrom;
  if (!from) {
    throw ValidationError.of('from', 'is required: pass from, or set defaults.from when creating the mailer (or SMTP_FROM_EMAIL)');
  }
  email.from = from;
  if (!email.replyTo.length) email.replyTo = context.defaultReplyTo;
  if (Object.keys(context.defaultHeaders).length) email.headers = { ...context.defaultHeaders, ...email.headers };
}

/** Renders subject, text and html; in strict mode one error names every missing variable of all three. */
function renderTemplates(email: NormalizedEmail, variables: Record<string, unknown>, templates: TemplateEngine, limits: MessageLimits): void {
  const missing = new Set<string>();
  const problems: string[] = [];
  // A character is at least one byte, so output longer than the byte limit is over it: rendering stops there and
  // the final size check refuses it, instead of a small template expanding a large value without bound.
  const maxLength = limits.maxMessageBytes;
  const renderField = (source: string, escape: 'html' | 'none', field: string): string => {
    try {
      return templates.render(source, variables, { escape, maxLength });
    } catch (err) {
      if (!(err instanceof TemplateError) || err.position !== undefined) throw withField(err, field);
      err.missing.forEach((name) => missing.add(name));
      problems.push(`${field}: ${err.message}`);
      return source;
    }
  };
  email.subject = renderField(email.subject, 'none', 'subject');
  if (email.text !== undefined) email.text = renderField(email.text, 'none', 'text');
  if (email.html !== undefined) email.html = renderField(email.html, 'html', 'html');
  if (email.markdown !== undefined) {
    // Rendered twice: raw for the text part, Markdown-escaped before conversion, so a value can add neither
    // markup nor Markdown (a link, an image) to the HTML.
    const text = renderField(email.markdown, 'none', 'markdown');
    if (!problems.length) setMarkdownBody(email, text, templates.render(email.markdown, variables, { escape: 'markdown', maxLength }), limits);
  }
  if (problems.length) {
    const message = missing.size ? `Missing template variables: ${[...missing].join(', ')}; pass them in variables` : problems.join('; ');
    throw new TemplateError(message, { missing: [...missing] });
  }
  // A variable may hold a line break; in the subject it would write headers of its own. The output is checked as
  // well as the values, so no way of combining them can produce text a store cannot keep.
  assertSingleLine(email.subject, 'subject');
  if (email.text !== undefined) assertStorableText(email.text, 'text');
  if (email.html !== undefined) assertStorableText(email.html, 'html');
}

/** Markdown becomes the HTML part, and (unless `text` was given) the plain-text part as written. */
function setMarkdownBody(email: NormalizedEmail, text: string, escapedSource: string, limits: MessageLimits): void {
  if (email.text === undefined) email.text = text;
  // The Markdown itself is the author's (it may hold HTML, as Markdown allows); only values are escaped.
  if (email.html === undefined) email.html = convertMarkdown(escapedSource, limits);
}

// marked's inline rules (e-mail autolinks, emphasis) rescan a whitespace-free run from each of its positions, so
// one long "word" costs the square of its length; between the word cap and the size cap the work stays bounded.
const MAX_MARKDOWN_WORD = 1000;

/** Markdown to HTML within bounded work: sizes and word lengths are checked before the converter sees the text. */
function convertMarkdown(source: string, limits: MessageLimits): string {
  const maxBytes = limits.maxMarkdownBytes ?? DEFAULT_MAX_MARKDOWN_BYTES;
  // A character is at least one byte, so a cheap length check settles most cases before the byte count.
  if (source.length > maxBytes || Buffer.byteLength(source, 'utf8') > maxBytes) {
    throw ValidationError.of('markdown', `is over ${maxBytes} bytes after rendering, the most converted to HTML (limits.maxMarkdownBytes); send a long body as html instead`);
  }
  const word = longestWord(source);
  if (word > MAX_MARKDOWN_WORD) {
    throw ValidationError.of('markdown', `has a run of ${word} characters without a space or line break; the most is ${MAX_MARKDOWN_WORD} for Markdown (put long data in an attachment, or send html)`);
  }
  try {
    return marked.parse(source, { async: false, gfm: true });
  } catch (err) {
    // Deeply nested lists or quotes exhaust the converter's stack; that is the input's shape, not our fault.
    if (err instanceof RangeError) throw ValidationError.of('markdown', 'nests lists or quotes too deeply to convert; flatten it or send html');
    throw err;
  }
}

function longestWord(text: string): number {
  let longest = 0;
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x20 || code === 0x0a || code === 0x09 || code === 0x0d) {
      if (run > longest) longest = run;
      run = 0;
    } else run++;
  }
  return run > longest ? run : longest;
}

function withField(err: unknown, field: string): unknown {
  if (err instanceof TemplateError) return new TemplateError(`${field}: ${err.message}`, { missing: err.missing, position: err.position, cause: err });
  return err;
}

/** The sender the highest-priority server implies: its `from`, or a username that is an address. */
export function senderFromServers(servers: readonly SmtpServerConfig[]): ParsedAddress | undefined {
  const sorted = [...servers].sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0));
  for (const server of sorted) {
    const candidate = server.from ?? (server.auth?.user.includes('@') ? server.auth.user : undefined);
    if (candidate) return parseAddress(candidate, server.from ? 'servers.from' : 'servers.auth.user');
  }
  return undefined;
}
