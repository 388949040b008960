/**
 * Query/retrieve SCU: promise-based C-FIND and C-MOVE (Study Root) over dcmjs-dimse's `Client`, with typed errors and
 * an overall deadline per operation. Protocol only: no database or file layout here.
 *
 * What the library does not do and this module does:
 * - a promise API with one association per call, resolved only once the association is closed;
 * - A-ASSOCIATE-RJ, A-ABORT and "closed without a final response" told apart (the library's Client surfaces only
 *   `associationRejected`, `networkError` and `closed`; the A-ABORT event stays on its Network object);
 * - an overall deadline (its own timeouts are per connection / per PDU: a peer that keeps answering Pending would
 *   never trip them), enforced with a timer that aborts the association;
 * - 0xFF01 (Pending, optional keys not supported) kept as Pending: the library treats every status but 0xFF00 as
 *   final and would release the association after the first match;
 * - TCP_NODELAY on the socket (the library never sets it: ~40 ms stalls per response with a delayed-ACK peer).
 */
import type net from 'node:net';
import dimse from 'dcmjs-dimse';
import { clientTlsOptions, type TlsClientFiles } from './tls.js';

const { Client, Dataset, requests } = dimse;
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

export interface MoveOptions extends ScuOptions {
  /** Most SOP Instance UIDs per C-MOVE identifier at IMAGE level (default MOVE_UIDS_PER_REQUEST). */
  maxUidsPerRequest?: number;
}

export interface MoveIds {
  studyInstanceUid: string;
  /** Required at SERIES level; at IMAGE level strongly advised (a strict hierarchical SCP such as dcmqrscp needs it). */
  seriesInstanceUid?: string;
  /** Required at IMAGE level. More than MOVE_UIDS_PER_REQUEST are split over several C-MOVE requests (one association). */
  sopInstanceUids?: string[];
}

export interface MoveResult {
  /** The final status (the first failure, else the first warning, else Success when split over several requests). */
  status: number;
  completed: number;
  failed: number;
  warning: number;
  remaining: number;
  /** Error Comment of the final response, if any. */
  comment?: string;
  /** Failed SOP Instance UID List (0008,0058) of the final response(s), if the peer sent it. */
  failedSopInstanceUids?: string[];
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
      `${operation} on ${describePeer(peer)} failed: status 0x${hex(status)}${comment ? ` (${comment})` : ''}`,
      peer,
    );
  }
}

// --- statuses -----------------------------------------------------------------------------------------------------

export const QR_STATUS = {
  Success: 0x0000,
  Pending: 0xff00,
  PendingWarning: 0xff01,
  Cancel: 0xfe00,
  /** C-MOVE: Refused, move destination unknown. */
  MoveDestinationUnknown: 0xa801,
  /** C-MOVE: Warning, sub-operations complete, one or more failures or warnings. */
  SubOperationsWarning: 0xb000,
} as const;

export function isPending(status: number): boolean {
  return status === QR_STATUS.Pending || status === QR_STATUS.PendingWarning;
}

/** PS3.4 C.4: 0xB000-0xBFFF and 0x0001 are warnings; 0x0000 success; the rest (A..., C..., FE00 cancel) fail. */
export function isFailure(status: number): boolean {
  if (status === QR_STATUS.Success || isPending(status)) return false;
  if (status === 0x0001 || (status >= 0xb000 && status <= 0xbfff)) return false;
  return true;
}

export function isWarning(status: number): boolean {
  return status === 0x0001 || (status >= 0xb000 && status <= 0xbfff);
}

/** Most SOP Instance UIDs per C-MOVE identifier (an explicit VR UI element holds at most 65534 bytes). */
export const MOVE_UIDS_PER_REQUEST = 500;

// --- C-FIND -------------------------------------------------------------------------------------------------------

/** Return keys asked for at each level unless the caller gives them (empty = "return it"). */
const FIND_RETURN_KEYS: Record<QueryLevel, string[]> = {
  STUDY: [
    'StudyInstanceUID',
    'AccessionNumber',
    'PatientID',
    'PatientName',
    'StudyDate',
    'StudyTime',
    'StudyID',
    'StudyDescription',
    'NumberOfStudyRelatedSeries',
    'NumberOfStudyRelatedInstances',
  ],
  SERIES: [
    'StudyInstanceUID',
    'SeriesInstanceUID',
    'SeriesNumber',
    'Modality',
    'SeriesDescription',
    'NumberOfSeriesRelatedInstances',
  ],
  IMAGE: ['StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID', 'SOPClassUID', 'InstanceNumber'],
};

