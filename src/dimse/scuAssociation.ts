/**
 * One association with a Query/Retrieve peer, for C-FIND and C-MOVE alike: the peer and deadline types, opening the
 * association over dcmjs-dimse's Client, running its requests to their final responses, and the typed errors for
 * every way it can end badly (connect, A-ASSOCIATE-RJ, A-ABORT, deadline, failure status).
 */
import type net from 'node:net';
import dimse from 'dcmjs-dimse';
import { clientTlsOptions, type TlsClientFiles } from './tls.js';
import type { ResponseLike } from './scuAnswers.js';
import { describeStatus } from '../domain/statusTable.js';
import { rejectText } from './rejectTable.js';

const { Client } = dimse;
// The library logs every PDU at info; what matters comes back as errors and results here.
(dimse.log as { setLevel(l: string): void }).setLevel('warn');

export interface ScuPeer {
  aeTitle: string;
  host: string;
  port: number;
  /** Present: the association runs over DICOM TLS (the peer's certificate must name `host`). */
  tls?: TlsClientFiles;
}

export type QueryLevel = 'STUDY' | 'SERIES' | 'IMAGE';

export interface ScuOptions {
  /** Overall deadline for the whole operation (connect, association, every response, release). */
  timeoutMs: number;
  /** Deadline for the TCP connection alone (default: min(timeoutMs, 10 s)). */
  connectTimeoutMs?: number;
}

// --- errors -------------------------------------------------------------------------------------------------------

