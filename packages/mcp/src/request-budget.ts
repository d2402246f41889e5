/**
 * How many requests, and how many bytes of their bodies, the HTTP server holds at once. Memory per request grows
 * with its body (the JSON text, the parsed value, the decoded attachments, the MIME message: several times the
 * body), so a count alone does not bound it: twenty 9 MiB sends took 1.5 GB. A request holds its share until its
 * response is done, since the send it starts keeps those copies alive until then.
 */
export class RequestBudget {
  private requests = 0;
  private bytes = 0;

  constructor(
    readonly maxRequests: number,
    readonly maxBytes: number,
  ) {}

  /** A place for one more request with `bytes` of body announced up front (0 when unknown), or undefined when full. */
  admit(bytes: number): RequestTicket | undefined {
    if (this.requests >= this.maxRequests || this.bytes + bytes > this.maxBytes) return undefined;
    this.requests++;
    this.bytes += bytes;
    let held = bytes;
    let released = false;
    return {
      grow: (more) => {
        if (released) return false;
        if (this.bytes + more > this.maxBytes) return false;
        this.bytes += more;
        held += more;
        return true;
      },
      release: () => {
        if (released) return;
        released = true;
        this.requests--;
        this.bytes -= held;
      },
    };
  }

  /** What is held now: for logs and the 503 message. */
  get inFlight(): { requests: number; bytes: number } {
    return { requests: this.requests, bytes: this.bytes };
  }
}

export interface RequestTicket {
  /** Takes `more` bytes for a body that turned out longer than announced; false (and nothing taken) when over. */
  grow(more: number): boolean;
  /** Gives the request's place and bytes back; later calls do nothing. */
  release(): void;
}