/**
 * Study Root C-FIND at `level`. `keys` are matching keys (a value) and extra return keys (''), by DICOM keyword;
 * the usual return keys of the level are added. Resolves with one naturalized data set per match: strings trimmed of
 * padding, empty elements left out (so a key the peer cannot fill, e.g. dcmqrscp's NumberOfSeriesRelatedInstances, is
 * absent). Rejects with ScuStatusError on a failure status, and with the connection errors above.
 */
export async function cFind(
  peer: ScuPeer,
  callingAe: string,
  level: QueryLevel,
  keys: Record<string, string>,
  opts: ScuOptions,
): Promise<Array<Record<string, unknown>>> {
  const elements: Record<string, unknown> = {};
  for (const k of FIND_RETURN_KEYS[level]) elements[k] = '';
  Object.assign(elements, keys);
  elements.QueryRetrieveLevel = level;
  // eslint-disable-next-line no-control-regex
  if (Object.values(keys).some((v) => /[^\x00-\x7f]/.test(v))) elements.SpecificCharacterSet = 'ISO_IR 192';

  const request = new requests.CFindRequest();
  request.setDataset(new Dataset(elements));

  const matches: Array<Record<string, unknown>> = [];
  let final: { status: number; comment?: string } | undefined;
  await runAssociation(peer, callingAe, opts, 'C-FIND', [
    {
      request,
      onResponse(rsp) {
        const status = rsp.getStatus();
        if (isPending(status)) {
          const ds = rsp.getDataset();
          if (ds) matches.push(cleanDataset(ds.getElements()));
          return false;
        }
        final = { status, comment: errorComment(rsp) };
        return true;
      },
    },
  ]);
  if (!final) throw new ScuAbortedError(peer, 'no final C-FIND response');
  if (isFailure(final.status)) throw new ScuStatusError(peer, 'C-FIND', final.status, final.comment);
  return matches;
}

// --- C-MOVE -------------------------------------------------------------------------------------------------------

/**
 * Study Root C-MOVE to `destinationAe` (which the peer must know by AE title). The identifier always carries
 * StudyInstanceUID; SERIES adds SeriesInstanceUID; IMAGE adds SeriesInstanceUID (if given) and the SOP Instance UIDs
 * (multi-valued). A failure final status (e.g. 0xA801 move destination unknown) is returned, not thrown; connection
 * problems and the deadline throw.
 */
export async function cMove(
  peer: ScuPeer,
  callingAe: string,
  destinationAe: string,
  level: QueryLevel,
  ids: MoveIds,
  opts: MoveOptions,
): Promise<MoveResult> {
  if (!ids.studyInstanceUid) throw new TypeError('cMove: studyInstanceUid is required');
  if (level === 'SERIES' && !ids.seriesInstanceUid)
    throw new TypeError('cMove: seriesInstanceUid is required at SERIES level');
  if (level === 'IMAGE' && !ids.sopInstanceUids?.length)
    throw new TypeError('cMove: sopInstanceUids are required at IMAGE level');

  const identifiers: Array<Record<string, unknown>> = [];
  const base: Record<string, unknown> = { QueryRetrieveLevel: level, StudyInstanceUID: ids.studyInstanceUid };
  if (level !== 'STUDY' && ids.seriesInstanceUid) base.SeriesInstanceUID = ids.seriesInstanceUid;
  if (level === 'IMAGE') {
    const uids = ids.sopInstanceUids ?? [];
    const per = Math.max(1, opts.maxUidsPerRequest ?? MOVE_UIDS_PER_REQUEST);
    for (let i = 0; i < uids.length; i += per) {
      const chunk = uids.slice(i, i + per);
      identifiers.push({ ...base, SOPInstanceUID: chunk.length === 1 ? chunk[0] : chunk });
    }
  } else {
    identifiers.push(base);
  }

  const finals: Array<MoveResult | undefined> = identifiers.map(() => undefined);
  const lastPending: Array<MoveResult | undefined> = identifiers.map(() => undefined);
  const ops = identifiers.map((identifier, i): Operation => {
    const request = new requests.CMoveRequest();
    request.setDataset(new Dataset(identifier));
    request.getCommandDataset().setElement('MoveDestination', destinationAe);
    return {
      request,
      onResponse(rsp) {
        const r = rsp as MoveResponseLike;
        const counts: MoveResult = {
          status: r.getStatus(),
          completed: count(r.getCompleted()),
          failed: count(r.getFailures()),
          warning: count(r.getWarnings()),
          remaining: count(r.getRemaining()),
          comment: errorComment(r),
        };
        if (isPending(counts.status)) {
          lastPending[i] = counts;
          return false;
        }
        // A final Success or B000 means every sub-operation is done: Orthanc 1.10 still reports the last Pending's
        // Remaining (e.g. 1) there; report 0.
        if (counts.status === QR_STATUS.Success || counts.status === QR_STATUS.SubOperationsWarning)
          counts.remaining = 0;
        const failedUids = toStringList(r.getDataset()?.getElements().FailedSOPInstanceUIDList);
        if (failedUids.length) counts.failedSopInstanceUids = failedUids;
        finals[i] = counts;
        return true;
      },
    };
  });
  await runAssociation(peer, callingAe, opts, 'C-MOVE', ops);
  if (finals.some((f) => !f)) throw new ScuAbortedError(peer, 'no final C-MOVE response');
  return aggregateMoves(finals as MoveResult[], lastPending);
}