export class ScuError extends Error {
  constructor(
    message: string,
    readonly peer: ScuPeer,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The TCP connection could not be made (refused, unreachable, or no answer within the connect deadline). */
export class ScuConnectError extends ScuError {
  constructor(
    peer: ScuPeer,
    readonly reason: string,
  ) {
    super(`cannot connect to ${describePeer(peer)}: ${reason}`, peer);
  }
}

/** A-ASSOCIATE-RJ (PS3.8 9.3.4): result 1 permanent / 2 transient; source 1 user, 2 ACSE, 3 presentation. */
export class ScuRejectedError extends ScuError {
  constructor(
    peer: ScuPeer,
    readonly result: number,
    readonly source: number,
    readonly reason: number,
  ) {
    super(
      `association rejected by ${describePeer(peer)}: ${rejectText(result, source, reason)} ` +
        `(result ${result}, source ${source}, reason ${reason})`,
      peer,
    );
  }
}

/** The association ended (A-ABORT, reset, close) before the final response. */
export class ScuAbortedError extends ScuError {
  constructor(
    peer: ScuPeer,
    readonly detail: string,
    readonly abortSource?: number,
    readonly abortReason?: number,
  ) {
    super(`association with ${describePeer(peer)} ended without a final response: ${detail}`, peer);
  }
}

/** The operation's overall deadline passed; the association was aborted. */
export class ScuTimeoutError extends ScuError {
  constructor(
    peer: ScuPeer,
    readonly timeoutMs: number,
    readonly stage: string,
  ) {
    super(`${describePeer(peer)}: no ${stage} within ${timeoutMs} ms; association aborted`, peer);
  }
}

/** A C-FIND ended with a failure (or cancel) status. C-MOVE failures are returned in its result instead. */
export class ScuStatusError extends ScuError {
  constructor(
    peer: ScuPeer,
    readonly operation: 'C-FIND' | 'C-MOVE',
    readonly status: number,
    readonly comment?: string,
  ) {
    super(
      `${operation} on ${describePeer(peer)} failed: status ${describeStatus(status, operation)}${comment ? ` (${comment})` : ''}`,
      peer,
    );
  }
}

// --- association plumbing -----------------------------------------------------------------------------------------

interface RequestLike {
  on(event: 'response', cb: (rsp: ResponseLike) => void): unknown;
  raiseDoneEvent(): void;
}

export interface Operation {
  request: InstanceType<typeof dimse.requests.CFindRequest> | InstanceType<typeof dimse.requests.CMoveRequest>;
  /** Returns true when this was the request's final response. */
  onResponse(rsp: ResponseLike): boolean;
}

/** The parts of the library's Network object (Client.network) used here; not in its index.d.ts. */
interface NetworkLike {
  socket: net.Socket;
  on(event: 'abort', cb: (a: { source: number; reason: number }) => void): unknown;
}

type ClientInternals = { network?: NetworkLike };

/** How long to wait for the A-RELEASE-RP once every final response is in, before closing the socket ourselves. */
const RELEASE_GRACE_MS = 2000;

/**
 * Opens one association, sends the requests in order, and resolves once it is closed and every request had its final
 * response. Rejects with the typed errors; the deadline aborts the association.
 */
export function runAssociation(
  peer: ScuPeer,
  callingAe: string,
  opts: ScuOptions,
  what: string,
  ops: Operation[],
): Promise<void> {
  const timeoutMs = opts.timeoutMs;
  const connectTimeoutMs = Math.min(opts.connectTimeoutMs ?? 10_000, timeoutMs);
  return new Promise<void>((resolve, reject) => {
    const client = new Client();
    let settled = false;
    let connected = false;
    let accepted = false;
    let finalsSeen = 0;
    let abortInfo: { source: number; reason: number } | undefined;
    let networkError: string | undefined;
    const timers: NodeJS.Timeout[] = [];
    // Set once send() has made the socket (a holder: the handlers are made before it exists).
    const conn: { socket?: net.Socket } = {};

    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      if (err) {
        // Never leave a half-open association behind.
        if (conn.socket && !conn.socket.destroyed) {
          const socket = conn.socket;
          if (accepted) {
            try {
              client.abort();
            } catch {
              // no network any more
            }
            // Let the A-ABORT go out before the connection is closed.
            socket.end();
            setTimeout(() => socket.destroy(), 500).unref();
          } else {
            socket.destroy();
          }
        }
        reject(err);
      } else {
        resolve();
      }
    };

    for (const op of ops) {
      const req = op.request as unknown as RequestLike;
      let lastWasFinal = false;
      req.on('response', (rsp) => {
        lastWasFinal = op.onResponse(rsp);
        if (lastWasFinal) {
          finalsSeen++;
          if (finalsSeen === ops.length) {
            // Every answer is in: give the release a moment, then close regardless.
            timers.push(
              setTimeout(() => {
                if (conn.socket && !conn.socket.destroyed) conn.socket.destroy();
                finish();
              }, RELEASE_GRACE_MS).unref(),
            );
          }
        }
      });
      // The library calls raiseDoneEvent for any status but 0xFF00; keep 0xFF01 (and any other status our handler
      // reads as Pending) from ending the request and releasing the association.
      const raiseDone = req.raiseDoneEvent.bind(req);
      req.raiseDoneEvent = () => {
        if (lastWasFinal) raiseDone();
      };
      client.addRequest(op.request);
    }

    client.on('connected', () => {
      connected = true;
      conn.socket?.setNoDelay(true);
    });
    client.on('associationAccepted', () => {
      accepted = true;
    });
    client.on('associationRejected', (r: { result: number; source: number; reason: number }) => {
      finish(new ScuRejectedError(peer, r.result, r.source, r.reason));
    });
    client.on('networkError', (e: Error) => {
      networkError ??= e.message;
      if (!connected) finish(new ScuConnectError(peer, e.message));
    });
    client.on('closed', () => {
      if (!connected) return finish(new ScuConnectError(peer, networkError ?? 'connection closed'));
      if (finalsSeen === ops.length) return finish();
      if (!accepted)
        return finish(new ScuAbortedError(peer, networkError ?? 'closed before the association was accepted'));
      const detail = abortInfo
        ? `A-ABORT (source ${abortInfo.source}, reason ${abortInfo.reason})`
        : (networkError ?? 'connection closed');
      finish(new ScuAbortedError(peer, detail, abortInfo?.source, abortInfo?.reason));
    });

    timers.push(
      setTimeout(() => {
        if (!connected) finish(new ScuConnectError(peer, `no connection within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs),
      setTimeout(() => {
        const stage = !accepted ? 'association accept' : `final ${what} response`;
        finish(new ScuTimeoutError(peer, timeoutMs, stage));
      }, timeoutMs),
    );

    // The library's own timers (socket idle, association, PDU) must never fire before our deadline does.
    const libraryTimeout = timeoutMs + 60_000;
    try {
      client.send(peer.host, peer.port, callingAe, peer.aeTitle, {
        connectTimeout: libraryTimeout,
        associationTimeout: libraryTimeout,
        pduTimeout: libraryTimeout,
        securityOptions: peer.tls ? clientTlsOptions(peer.tls) : undefined,
      });
    } catch (e) {
      finish(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    const network = (client as unknown as ClientInternals).network;
    conn.socket = network?.socket;
    conn.socket?.setNoDelay(true);
    network?.on('abort', (a) => {
      // The library only logs an A-ABORT; the association is over (PS3.8 7.3.3: close the transport).
      abortInfo = a;
      if (finalsSeen === ops.length) {
        conn.socket?.destroy();
        finish();
      } else {
        finish(new ScuAbortedError(peer, `A-ABORT (source ${a.source}, reason ${a.reason})`, a.source, a.reason));
      }
    });
  });
}

// --- helpers ------------------------------------------------------------------------------------------------------

function describePeer(peer: ScuPeer): string {
  return `${peer.aeTitle}@${peer.host}:${peer.port}`;
}
