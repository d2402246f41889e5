/**
 * Tracking: link rewriting and an open pixel on the HTML part, signed tokens, one-click unsubscribe, and the routes
 * that answer them. These are the shapes the pipeline stage, the tokens and the handler share.
 */

/** HMAC keys for tracking tokens, by key id; `current` signs, every key verifies (rotation: add, switch, drop later). */
export interface TrackingKeys {
  current: string;
  /** Key id -> secret (at least 32 bytes of randomness, base64 or any string of 32+ characters). */
  keys: Readonly<Record<string, string>>;
}

/** Tracking for a mailer or a service (`createMailer({ tracking })`, `createMailService({ tracking })`). */
export interface TrackingOptions {
  /** Where the tracking handler is mounted, e.g. `https://t.example.com/mail` (https, except for 127.0.0.1 / localhost in tests). */
  baseUrl: string;
  keys: TrackingKeys;
  /** Add the open pixel to HTML mail. Default true. */
  opens?: boolean;
  /** Rewrite http(s) links of HTML mail through the click route. Default true. */
  clicks?: boolean;
  /**
   * `List-Unsubscribe` (HTTPS, plus `mailto` when given) with `List-Unsubscribe-Post: List-Unsubscribe=One-Click` on
   * every message with exactly one recipient; `footer` adds a visible unsubscribe link to the body. Default: headers on, no footer.
   */
  unsubscribe?: boolean | { mailto?: string | undefined; footer?: boolean | undefined };
}

/** Per message: turn parts of tracking off (never on, when the mailer has none). */
export interface MessageTracking {
  opens?: boolean;
  clicks?: boolean;
  unsubscribe?: boolean;
}

/** What a token carries; all of it is signed. */
export type TrackingTokenPayload =
  | { kind: 'open'; ownerId: string; messageId: string }
  | { kind: 'click'; ownerId: string; messageId: string; link: number; url: string }
  | { kind: 'unsubscribe'; ownerId: string; messageId: string; address: string };

/** Why a tracking hit was judged not to be a person (kept, counted apart, never in human counts). */
export type MachineReason =
  | 'head_request'
  | 'prefetch'
  | 'bot_user_agent'
  | 'apple_privacy_proxy'
  | 'google_image_proxy'
  | 'too_soon_after_delivery'
  | 'all_links_at_once';

/** The `detail` of an `opened`, `clicked` or `unsubscribed` event. */
export interface TrackingEventDetail {
  machine: boolean;
  reason?: MachineReason | undefined;
  userAgent?: string | undefined;
  /** The client address, truncated (IPv4 /24, IPv6 /48) unless the handler was told to keep it whole. */
  ip?: string | undefined;
  /** Clicks: the link's index in the HTML and its URL. */
  link?: number | undefined;
  url?: string | undefined;
  /** Unsubscribes: the suppressed wire address. */
  address?: string | undefined;
}
