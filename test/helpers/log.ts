import type { Logger } from '../../src/logging/logger.js';

export interface LogLine {
  level: string;
  message: string;
}

/** A logger that keeps each line's level and message, for tests that assert what was logged. */
export function fakeLog(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (message: string) => lines.push({ level, message });
  const log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { log: log as unknown as Logger, lines };
}
