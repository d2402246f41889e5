import { connect } from 'node:tls';
import { isIP } from 'node:net';
import type { ResolvedSmtpServerConfig } from '../config/smtp-server-config.js';
import { configSourceOf, settingNamesFor, type SmtpSettingNames } from '../config/smtp-config-source.js';

/** What a failed connection's error says about TLS: nodemailer's fields, and Node's on a certificate failure. */
export interface TlsFailureEvidence {
  code?: string | undefined;
  /** Node's own code under nodemailer's `ESOCKET`, e.g. `ERR_SSL_WRONG_VERSION_NUMBER`, `CERT_HAS_EXPIRED`. */
  originalCode?: string | undefined;
  /** nodemailer's `GREETING_TIMEOUT`, `CONNECTION_TIMEOUT`, … */
  timeoutType?: string | undefined;
  /** The name the certificate was checked against (`ERR_TLS_CERT_ALTNAME_INVALID`). */
  host?: string | undefined;
  cert?: { subjectaltname?: string; subject?: { CN?: string }; valid_to?: string; valid_from?: string } | undefined;
  /** The SMTP command that failed (`STARTTLS`, `CONN`, …) and the server's reply to it. */
  command?: string | undefined;
  responseCode?: number | undefined;
  response?: string | undefined;
}

export type TlsFailureKind = 'no-starttls' | 'expects-plain' | 'expects-tls' | 'untrusted-certificate' | 'wrong-host' | 'expired-certificate' | 'certificate-not-yet-valid';

// OpenSSL's words for "what came back is not TLS": the server spoke plain SMTP (its greeting) to our ClientHello.
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_UNKNOWN_PROTOCOL', 'ERR_SSL_HTTP_REQUEST']);
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/**
 * Which TLS mistake a connection failure shows, if any. `speaksTls` is what `probeImplicitTls` found after a plain
 * connection got no greeting: a server that waits for a TLS handshake sends none, so the greeting times out.
 */
export function tlsFailureKind(error: TlsFailureEvidence, speaksTls = false): TlsFailureKind | undefined {
  // STARTTLS is required (starttls: 'required', SMTP_USE_TLS=true, security: "starttls") and the server refused the
  // command, typically `500 command not recognized`: it does not offer STARTTLS on this port.
  if (error.code === 'ETLS' && error.command === 'STARTTLS' && (error.responseCode ?? 0) >= 500) return 'no-starttls';
  const code = error.originalCode ?? '';
  if (NOT_TLS.has(code)) return 'expects-plain';
  if (UNTRUSTED.has(code)) return 'untrusted-certificate';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'wrong-host';
  if (code === 'CERT_HAS_EXPIRED') return 'expired-certificate';
  if (code === 'CERT_NOT_YET_VALID') return 'certificate-not-yet-valid';
  if (speaksTls && error.timeoutType === 'GREETING_TIMEOUT') return 'expects-tls';
  return undefined;
}

/**
 * What the mistake means and what to set, in the settings of the config's source (`secure` / `SMTP_USE_SSL` /
 * `security`). Never OpenSSL's text: that stays in the error's `cause`.
 */
export function explainTlsFailure(kind: TlsFailureKind, config: ResolvedSmtpServerConfig, error: TlsFailureEvidence): string {
  const set = settingNamesFor(configSourceOf(config));
  const port = config.port;
  const choices = `Use port 587 with STARTTLS (${set.port(587)}, ${set.secure(false)}), or port 465 with implicit TLS (${set.port(465)}, ${set.secure(true)}).`;
  switch (kind) {
    case 'no-starttls':
      return noStarttls(config, error);
    case 'expects-plain':
      return `TLS mismatch: port ${port} answered in plain text (it expects STARTTLS or no TLS), but ${set.secure(true)} starts TLS from the first byte. ${choices}`;
    case 'expects-tls':
      return `TLS mismatch: port ${port} expects TLS from the first byte (implicit TLS), but the connection started in plain text (${set.secure(false)}), so no greeting came. ${choices}`;
    case 'untrusted-certificate':
      return `The server's certificate is not from an authority this machine trusts (${untrustedDetail(error.originalCode)}). ${trustAdvice(set)}`;
    case 'wrong-host':
      return wrongHost(config, error, set);
    case 'expired-certificate':
      return `The server's certificate expired${when(error.cert?.valid_to, ' on')}: it must be renewed on the server. If the server works elsewhere, check this machine's clock and that ${set.host} names the server you meant.`;
    case 'certificate-not-yet-valid':
      return `The server's certificate is not valid yet${when(error.cert?.valid_from, ' (from')}${error.cert?.valid_from ? ')' : ''}: check this machine's clock (it reads ${new Date().toISOString()}).`;
  }
}