function aggregateMoves(finals: MoveResult[], lastPending: Array<MoveResult | undefined>): MoveResult {
  const out: MoveResult = { status: QR_STATUS.Success, completed: 0, failed: 0, warning: 0, remaining: 0 };
  const failure = finals.find((f) => isFailure(f.status));
  const warning = finals.find((f) => isWarning(f.status));
  const pick = failure ?? warning;
  if (pick) {
    out.status = pick.status;
    if (pick.comment) out.comment = pick.comment;
  }
  finals.forEach((f, i) => {
    // Some SCPs leave the counts out of the final response (PS3.4 C.4.2.1.5 makes them optional there when the
    // status is a failure); fall back to the last Pending one for what is still unknown.
    const p = lastPending[i];
    out.completed += f.completed || p?.completed || 0;
    out.failed += f.failed;
    out.warning += f.warning || p?.warning || 0;
    out.remaining += f.remaining;
    if (f.failedSopInstanceUids) (out.failedSopInstanceUids ??= []).push(...f.failedSopInstanceUids);
  });
  return out;
}

// --- association plumbing -----------------------------------------------------------------------------------------

interface ResponseLike {
  getStatus(): number;
  getDataset(): { getElements(): Record<string, unknown> } | undefined;
  getErrorComment(): string | undefined;
}

interface MoveResponseLike extends ResponseLike {
  getCompleted(): number | undefined;
  getFailures(): number | undefined;
  getWarnings(): number | undefined;
  getRemaining(): number | undefined;
}

interface RequestLike {
  on(event: 'response', cb: (rsp: ResponseLike) => void): unknown;
  raiseDoneEvent(): void;
}

interface Operation {
  request: InstanceType<typeof requests.CFindRequest> | InstanceType<typeof requests.CMoveRequest>;
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
function runAssociation(
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

function hex(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

function count(n: number | undefined): number {
  return typeof n === 'number' && Number.isFinite(n) ? n : 0;
}

function errorComment(rsp: ResponseLike): string | undefined {
  const c = rsp.getErrorComment();
  return typeof c === 'string' && c.trim() ? c.trim() : undefined;
}

function toStringList(v: unknown): string[] {
  if (v === undefined || v === null || v === '') return [];
  const list = Array.isArray(v) ? v : String(v).split('\\');
  return list.map((s) => String(s).trim()).filter(Boolean);
}

function rejectText(result: number, source: number, reason: number): string {
  const kind = result === 1 ? 'permanent' : result === 2 ? 'transient' : `result ${result}`;
  const reasons: Record<string, string> = {
    '1:1': 'no reason given',
    '1:2': 'application context name not supported',
    '1:3': 'calling AE title not recognized',
    '1:7': 'called AE title not recognized',
    '2:1': 'no reason given',
    '2:2': 'protocol version not supported',
    '3:1': 'temporary congestion',
    '3:2': 'local limit exceeded',
  };
  return `${kind}, ${reasons[`${source}:${reason}`] ?? 'unknown reason'}`;
}

/** Trims padding from every string (also inside PN objects and arrays) and drops empty values and dcmjs internals. */
function cleanDataset(ds: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ds)) {
    if (k.startsWith('_')) continue;
    const c = cleanValue(v);
    if (c !== undefined) out[k] = c;
  }
  return out;
}

function cleanValue(v: unknown): unknown {
  if (typeof v === 'string') {
    const s = v.replace(/[\s\0]+$/, '').replace(/^ +/, '');
    return s === '' ? undefined : s;
  }
  if (Array.isArray(v)) {
    const items = v.map(cleanValue).filter((x) => x !== undefined);
    if (items.length === 0) return undefined;
    return items.length === 1 && typeof items[0] !== 'object' ? items[0] : items;
  }
  if (v && typeof v === 'object' && !(v instanceof ArrayBuffer) && !ArrayBuffer.isView(v)) {
    const o = cleanDataset(v as Record<string, unknown>);
    return Object.keys(o).length ? o : undefined;
  }
  return v ?? undefined;
}
