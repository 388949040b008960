import fs from 'node:fs';
import winston from 'winston';
import dcmjs from 'dcmjs';
import dimse from 'dcmjs-dimse';

export type Logger = winston.Logger;

export interface LogOptions {
  level: string;
  file?: string;
  /** Silence the console (tests); the file, when given, still gets everything. */
  silent?: boolean;
}

/** sd-daemon(3) priority prefixes: journald files each line under its level (`journalctl -p warning`). */
const JOURNAL_PRIORITY: Record<string, number> = { error: 3, warn: 4, info: 6, debug: 7 };

/** Whether stderr is connected to the journal: systemd sets JOURNAL_STREAM to its `device:inode`. */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  if (!env.JOURNAL_STREAM) return false;
  try {
    const st = fs.fstatSync(2);
    return env.JOURNAL_STREAM === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

export function createLogger(opts: LogOptions): Logger {
  const text = (level: string, message: unknown, meta: Record<string, unknown>) => {
    const rest = Object.entries(meta)
      .filter(([k]) => k !== 'service')
      .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${level} ${String(message)}${rest ? ` ${rest}` : ''}`;
  };
  const line = winston.format.printf(
    ({ timestamp, level, message, ...meta }) => `${String(timestamp)} ${text(level, message, meta)}`,
  );
  // Under systemd the journal stamps each line itself and takes its priority from a `<N>` prefix.
  const journalLine = winston.format.printf(
    ({ level, message, timestamp: _t, ...meta }) => `<${JOURNAL_PRIORITY[level] ?? 6}>${text(level, message, meta)}`,
  );
  const transports: winston.transport[] = [
    new winston.transports.Console({
      stderrLevels: ['error', 'warn', 'info', 'debug'],
      silent: opts.silent ?? false,
      format: stderrIsJournal() ? journalLine : line,
    }),
  ];
  if (opts.file) transports.push(new winston.transports.File({ filename: opts.file, format: line }));
  const logger = winston.createLogger({
    level: opts.level,
    format: winston.format.timestamp(),
    transports,
  });
  bridgeLibraryLogs(logger);
  return logger;
}

interface LoglevelLike {
  methodFactory: (methodName: string, level: unknown, loggerName: unknown) => (...args: unknown[]) => void;
  setLevel(level: string): void;
  rebuild?: () => void;
}

/**
 * dcmjs and dcmjs-dimse log through `loglevel` at TRACE by default (a line per PDU, a warning per private tag).
 * Route what they say at warn and above into winston, tagged with the library, and drop the rest.
 */
function bridgeLibraryLogs(logger: Logger): void {
  const libs: Array<[string, LoglevelLike | undefined]> = [
    ['dcmjs-dimse', (dimse as unknown as { log?: LoglevelLike }).log],
    ['dcmjs', (dcmjs as unknown as { log?: LoglevelLike }).log],
  ];
  for (const [name, lib] of libs) {
    if (!lib) continue;
    lib.methodFactory = (methodName) => {
      const level = methodName === 'error' ? 'error' : 'warn';
      return (...args: unknown[]) => {
        const text = args.map(String).join(' ');
        // Socket errors reach scannode's code as typed errors (the SCU) or association events (the SCP), which log
        // them where it matters (a scanner that is down: once per state change, not on every tick).
        const socketError = name === 'dcmjs-dimse' && /Connection error/.test(text);
        logger.log(socketError ? 'debug' : level, text, { lib: name });
      };
    };
    lib.setLevel('warn');
    lib.rebuild?.();
  }
}
