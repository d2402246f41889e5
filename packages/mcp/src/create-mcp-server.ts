import {
  AgentSmtpError,
  ConfigError,
  createMailTools,
  formatToolError,
  type Logger,
  type Mailer,
  type MailService,
  type MailTool,
  type MailToolsOptions,
  safeLogger,
  type ToolContext,
  type ToolOutcome,
  toToolError,
} from '@agent-smtp/core';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { jsonSchemaValidator as JsonSchemaValidator } from '@modelcontextprotocol/sdk/validation';
import { clientCanElicit, DEFAULT_APPROVAL_TIMEOUT_MS, elicitApproval, elicitationApprover } from './elicit-approval.js';
import { serveToolListForCaller } from './tool-list-for-caller.js';
import { VERSION } from './version.js';

/** Whom a request acts for: one owner (a user of the platform) and, optionally, one of their agents. */
export interface McpCaller {
  ownerId: string;
  agentId?: string | undefined;
}

export interface CreateMcpServerOptions extends MailToolsOptions {
  /** The mailer the tools send through: every call acts for its owner. Give this or `service`. */
  mailer?: Mailer;
  /**
   * A service serving many users: each call acts for the caller `identify` finds in the request's `authInfo`, and a
   * call without one is refused (`FORBIDDEN`). Give this or `mailer`.
   */
  service?: MailService;
  /**
   * Finds the caller in the MCP SDK's `authInfo` (set by `startMcpHttpServer`, or by your own transport's auth
   * middleware). Default: `authInfo.extra.ownerId` and `authInfo.extra.agentId` when they are strings. An OAuth
   * `clientId` names an application, not a user, so it is not used unless you say so here.
   */
  identify?: (authInfo: AuthInfo) => McpCaller | undefined;
  /** Tools to expose instead of `createMailTools(mailer ?? service, options)`. */
  tools?: readonly MailTool[];
  /** Server name reported to clients. Default: `agent-smtp`. */
  name?: string;
  /** Instructions clients may show the model. */
  instructions?: string;
  /**
   * When the policy holds an email for approval and the client supports elicitation, ask its user right away in a
   * form (the user sees it, the model does not): approve sends, decline rejects. False leaves every held email
   * pending (for `approve_email` or your own approval screen), e.g. when the client's user must not approve
   * their own agent's mail. Default: true for a `mailer` (one user, whose own client asks them), false for a `service`
   * (the client is the agent's host program, holding the agent's token: it could answer for itself).
   */
  elicitApproval?: boolean;
  /** How long a held email waits for the user's answer before the call returns it as `pending_approval`. Default 5 minutes. */
  approvalTimeoutMs?: number;
}

const MAX_TIMER_MS = 2_147_483_647;

const DEFAULT_INSTRUCTIONS =
  'Email tools. send_email sends real email: only to recipients the user named or approved. ' +
  'Use get_email_status with the id it returns to follow up, and get_smtp_status or test_smtp_connection when sending fails.';

/**
 * A fresh `McpServer` with the agent-smtp tools registered (title, description, input and output schema,
 * annotations). The caller picks the transport: `server.connect(new StdioServerTransport())`, a Streamable
 * HTTP transport, or an in-memory pair in tests.
 */
