import { basename } from 'node:path';
import { PolicyError } from '../errors/policy-error.js';
import { readAttachmentFile } from '../message/attachment-files.js';
import type { AttachmentInput, OutgoingEmail } from '../message/email-schema.js';
import type { CompiledPolicy } from '../policy/check-policy.js';

/**
 * Reads the attachments given as `{ path }` from the agent's attachment folder, within its caps, and returns the
 * email with their content in place. Everything that can be refused is refused before the first byte is read: no
 * folder, too many files; then each file is opened inside the folder only, and its size checked before reading.
 * An email without such attachments is returned as it is.
 */
export async function readPathAttachments(input: OutgoingEmail, policy: CompiledPolicy): Promise<OutgoingEmail> {
  const attachments = Array.isArray(input?.attachments) ? input.attachments : undefined;
  if (!attachments?.some((a) => a && typeof a === 'object' && 'path' in a)) return input;
  const rules = policy.attachments;
  if (rules === false || rules.directory === undefined) {
    throw new PolicyError(
      'POLICY_ATTACHMENT_NOT_ALLOWED',
      rules === false
        ? 'This agent may not attach files. Nothing was sent; send the email without attachments.'
        : 'This agent may not attach files by path: it has no attachment folder. Nothing was sent; pass the file content instead, or ask the user to set one up.',
      { field: 'attachments' },
    );
  }
  if (attachments.length > rules.maxCount) {
    throw new PolicyError('POLICY_ATTACHMENT_NOT_ALLOWED', `This email has ${attachments.length} attachments; this agent may attach at most ${rules.maxCount}. Nothing was sent.`, {
      field: 'attachments',
    });
  }
  let budget = rules.maxTotalBytes;
  const read: AttachmentInput[] = [];
  for (const [index, attachment] of attachments.entries()) {
    if (!attachment || typeof attachment !== 'object' || !('path' in attachment) || typeof attachment.path !== 'string') {
      read.push(attachment);
      continue;
    }
    const content = await readAttachmentFile(attachment.path, { directory: rules.directory, maxBytes: budget }, `attachments[${index}].path`);
    budget -= content.length;
    const { path, ...rest } = attachment;
    read.push({ ...rest, filename: attachment.filename ?? basename(path), content });
  }
  return { ...input, attachments: read };
}