/** The server refused STARTTLS while the config requires it: what each source sets instead. */
function noStarttls(config: ResolvedSmtpServerConfig, error: TlsFailureEvidence): string {
  const source = configSourceOf(config);
  const reply = error.response ? ` (it answered STARTTLS with "${oneLine(error.response)}")` : '';
  const head = `The server at ${config.host}:${config.port} does not offer STARTTLS${reply}`;
  switch (source.kind) {
    case 'env': {
      const s = source.suffix;
      return (
        `${head}, but SMTP_USE_TLS${s}=true requires it. Unset SMTP_USE_TLS${s} to use STARTTLS only where it is offered, ` +
        `or set SMTP_USE_TLS${s}=false to send without encryption; or use the server's TLS port: SMTP_PORT${s}=587 (STARTTLS) or SMTP_PORT${s}=465 with SMTP_USE_SSL${s}=true.`
      );
    }
    case 'stored':
      return (
        `${head}, but this config's security: "starttls" requires it. Use the server's TLS port: port: 587 with security: "starttls", ` +
        `or port: 465 with security: "tls"; security: "none" sends without encryption (the password too).`
      );
    case 'code':
      return (
        `${head}, but starttls: 'required' requires it. Set starttls: 'opportunistic' to use it only where it is offered, or starttls: 'disabled' ` +
        `to send without encryption; or use the server's TLS port: port: 587 (STARTTLS) or port: 465 with secure: true.`
      );
  }
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

function untrustedDetail(code: string | undefined): string {
  if (code === 'DEPTH_ZERO_SELF_SIGNED_CERT') return 'it is self-signed';
  if (code === 'SELF_SIGNED_CERT_IN_CHAIN') return 'it chains to a self-signed, private authority';
  return 'its issuer is unknown here';
}

function trustAdvice(set: SmtpSettingNames): string {
  const verify = `otherwise check that ${set.host} names the server you meant`;
  if (set.ca === undefined) return `Ask the provider for a certificate from a public authority, or ${verify.replace('otherwise ', '')}.`;
  return `If the server is yours, trust its authority with ${set.ca}; ${verify}.`;
}

function wrongHost(config: ResolvedSmtpServerConfig, error: TlsFailureEvidence, set: SmtpSettingNames): string {
  const checked = error.host ?? config.tls?.servername ?? config.host;
  const names = certificateNames(error.cert);
  const covers = names.length ? `is for ${names.join(', ')}, not ${checked}` : `does not cover ${checked}`;
  const fix = names.length ? `Set ${set.host} to ${names.length === 1 ? 'that name' : 'one of those names'}` : `Set ${set.host} to the name on the server's certificate`;
  const byIp = set.servername && isIP(config.host) && names.length ? ` (or, to keep connecting by IP address, set ${set.servername} to ${names.length === 1 ? 'it' : 'one of them'})` : '';
  return `The server's certificate ${covers}. ${fix}${byIp}.`;
}

/** `DNS:smtp.example.com, IP Address:10.0.0.1` → `['smtp.example.com', '10.0.0.1']`; the subject's CN when there are none. */
function certificateNames(cert: TlsFailureEvidence['cert']): string[] {
  const alt = (cert?.subjectaltname ?? '')
    .split(',')
    .map((entry) => entry.trim().replace(/^(DNS|IP Address):/, ''))
    .filter(Boolean);
  if (alt.length) return alt.slice(0, 5);
  return cert?.subject?.CN ? [cert.subject.CN] : [];
}

function when(date: string | undefined, prefix: string): string {
  if (!date) return '';
  const parsed = new Date(date);
  return `${prefix} ${Number.isNaN(parsed.getTime()) ? date : parsed.toISOString().slice(0, 10)}`;
}

/**
 * Whether `host:port` completes a TLS handshake: asked after a plain connection got no greeting, it tells a port that
 * expects implicit TLS from a slow server. The certificate is not checked (nothing is sent), only that TLS answers.
 */
export function probeImplicitTls(config: ResolvedSmtpServerConfig, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({
      host: config.host,
      port: config.port,
      ...(isIP(config.host) ? {} : { servername: config.tls?.servername ?? config.host }),
      rejectUnauthorized: false,
    });
    const done = (speaksTls: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(speaksTls);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Longest the probe waits for a handshake: a server that expects TLS answers one within a round trip or two. */
export const IMPLICIT_TLS_PROBE_TIMEOUT_MS = 2_000;

/**
 * nodemailer's code for a TLS failure, which `classifySmtpError` reads as a configuration fault. A code of the SMTP
 * attempt (`SmtpAttempt.code`), not of an AgentSmtpError.
 */
export const TLS_ATTEMPT_CODE = 'ETLS';

/** A connection error explained: what the TLS mistake means and what to set. */
export interface ExplainedTlsError extends Error {
  code: typeof TLS_ATTEMPT_CODE;
  /** Node's code (or nodemailer's, for a greeting that never came) of the original error. */
  originalCode: string | undefined;
  command: string | undefined;
  responseCode?: number;
  tlsFailure: TlsFailureKind;
  /** The original error, OpenSSL's text included. */
  cause: Error;
}

/**
 * `error` explained when it shows a TLS mistake, else `error` itself. When a plain connection got no greeting,
 * `speaksImplicitTls` is asked (see `probeImplicitTls`), so the usual symptom of a plain client on port 465, a timeout,
 * is named too.
 */
export async function explainConnectionError(
  caught: unknown,
  config: ResolvedSmtpServerConfig,
  speaksImplicitTls: () => Promise<boolean>,
): Promise<unknown> {
  if (!(caught instanceof Error)) return caught;
  const error = caught as Error & TlsFailureEvidence & { command?: string | undefined };
  const speaksTls = !config.secure && error.timeoutType === 'GREETING_TIMEOUT' && (await speaksImplicitTls());
  const kind = tlsFailureKind(error, speaksTls);
  if (!kind) return error;
  const explained = new Error(explainTlsFailure(kind, config, error), { cause: error }) as ExplainedTlsError;
  explained.name = 'SmtpTlsError';
  explained.code = TLS_ATTEMPT_CODE;
  explained.originalCode = error.originalCode ?? error.code;
  explained.command = error.command;
  // The server's reply code stays (a 5xx to STARTTLS); its words are in the message and in `cause`.
  if (error.responseCode) explained.responseCode = error.responseCode;
  explained.tlsFailure = kind;
  return explained;
}
