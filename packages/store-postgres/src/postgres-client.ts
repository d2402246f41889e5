import type { Logger } from '@agent-smtp/core';

/**
 * The one method the store needs from a database client. A `pg` Pool, a `pg` Client and a PGlite instance all
 * have it, so the store imports no driver. Each call must be able to run on any connection: the store never
 * relies on session state across calls, so a pool is fine.
 */
export interface PostgresClient {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** A client that reports lost connections as `'error'` events, as a `pg` Pool and a `pg` Client do. */
interface ErrorEmitter {
  on(event: 'error', listener: (err: Error) => void): unknown;
}

const hasErrorEvents = (client: unknown): client is ErrorEmitter => typeof (client as Partial<ErrorEmitter>).on === 'function';

/** Clients already listened to, so that many stores over one pool add one listener, not one each. */
const listenedTo = new WeakSet<object>();

/**
 * Keeps a dropped connection from killing the process. A `pg` Pool emits `'error'` when PostgreSQL ends a
 * connection that sits idle in the pool (a restart, a failover, `pg_terminate_backend`, an idle timeout in a
 * proxy), and Node throws an `'error'` event nobody listens to: the whole process dies, workers and all. The pool
 * has already dropped that connection and opens a new one on the next query, so there is nothing to do but log.
 * (A single `pg` Client stays unusable after its connection is lost: use a Pool for anything long-running.)
 */
export function listenForConnectionErrors(client: PostgresClient, logger: Logger): void {
  if (!hasErrorEvents(client) || listenedTo.has(client)) return;
  listenedTo.add(client);
  client.on('error', (err) => logger.warn({ err }, 'a PostgreSQL connection was lost; the pool opens a new one on the next query'));
}

/**
 * SQLSTATEs PostgreSQL sends when it ends a session, instead of the statement's result: `admin_shutdown`
 * (`pg_terminate_backend`, a fast shutdown), `crash_shutdown`, `cannot_connect_now` (starting up, shutting down).
 * The session's open transaction is rolled back when it ends, so the statement did not take effect and running it
 * again on another connection is safe, even for a statement that is not idempotent (an enqueue, a claim).
 */
const SESSION_ENDED = new Set(['57P01', '57P02', '57P03']);

/**
 * `pg` refuses a query on a connection it already knows is broken before sending anything; a refused connection
 * attempt never reached a session at all. Either way nothing ran.
 */
const isNotSent = (err: { message?: unknown; code?: unknown }): boolean =>
  err.code === 'ECONNREFUSED' || (typeof err.message === 'string' && err.message.includes('is not queryable'));

/**
 * Whether `err` proves the statement never took effect, so it may run again. A connection that merely closed
 * mid-statement ("Connection terminated unexpectedly", ECONNRESET) does not: the commit may have happened just
 * before, and those errors reach the caller (the worker logs a failed claim and polls again; settles are retried,
 * fenced by their attempt).
 */
export function didNotRun(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code } = err as { code?: unknown };
  return (typeof code === 'string' && SESSION_ENDED.has(code)) || isNotSent(err);
}

/** Pauses before each re-run: the first at once (the pool hands out a fresh connection), then a little longer. */
const RERUN_DELAYS_MS = [0, 100, 500] as const;

/**
 * Wraps `client` so that a statement PostgreSQL ended along with its session (see `didNotRun`) runs again on
 * another connection, up to three more times over about 0.6 s; any other error, and the last one, reach the caller
 * unchanged. The wrapper has only `query`, and never ends the client.
 */
export function rerunWhenSessionEnded(client: PostgresClient, logger: Logger): PostgresClient {
  return {
    async query(text, params) {
      for (let rerun = 0; ; rerun++) {
        try {
          return await client.query(text, params);
        } catch (err) {
          const delay = RERUN_DELAYS_MS[rerun];
          if (delay === undefined || !didNotRun(err)) throw err;
          logger.debug({ err, rerun: rerun + 1 }, 'PostgreSQL ended the session before the statement committed; running it again');
          if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    },
  };
}
