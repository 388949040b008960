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

export function createLogger(opts: LogOptions): Logger {
  const line = winston.format.printf(({ timestamp, level, message, ...meta }) => {
    const rest = Object.entries(meta)
      .filter(([k]) => k !== 'service')
      .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${String(timestamp)} ${level} ${String(message)}${rest ? ` ${rest}` : ''}`;
  });
  const transports: winston.transport[] = [
    new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'], silent: opts.silent ?? false }),
  ];
  if (opts.file) transports.push(new winston.transports.File({ filename: opts.file }));
  const logger = winston.createLogger({
    level: opts.level,
    format: winston.format.combine(winston.format.timestamp(), line),
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
