export { createMailer, Mailer } from './mailer/mailer.js';
export { createMailService, MailService } from './service/mail-service.js';
export type { MailServiceOptions, ServerResolver } from './service/mail-service.js';
export type { MailSettings } from './mailer/mail-runtime.js';
export type { PoolScope } from './service/pool-source.js';
export { refuseSuppressed, DEFAULT_SEND_CHECKS } from './outbox/send-checks.js';
export type { SendCheck, SendCheckContext, ClaimedSuppressions } from './outbox/send-checks.js';
export type {
  MailerOptions,
  MailerStatus,
  SendResult,
  SendOptions,
  EnqueueResult,
  EnqueueManyOptions,
  EnqueueManyItem,
  EnqueueManySummary,
  MessageStatusReport,
  FollowUpStatus,
  PendingEmail,
  AuditQuery,
  AuditPage,
} from './mailer/mailer.js';
export type { ServiceAuditQuery } from './service/mail-service.js';

// policy: what each agent may do, enforced in the pipeline
export { DEFAULT_AGENT_POLICY } from './policy/policy.js';
export type { Policy, AddressRule, ApprovalRule, PolicyEmailView, PolicyScope } from './policy/policy.js';
export type { PoliciesOption } from './policy/policy-source.js';
export { PolicyError } from './errors/policy-error.js';

// tracking: links, pixel, one-click unsubscribe, and the routes that answer them
export { createTrackingHandler } from './tracking/tracking-handler.js';
export type { TrackingHandler, TrackingHandlerOptions, TrackingRequestContext } from './tracking/tracking-handler.js';
export { toNodeListener } from './tracking/node-listener.js';
export type { MachineRules } from './tracking/classify-hit.js';
export { signToken, verifyToken } from './tracking/tracking-token.js';
export type { TrackingOptions, TrackingKeys, MessageTracking, TrackingTokenPayload, MachineReason, TrackingEventDetail } from './tracking/tracking-types.js';
export type { PolicyErrorCode } from './errors/policy-error.js';

export { emailSchema, attachmentSchema, addressListSchema } from './message/email-schema.js';
export type { OutgoingEmail, AttachmentInput } from './message/email-schema.js';
export { parseAddress, parseAddressList, toDisplayAddress } from './message/address.js';
export type { ParsedAddress, AddressInput, AddressListInput } from './message/address.js';
export { normalizeEmail } from './message/normalize-email.js';
export type { NormalizedEmail, NormalizedAttachment } from './message/normalize-email.js';
export { DEFAULT_LIMITS } from './message/limits.js';
export type { MessageLimits } from './message/limits.js';

export { resolveSmtpServerConfigs, smtpServerConfigSchema } from './config/smtp-server-config.js';
export type { SmtpServerConfig, ResolvedSmtpServerConfig } from './config/smtp-server-config.js';
export { DEFAULT_DKIM_HEADER_FIELDS } from './config/dkim-config.js';
export type { DkimConfig, ResolvedDkimConfig } from './config/dkim-config.js';
export type { SmtpConfigSource } from './config/smtp-config-source.js';
export { loadSmtpServersFromEnv, describeSmtpEnv } from './config/load-smtp-servers-from-env.js';
export type { SmtpEnvVariable } from './config/load-smtp-servers-from-env.js';

export { SmtpPool } from './pool/smtp-pool.js';
export type { SmtpPoolOptions, PoolMessage, PoolSendResult, RejectedRecipient, VerifyResult } from './pool/smtp-pool.js';
export type { ServerStatus } from './pool/server-state.js';
export type { BackoffOptions } from './pool/backoff.js';
export { classifySmtpError } from './pool/classify-smtp-error.js';
export type { PoolSendOptions, PoolCloseOptions } from './pool/smtp-pool.js';
export { SecretScrubber, MIN_SCRUBBED_SECRET_LENGTH, REDACTED_SECRET } from './secrets/secret-scrubber.js';
export type { ScrubbedCredential } from './secrets/secret-scrubber.js';

export { TemplateEngine, compileTemplate, hasTemplateTags, renderTemplate } from './template/template-engine.js';
export type { CompiledTemplate, RenderOptions, TemplateEngineOptions, TemplateEscape } from './template/template-engine.js';

