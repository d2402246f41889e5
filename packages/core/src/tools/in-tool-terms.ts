import { ConfigError } from '../errors/config-error.js';
import { TemplateError } from '../errors/template-error.js';
import { ValidationError, type ValidationIssue } from '../errors/validation-error.js';

/**
 * How one core field is named in one tool's input, and what to say instead of core advice the tool cannot take
 * (`set encoding: "utf8"` to a tool whose only attachment field is base64).
 */
interface ToolFieldName {
  tool: string;
  core: RegExp;
  /** The tool's field; `$1` and the like refer to the core pattern's groups. */
  field: string;
  /** Replaces what matches in the issue's message. */
  advice?: readonly [RegExp, string];
}

/** The one table from the email's field names (what the core reports) to the tools' input names. */
const TOOL_FIELD_NAMES: readonly ToolFieldName[] = [
  { tool: 'send_email', core: /^(?:text|html|markdown)$/, field: 'body', advice: [/\bsend a long body as html\b/, 'send a long body with format "html"'] },
  { tool: 'send_email', core: /^replyTo(?=$|\[)/, field: 'reply_to' },
  { tool: 'send_email', core: /^inReplyTo$/, field: 'in_reply_to' },
  { tool: 'send_email', core: /^idempotencyKey$/, field: 'idempotency_key' },
  {
    tool: 'send_email',
    core: /^(attachments\[\d+\])\.content$/,
    field: '$1.content_base64',
    advice: [/ \(set encoding: "utf8" for plain text\)$/, ': encode the file\'s bytes as base64 (A-Z, a-z, 0-9, "+" and "/", padded with "=")'],
  },
  { tool: 'send_email', core: /^(attachments\[\d+\])\.contentType$/, field: '$1.content_type' },
  { tool: 'switch_smtp_server', core: /^server$/, field: 'name' },
];

/** Operator settings a model cannot change: naming them only invites the model to try. */
const OPERATOR_SETTING = / \(limits\.\w+\)/g;

/**
 * Restates an error in the terms of the tool that met it: fields by the tool's input names, advice the model can act
 * on. A missing sender is the operator's fault, not the model's (no tool has a `from`), so it becomes a
 * `CONFIG_ERROR` saying what to set. Any other error passes through unchanged.
 */
export function inToolTerms(tool: string, error: unknown): unknown {
  if (TemplateError.isInstance(error)) return templateInToolTerms(tool, error);
  if (!ValidationError.isInstance(error)) return error;
  if (error.field === 'from' && error.message.startsWith('from: is required')) {
    return new ConfigError(
      'No sender (From) address is configured, and the tool cannot choose one. The operator must set SMTP_FROM_EMAIL ' +
        '(or defaults.from in createMailer, or the fromAddress of the stored SMTP config).',
      { setting: 'SMTP_FROM_EMAIL', cause: error },
    );
  }
  const issues = error.issues.map((issue) => toToolIssue(tool, issue));
  if (issues.every((issue, i) => issue === error.issues[i])) return error;
  return new ValidationError(issues, { cause: error });
}

function toToolIssue(tool: string, issue: ValidationIssue): ValidationIssue {
  const row = TOOL_FIELD_NAMES.find((r) => r.tool === tool && r.core.test(issue.field));
  let message = issue.message.replace(OPERATOR_SETTING, '');
  if (row?.advice) message = message.replace(...row.advice);
  const field = row ? issue.field.replace(row.core, row.field) : issue.field;
  return field === issue.field && message === issue.message ? issue : { field, message };
}

/** A field named at the start of a template fault ("text: …", "…; html: …"), as the core prefixes them. */
const TEMPLATE_FIELD_PREFIX = /(^|; )([A-Za-z][\w.[\]]*): /g;

/** Names the fields of a template error as the tool does (`body`, not `text`), through the same table. */
function templateInToolTerms(tool: string, error: TemplateError): TemplateError {
  const message = error.message.replace(TEMPLATE_FIELD_PREFIX, (whole, start: string, field: string) => {
    const row = TOOL_FIELD_NAMES.find((r) => r.tool === tool && r.core.test(field));
    return row ? `${start}${field.replace(row.core, row.field)}: ` : whole;
  });
  if (message === error.message) return error;
  return new TemplateError(message, { missing: error.missing, ...(error.position === undefined ? {} : { position: error.position }), cause: error });
}
