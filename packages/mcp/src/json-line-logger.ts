import type { Logger } from '@agent-smtp/core';

type Level = keyof Logger;
const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

/**
 * A Logger that writes one JSON object per line (pino's shape: `level`, `time`, `msg`, then the fields) through
 * `write`. The CLI hands it `process.stderr`, because in stdio mode stdout carries the protocol and nothing else.
 * Records below `minLevel` (default `info`) are dropped.
 */
export function createJsonLineLogger(write: (line: string) => void, minLevel: Level = 'info'): Logger {
  const threshold = LEVELS.indexOf(minLevel);
  const at =
    (level: Level) =>
    (obj: object, msg?: string): void => {
      if (LEVELS.indexOf(level) < threshold) return;
      let line: string;
      try {
        line = JSON.stringify({ level, time: new Date().toISOString(), msg, ...obj });
      } catch {
        line = JSON.stringify({ level, time: new Date().toISOString(), msg, note: 'fields could not be serialized' });
      }
      write(`${line}\n`);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
