/**
 * Start-up readiness for systemd (`Type=notify` in config/systemd/scannode.service): READY=1 once the DICOM listener
 * and HTTP are up. The notify protocol is a datagram on the AF_UNIX socket named by $NOTIFY_SOCKET; Node has no
 * AF_UNIX datagram sockets, and the npm bindings (sd-notify, unix-dgram) are native addons that would have to be built
 * for the target's Node like better-sqlite3. So the node runs systemd's own `systemd-notify --ready`, present wherever
 * systemd runs the unit. The message then comes from a child process: the unit sets NotifyAccess=all. systemd-notify
 * waits (its barrier) until systemd has taken the message, so it is never lost when the child exits first.
 */
import { execFile } from 'node:child_process';
import type { Logger } from './logging/logger.js';

export interface NotifyOptions {
  env?: NodeJS.ProcessEnv;
  /** The systemd-notify binary (tests). */
  command?: string;
}

/**
 * Tells systemd that the node is ready, with a status line for `systemctl status`. Does nothing outside a notify
 * unit (no $NOTIFY_SOCKET). Never throws: a failure is logged (systemd then fails the start after TimeoutStartSec).
 */
export function notifyReady(log: Logger, status: string, opts: NotifyOptions = {}): Promise<boolean> {
  const env = opts.env ?? process.env;
  if (!env.NOTIFY_SOCKET) return Promise.resolve(false);
  return new Promise((resolve) => {
    execFile(
      opts.command ?? 'systemd-notify',
      ['--ready', `--status=${status}`],
      { env, timeout: 15_000 },
      (err, _stdout, stderr) => {
        if (err) {
          log.error('cannot tell systemd that scannode is ready (systemd-notify failed)', {
            err: String(stderr).trim() || err.message,
          });
          resolve(false);
          return;
        }
        log.info('told systemd: ready', { status });
        resolve(true);
      },
    );
  });
}