export function createMcpServer(options: CreateMcpServerOptions): McpServer {
  const server = new McpServer(
    { name: options.name ?? 'agent-smtp', title: 'agent-smtp', version: VERSION },
    { instructions: options.instructions ?? DEFAULT_INSTRUCTIONS, jsonSchemaValidator: validatorOnFirstUse() },
  );
  const tools = options.tools ?? createMailTools(mailSource(options), options);
  const logger = safeLogger(options.logger);
  const identify = options.identify ?? callerFromExtra;
  const askHuman = options.elicitApproval ?? options.service === undefined;
  const approvalTimeoutMs = options.approvalTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS;
  // A timer longer than 2^31-1 ms fires at once in Node: the user would never get to answer.
  if (!(approvalTimeoutMs > 0 && approvalTimeoutMs <= MAX_TIMER_MS)) {
    throw new ConfigError(`approvalTimeoutMs is ${approvalTimeoutMs} but must be milliseconds from 1 to ${MAX_TIMER_MS} (about 24 days).`, { setting: 'approvalTimeoutMs' });
  }
  const callerOf = (authInfo: AuthInfo | undefined): McpCaller | undefined => (authInfo ? identify(authInfo) : undefined);
  for (const mailTool of tools) {
    server.registerTool(
      mailTool.name,
      {
        title: mailTool.title,
        description: mailTool.description,
        inputSchema: mailTool.inputSchema,
        outputSchema: mailTool.outputSchema,
        annotations: { title: mailTool.title, ...mailTool.annotations },
      },
      async (input: unknown, extra) => {
        const caller = callerOf(extra.authInfo);
        // No toolCallId: a JSON-RPC id restarts at 0 on every connection, so as an idempotency key it would replay
        // another email's result. Only the model's idempotency_key protects against a resend over MCP.
        const context: ToolContext = {
          signal: extra.signal,
          requestId: extra.requestId,
          ...(caller ? { ownerId: caller.ownerId, agentId: caller.agentId } : {}),
        };
        if (askHuman && clientCanElicit(server.server)) {
          context.askApproval = elicitApproval({
            server: server.server,
            relatedRequestId: extra.requestId,
            signal: extra.signal,
            timeoutMs: approvalTimeoutMs,
            approver: elicitationApprover(server.server.getClientVersion()?.name, caller?.ownerId),
            logger,
          });
        }
        const outcome = await executeSafely(mailTool, input, context, logger);
        if (outcome.ok) {
          const value = outcome.value as Record<string, unknown>;
          return { content: [{ type: 'text' as const, text: JSON.stringify(value) }], structuredContent: value };
        }
        return { isError: true, content: [{ type: 'text' as const, text: formatToolError(outcome.error) }] };
      },
    );
  }
  if (tools.some((tool) => tool.describeFor)) {
    serveToolListForCaller(server, tools, (extra) => {
      const caller = callerOf(extra.authInfo);
      return caller ? { ownerId: caller.ownerId, agentId: caller.agentId } : {};
    }, logger);
  }
  return server;
}

/**
 * The SDK's server makes an Ajv instance in its constructor, for the one thing it validates with JSON Schema: a
 * client's answer to an elicitation (the approval form). That constructor was nine tenths of `createMcpServer`, which
 * the stateless HTTP server runs for every request; this makes the instance when an answer first needs checking.
 */
function validatorOnFirstUse(): JsonSchemaValidator {
  let ajv: AjvJsonSchemaValidator | undefined;
  return { getValidator: (schema) => (ajv ??= new AjvJsonSchemaValidator()).getValidator(schema) };
}

/**
 * The tools of `createMailTools` never throw, but `tools` may hold the caller's own. The MCP SDK would turn a
 * throw into a result carrying the raw message (a database error, a connection string), so it is made the same
 * generic error result the built-in tools give, and the original is logged.
 */
async function executeSafely(tool: MailTool, input: unknown, context: ToolContext, logger: Logger): Promise<ToolOutcome<unknown>> {
  try {
    return await tool.execute(input as never, context);
  } catch (error) {
    if (!AgentSmtpError.isInstance(error)) {
      logger.error({ err: error, tool: tool.name, ownerId: context.ownerId, agentId: context.agentId, requestId: context.requestId }, 'tool failed with an unexpected error');
    }
    return { ok: false, error: toToolError(error, { tool: tool.name }) };
  }
}

function mailSource(options: CreateMcpServerOptions): Mailer | MailService {
  if (options.mailer && options.service) {
    throw new ConfigError('createMcpServer got both mailer and service: give mailer for one user, or service for many.', { setting: 'service' });
  }
  const source = options.mailer ?? options.service;
  if (!source) throw new ConfigError('createMcpServer needs mailer (one user) or service (many users), or tools.', { setting: 'mailer' });
  return source;
}

/** The default `identify`: the caller `startMcpHttpServer` (or your middleware) put in `authInfo.extra`. */
export function callerFromExtra(authInfo: AuthInfo): McpCaller | undefined {
  const ownerId = authInfo.extra?.['ownerId'];
  const agentId = authInfo.extra?.['agentId'];
  if (typeof ownerId !== 'string' || ownerId === '') return undefined;
  return { ownerId, ...(typeof agentId === 'string' && agentId !== '' ? { agentId } : {}) };
}