export { MemoryStore, DEFAULT_MAX_RETAINED_BYTES, DEFAULT_MAX_FINISHED_BYTES, DEFAULT_MAX_FINISHED_AGE_MS, FINISHED_MESSAGE_BYTES } from './store/memory-store.js';
export type { MemoryStoreOptions } from './store/memory-store.js';
export type {
  MailStore,
  OutboxStore,
  OutboxRecord,
  OutboxStatus,
  NewOutboxRecord,
  StoredEmail,
  StoredAttachment,
  Lease,
  ClaimOptions,
  EnqueueResult as OutboxEnqueueResult,
  Settlement,
  MessageError,
  Metadata,
  EventStore,
  EventListOptions,
  MailEvent,
  MailEventType,
  OutboxEventType,
  DeliveryEventType,
  StoreCapabilities,
  SuppressionStore,
  Suppression,
  AuditStore,
  AuditEntry,
  AuditListOptions,
  ApprovalState,
  ApprovalDecision,
  PolicyStore,
  StoredPolicy,
  CounterStore,
  CredentialStore,
  StoredSmtpConfig,
  SmtpConfigWrite,
  SmtpConfigCursor,
  SmtpSecurity,
  StatsStore,
  MailStats,
  MailStatsQuery,
  EngagementCounts,
} from './store/mail-store.js';
export { BURST_WINDOW_MS } from './store/mail-store.js';
export { checkApproval } from './store/check-approval.js';
export { OutboxWorker } from './outbox/outbox-worker.js';
export type { WorkerOptions } from './outbox/outbox-worker.js';
export { OUTBOX_DEFAULTS, WORKER_DEFAULTS } from './outbox/outbox-defaults.js';
export type { RetryOptions } from './outbox/settlement.js';

export { silentLogger, safeLogger, redact } from './logger/logger.js';
export type { Logger } from './logger/logger.js';

export { AgentSmtpError } from './errors/agent-smtp-error.js';
export type { AgentSmtpErrorCode, AgentSmtpErrorOptions } from './errors/agent-smtp-error.js';
export { ValidationError } from './errors/validation-error.js';
export type { ValidationIssue } from './errors/validation-error.js';
export { ConfigError } from './errors/config-error.js';
export { TemplateError } from './errors/template-error.js';
export { SmtpError } from './errors/smtp-error.js';
export type { SmtpAttempt, SmtpFailureClass, SmtpErrorDetails } from './errors/smtp-error.js';

export { createMailTools, MAIL_TOOL_NAMES, OPERATOR_TOOL_NAMES, withCurrentLimits } from './tools/create-mail-tools.js';
export type { MailToolName, MailToolsOptions, OperatorToolName } from './tools/create-mail-tools.js';
export { defineTool } from './tools/define-tool.js';
export type { MailTool, ToolContext, ToolAnnotations, ToolOutcome, ToolErrorPayload } from './tools/define-tool.js';
export { toToolError, formatToolError } from './tools/tool-error.js';

// credentials: where each owner's SMTP servers come from, and stored SMTP configs with encrypted passwords
export type { CredentialProvider, CredentialScope } from './credentials/credential-provider.js';
export { sameServerSet } from './credentials/credential-provider.js';
export { staticCredentials, envCredentials } from './credentials/static-credentials.js';
export { storedCredentials, StoredCredentialProvider } from './credentials/stored-credentials.js';
export type { StoredCredentialsOptions } from './credentials/stored-credentials.js';
export { checkSmtpHost } from './credentials/host-guard.js';
export type { HostPolicy, LookupFn, CheckedHost } from './credentials/host-guard.js';
export { KeyRing, generateKeyRingKey } from './credentials/key-ring.js';
export type { KeyRingOptions, EncryptedSecret, SecretKeeper } from './credentials/key-ring.js';
export { saveSmtpConfig, listSmtpConfigs, getSmtpConfig, deleteSmtpConfig, setDefaultSmtpConfig, rotateKeys } from './credentials/smtp-configs.js';
export type { SmtpConfigContext, SaveSmtpConfigOptions, RotateKeysResult } from './credentials/smtp-configs.js';
export type { SmtpConfigInput, SmtpConfigSummary, SmtpServerDefaults } from './credentials/smtp-config.js';
