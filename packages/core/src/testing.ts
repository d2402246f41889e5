export { startSmtpSink } from './testing/smtp-sink.js';
export type {
  SmtpSink,
  SmtpSinkOptions,
  SinkBehavior,
  SinkReply,
  SinkDataAction,
  SinkSession,
  ReceivedMessage,
  ReceivedAttachment,
} from './testing/smtp-sink.js';
export { testCertificate } from './testing/test-certificate.js';
