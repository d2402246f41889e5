/** Where a scrubbed secret stood. */
export const REDACTED_SECRET = '[redacted]';

/**
 * Secrets shorter than this are not scrubbed where they stand alone (as plain text or as the base64 line of AUTH
 * LOGIN): strings of one to three characters occur in ordinary replies, and removing them would garble every reply
 * while protecting a password that offers no protection anyway. A SASL PLAIN token is still scrubbed whole whatever
 * the password's length, because the token as a whole is long.
 */
export const MIN_SCRUBBED_SECRET_LENGTH = 4;

/** A login whose password (and, in its encoded forms, user name) must never be repeated. */
export interface ScrubbedCredential {
  user?: string | undefined;
  pass?: string | undefined;
}

// Runs of base64 (standard and URL-safe alphabets) with optional padding. A simple character class: linear.
const BASE64_RUN = /[A-Za-z0-9+/_-]+={0,2}/g;
/** Longest first, so that a longer form is not left half-replaced by a shorter one. */
const byLength = (a: string, b: string): number => b.length - a.length;

/**
 * Removes configured secrets from text a server sent or an error carries, in every form a server might echo them:
 * the password as written, percent-encoded, JSON-escaped, as its UTF-8 bytes read as Latin-1 (how nodemailer shows a
 * reply that is not valid UTF-8), and base64 of the SASL PLAIN token and of the AUTH LOGIN lines, in the standard and
 * URL-safe alphabets, padded or not, wherever it sits inside a longer base64 run. A base64 run holding a secret is
 * replaced whole, so the user name around it goes too.
 *
 * The plain user name is left alone: it is usually the sender's address and appears in legitimate replies.
 */
export class SecretScrubber {
  static readonly none = new SecretScrubber([], []);

  /** Literal forms, longest first so that a longer form is not left half-replaced by a shorter one. */
  readonly #literals: readonly string[];
  /** Base64 fragments that only the secret's own bytes determine, whatever bytes surround it in a longer token. */
  readonly #base64Cores: readonly string[];

  private constructor(literals: readonly string[], base64Cores: readonly string[]) {
    this.#literals = literals;
    this.#base64Cores = base64Cores;
  }

  static for(credentials: readonly (ScrubbedCredential | undefined)[]): SecretScrubber {
    const literals = new Set<string>();
    const cores = new Set<string>();
    for (const credential of credentials) {
      if (!credential) continue;
      const { user = '', pass = '' } = credential;
      if (pass.length >= MIN_SCRUBBED_SECRET_LENGTH) {
        for (const form of literalForms(pass)) literals.add(form);
        for (const core of base64Cores(Buffer.from(pass, 'utf8'))) cores.add(core);
      }
      if (user.length >= MIN_SCRUBBED_SECRET_LENGTH) {
        for (const core of base64Cores(Buffer.from(user, 'utf8'))) cores.add(core);
      }
      if (user || pass) {
        // The SASL PLAIN token as nodemailer sends it (empty authzid) and with the authzid set to the user.
        for (const token of [`\0${user}\0${pass}`, `${user}\0${user}\0${pass}`]) {
          for (const core of base64Cores(Buffer.from(token, 'utf8'))) cores.add(core);
        }
      }
    }
    return new SecretScrubber([...literals].sort(byLength), [...cores].filter((c) => c.length >= MIN_SCRUBBED_SECRET_LENGTH).sort(byLength));
  }

  /** True when there is nothing to scrub. */
  get empty(): boolean {
    return this.#literals.length === 0 && this.#base64Cores.length === 0;
  }

  /** A scrubber that removes the secrets of both. */
  merge(other: SecretScrubber): SecretScrubber {
    if (other.empty) return this;
    if (this.empty) return other;
    return new SecretScrubber(
      [...new Set([...this.#literals, ...other.#literals])].sort(byLength),
      [...new Set([...this.#base64Cores, ...other.#base64Cores])].sort(byLength),
    );
  }

  scrub(text: string): string;
  scrub(text: string | undefined): string | undefined;
  scrub(text: string | undefined): string | undefined {
    if (text === undefined || this.empty || text.length === 0) return text;
    let out = text;
    for (const literal of this.#literals) if (out.includes(literal)) out = out.split(literal).join(REDACTED_SECRET);
    if (this.#base64Cores.length === 0) return out;
    const cores = this.#base64Cores;
    return out.replace(BASE64_RUN, (run) => (run.length >= MIN_SCRUBBED_SECRET_LENGTH && cores.some((c) => run.includes(c)) ? REDACTED_SECRET : run));
  }

  /**
   * A copy of an error safe to keep as a `cause`: message, stack and every string field scrubbed, the cause chain
   * copied the same way, and no reference to the connection or options objects that hold the credentials.
   */
  scrubError(error: unknown, depth = 0): Error {
    if (!(error instanceof Error)) return new Error(this.scrub(String(error)));
    const copy = new Error(this.scrub(error.message)) as Error & Record<string, unknown>;
    copy.name = error.name;
    copy.stack = error.stack === undefined ? undefined : this.scrub(error.stack);
    for (const [key, value] of Object.entries(error)) {
      if (key === 'message' || key === 'stack' || key === 'name') continue;
      if (typeof value === 'string') copy[key] = this.scrub(value);
      else if (typeof value === 'number' || typeof value === 'boolean' || value === null) copy[key] = value;
      else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) copy[key] = value.map((v: string) => this.scrub(v));
      else if (value instanceof Error && depth < 5) copy[key] = this.scrubError(value, depth + 1);
      // Anything else (sockets, option objects, arrays of errors) is left out rather than walked.
    }
    if (error.cause !== undefined && depth < 5) copy.cause = this.scrubError(error.cause, depth + 1);
    return copy;
  }

  /** Keeps the scrubber's secrets out of `util.inspect` and JSON. */
  toJSON(): string {
    return '[SecretScrubber]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'SecretScrubber {}';
  }
}

/** The password as written and as text encoders would show it. */
function literalForms(secret: string): string[] {
  const forms = [secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1), Buffer.from(secret, 'utf8').toString('latin1')];
  return forms.filter((form) => form.length >= MIN_SCRUBBED_SECRET_LENGTH);
}

/**
 * The base64 characters determined by the secret's bytes alone, for each of the three alignments the secret can have
 * inside a longer token (base64 encodes three bytes as four characters, so what precedes the secret shifts it), in
 * both alphabets. A character mixing bits of the secret and of its neighbours is left out.
 */
function base64Cores(secret: Buffer): string[] {
  const cores: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), secret]).toString('base64').replace(/=+$/, '');
    // With 1 or 2 filler bytes first, the first 2 or 3 characters carry filler bits.
    const start = offset === 0 ? 0 : offset + 1;
    const total = offset + secret.length;
    const remainder = total % 3;
    // A trailing group of 1 byte determines 1 character, of 2 bytes 2 characters; the rest mix in what follows.
    const end = Math.floor(total / 3) * 4 + (remainder === 0 ? 0 : remainder);
    const core = encoded.slice(start, end);
    if (core.length === 0) continue;
    cores.push(core);
    const urlSafe = core.replace(/\+/g, '-').replace(/\//g, '_');
    if (urlSafe !== core) cores.push(urlSafe);
  }
  return cores;
}
