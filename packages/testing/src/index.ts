export { startSmtpSink } from './smtp-sink.js';
export type {
  SmtpSink,
  SmtpSinkOptions,
  SinkBehavior,
  SinkReply,
  SinkDataAction,
  SinkSession,
  ReceivedMessage,
  ReceivedAttachment,
} from './smtp-sink.js';
export { testCertificate } from './test-certificate.js';
