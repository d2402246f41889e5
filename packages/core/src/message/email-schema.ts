import { z } from 'zod/v4';

const addressObject = z.object({
  name: z.string().max(256).optional().describe('Display name, e.g. "Ada Lovelace".'),
  address: z.string().max(254).describe('The email address, e.g. ada@example.com.'),
});
const addressInput = z.union([z.string().max(2_000), addressObject]);
/** One address, a comma-separated list, or an array of either. */
export const addressListSchema = z.union([addressInput, z.array(addressInput).max(1_000)]);

const contentAttachment = z
  .object({
    filename: z.string().min(1).max(255),
    /** Text (`encoding: 'utf8'`, the default), base64 (`encoding: 'base64'`), or raw bytes. */
    content: z.union([z.string(), z.instanceof(Uint8Array)]),
    encoding: z.enum(['utf8', 'base64']).optional(),
    contentType: z.string().max(255).optional(),
    /** Content-ID for inline images referenced as `cid:...` from the HTML. */
    cid: z.string().max(255).optional(),
  })
  .strict();

/**
 * A file read from the agent's attachment folder (`policy.attachments.directory`), by a path relative to it. Only
 * for an agent whose policy names a folder; the file is read when the email is accepted.
 */
const fileAttachment = z
  .object({
    path: z.string().min(1).max(4_096),
    /** Default: the file's own name. */
    filename: z.string().min(1).max(255).optional(),
    contentType: z.string().max(255).optional(),
    cid: z.string().max(255).optional(),
  })
  .strict();

export const attachmentSchema = z.union([contentAttachment, fileAttachment]);

const metadataValue = z.union([z.string().max(1_000), z.number(), z.boolean(), z.null()]);

/**
 * An email to send. `to`, `cc` and `bcc` take a string (one address or a comma-separated list), a
 * `{ name, address }` object, or an array of either. At least one of `text`, `html` and `markdown` is required.
 * When `variables` is given, `subject`, `text` and `html` are rendered as templates (`{name}`, `{?flag}…{/flag}`).
 */
export const emailSchema = z
  .object({
    from: z.union([z.string().max(2_000), addressObject]).optional(),
    to: addressListSchema.optional(),
    cc: addressListSchema.optional(),
    bcc: addressListSchema.optional(),
    replyTo: addressListSchema.optional(),
    subject: z.string().max(998),
    text: z.string().optional(),
    html: z.string().optional(),
    /** Markdown, sent as HTML plus the Markdown itself as the plain-text part (unless `text` is given). */
    markdown: z.string().optional(),
    attachments: z.array(attachmentSchema).max(100).optional(),
    headers: z.record(z.string(), z.string()).optional(),
    /** The Message-ID this replies to, e.g. `<id@example.com>`. */
    inReplyTo: z.string().max(998).optional(),
    /** Message-IDs of the thread so far, oldest first: an array, or one string separated by spaces. */
    references: z.union([z.string().max(998), z.array(z.string().max(998)).max(100)]).optional(),
    variables: z.record(z.string(), z.unknown()).optional(),
    idempotencyKey: z.string().min(1).max(256).optional(),
    /** When to send, for `enqueue` (a Date or an ISO 8601 time with offset). Default: now. */
    sendAt: z.union([z.date(), z.iso.datetime({ offset: true })]).optional(),
    tags: z.array(z.string().min(1).max(100)).max(50).optional(),
    metadata: z.record(z.string().max(100), metadataValue).optional(),
    /** Turns parts of the mailer's tracking off for this message (it never turns on what the mailer has off). */
    tracking: z.object({ opens: z.boolean().optional(), clicks: z.boolean().optional(), unsubscribe: z.boolean().optional() }).strict().optional(),
  })
  .strict();

export type OutgoingEmail = z.input<typeof emailSchema>;
export type AttachmentInput = z.input<typeof attachmentSchema>;
