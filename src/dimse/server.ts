import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import dimse from 'dcmjs-dimse';
import type { Logger } from '../logging/logger.js';
import { DicomStatus, DimseError, hex } from '../domain/status.js';
import { COMMAND_TRANSFER_SYNTAXES, STORAGE_TRANSFER_SYNTAXES, pickTransferSyntax } from '../domain/transferSyntax.js';
import { Sop, isStorageSopClass } from '../domain/sopClass.js';
import { cleanUid } from '../domain/uid.js';
import { checkAssociation, rejectionCodes, type AccessPolicy } from './policy.js';
import { commandPdu, decodeCommandSet, encodeCommandSet } from './commandSet.js';
import { PduFramer } from './pduFramer.js';
import type { AssociationInfo, AssociationSummary, DimseHandlers, DimseResult, NRequest, StoreSink } from './types.js';

const { Scp, Dataset, constants, responses, requests } = dimse as unknown as DimseModule;
const { CEchoResponse, CStoreResponse, NCreateResponse, NSetResponse } = responses;
const { PresentationContextResult } = constants;

export interface DicomServerOptions extends AccessPolicy {
  host: string;
  port: number;
  maxPduLength: number;
  pduTimeoutSeconds: number;
  shutdownGraceSeconds: number;
}

/**
 * The DICOM listener. dcmjs-dimse's own `Server` binds every interface, never sets TCP_NODELAY, has no connection cap
 * and destroys open associations on close; so we own the `net.Server` and hand each socket to the library's `Scp`.
 */
export class DicomServer extends EventEmitter {
  private server: net.Server | undefined;
  private readonly connections = new Set<net.Socket>();
  private readonly active = new Set<object>();

  constructor(
    private readonly opts: DicomServerOptions,
    private readonly handlers: DimseHandlers,
    private readonly log: Logger,
  ) {
    super();
  }

  get activeAssociations(): number {
    return this.active.size;
  }

  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  address(): net.AddressInfo {
    return this.server!.address() as net.AddressInfo;
  }

  async listen(): Promise<void> {
    const ScpClass = makeScpClass(this);
    const server = net.createServer({ noDelay: true }, (socket) => {
      socket.setNoDelay(true);
      this.connections.add(socket);
      socket.once('close', () => this.connections.delete(socket));
      try {
        new ScpClass(socket, {
          pduTimeout: this.opts.pduTimeoutSeconds * 1000,
          associationTimeout: this.opts.pduTimeoutSeconds * 1000,
          connectTimeout: this.opts.pduTimeoutSeconds * 1000,
        });
      } catch (err) {
        this.log.error('cannot set up association', { err: String(err) });
        socket.destroy();
      }
    });
    // A hard cap on sockets: beyond maxAssociations we still answer A-ASSOCIATE-RJ (local limit), beyond twice that
    // the kernel connection is dropped so a flood cannot exhaust file descriptors.
    server.maxConnections = this.opts.maxAssociations * 2;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error('DICOM listener error', { err: err.message }));
    const addr = this.address();
    this.log.info('DICOM listener up', { aeTitle: this.opts.aeTitle, host: addr.address, port: addr.port });
  }

  /** Stops accepting, lets associations in flight finish for the grace period, then closes what is left. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const deadline = Date.now() + this.opts.shutdownGraceSeconds * 1000;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (this.connections.size > 0) {
      this.log.warn('closing associations still open after the grace period', { open: this.connections.size });
      for (const s of this.connections) s.destroy();
    }
    await closed;
  }

  /** @internal used by the Scp class */
  get internals() {
    return { opts: this.opts, handlers: this.handlers, log: this.log, active: this.active };
  }
}

// ----------------------------------------------------------------------------------------------------------------
// The per-connection Scp. The library calls these methods from its event emitter: a synchronous throw drops the
// association and a rejected promise crashes the process, so every handler below catches everything and turns it
// into a DIMSE status in one place (`respond`).

function makeScpClass(server: DicomServer) {
  const { opts, handlers, log, active } = server.internals;

  return class ScannodeScp extends Scp {
    private info: AssociationInfo | undefined;
    private readonly startedAt = new Date();
    private accepted = false;
    private rejectReason: string | undefined;
    private instances = 0;
    private bytes = 0;
    private failures = 0;
    private aborted = false;
    private currentSink: (StoreSink & { bytes: number; startedAt: number }) | undefined;
    private readonly pendingResults = new WeakMap<
      object,
      { result: Promise<DimseResult>; bytes: number; startedAt: number }
    >();
    private closedOnce = false;
    private readonly inFlight = new Set<Promise<unknown>>();
    /** The C-STORE whose data set we are streaming ourselves (see `_processPDataTf`). */
    private fastStore:
      { request: DimseRequest; context: DimsePresentationContext; pcId: number; stream: unknown } | undefined;
    /** The bytes stopped making sense: an A-ABORT went out and nothing more is read. */
    private protocolFailed = false;
    /** The library holds the first fragments of a command set: it gets the rest too. */
    private libraryMidCommand = false;

    constructor(socket: net.Socket, netOpts: Record<string, unknown>) {
      super(socket, netOpts);
      this.on('close', () => this.closed());
      // Our framer replaces the library's PDU accumulator on the socket (see pduFramer.ts).
      const framer = new PduFramer({
        pdu: (buf) => {
          this.lastPduTime = Date.now();
          void this._processPdu(buf);
        },
        streaming: () => this.fastStore !== undefined,
        pdv: (pc, control, piece, end) => this.streamedPdv(pc, control, piece, end),
        error: (err) => this.protocolError(err),
      });
      socket.removeAllListeners('data');
      socket.on('data', (chunk: Buffer) => {
        this.statistics.addBytesReceived(chunk.length);
        if (!this.protocolFailed) framer.push(chunk);
      });
    }

    override associationRequested(association: DimseAssociation): void {
      try {
        const callingAe = association.getCallingAeTitle().trim();
        const calledAe = association.getCalledAeTitle().trim();
        const socket = this.socket as net.Socket;
        this.info = {
          id: randomUUID(),
          callingAe,
          calledAe,
          remoteAddress: socket.remoteAddress ?? '',
          remotePort: socket.remotePort ?? 0,
        };
        const rejection = checkAssociation(opts, callingAe, calledAe, active.size);
        if (rejection) {
          this.rejectReason = rejection.detail;
          const { result, source, reason } = rejectionCodes(rejection);
          this.sendAssociationReject(result, source, reason);
          return;
        }
        for (const pc of association.getPresentationContexts()) {
          const context = pc.context;
          const abstract = context.getAbstractSyntaxUid();
          const proposed = context.getTransferSyntaxUids();
          const candidates = isStorageSopClass(abstract)
            ? STORAGE_TRANSFER_SYNTAXES
            : abstract === Sop.Verification || (abstract === Sop.Mpps && handlers.nCreate)
              ? COMMAND_TRANSFER_SYNTAXES
              : undefined;
          if (!candidates) {
            context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
            continue;
          }
          const ts = pickTransferSyntax(proposed, candidates);
          // setResult truncates the proposed list, so the syntax is chosen first and setResult called once.
          if (ts) context.setResult(PresentationContextResult.Accept, ts);
          else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
        }
        // The library announces min(peer's max PDU, its own); we only ever send short command PDUs, so we announce
        // our own receive limit instead and the sender can use large PDUs (16 KiB PDUs cost ~3x more per byte).
        association.setMaxPduLength(opts.maxPduLength);
        dimse.Implementation?.setMaxPduLength?.(opts.maxPduLength);
        this.accepted = true;
        active.add(this);
        this.sendAssociationAccept();
      } catch (err) {
        log.error('association setup failed', { err: String(err) });
        this.sendAbort();
      }
    }

    override associationReleaseRequested(): void {
      void this.releaseWhenIdle();
    }

    /** Answer the release only after every store in flight has been answered. */
    private async releaseWhenIdle(): Promise<void> {
      await Promise.all([...this.inFlight]);
      this.sendAssociationReleaseResponse();
    }

    override abort(): void {
      this.aborted = true;
    }

    override cEchoRequest(request: DimseRequest, callback: (r: unknown) => void): void {
      const rsp = CEchoResponse.fromRequest(request);
      rsp.setStatus(DicomStatus.Success);
      callback(rsp);
    }

    // -- C-STORE: the library streams the data set into what createStoreWritableStream returns -----------------

    override createStoreWritableStream(context: DimsePresentationContext, request: DimseRequest): unknown {
      const sopClassUid = cleanUid(request.getAffectedSopClassUid()) ?? '';
      const sopInstanceUid = cleanUid(request.getAffectedSopInstanceUid()) ?? '';
      const moveOriginator = request.getCommandDataset().getElement('MoveOriginatorApplicationEntityTitle');
      let sink: StoreSink;
      try {
        sink = handlers.openStore({
          association: this.info!,
          sopClassUid,
          sopInstanceUid,
          transferSyntaxUid: context.getAcceptedTransferSyntaxUid(),
          moveOriginatorAe: typeof moveOriginator === 'string' ? moveOriginator.trim() || undefined : undefined,
        });
      } catch (err) {
        sink = failedSink(toResult(err, log));
      }
      const tracked = Object.assign(sink, { bytes: 0, startedAt: performance.now() });
      this.currentSink = tracked;
      // write() always returns true: the library would otherwise await 'drain' on an async path that lets the next
      // PDU overtake this one. The sink does its own buffering.
      const stream = new EventEmitter() as EventEmitter & { write(b: Buffer): boolean; end(): void; request: object };
      stream.request = request;
      stream.write = (chunk: Buffer) => {
        tracked.bytes += chunk.length;
        tracked.write(chunk);
        return true;
      };
      stream.end = () => undefined;
      return stream;
    }

    override createDatasetFromStoreWritableStream(
      stream: { request: object },
      context: DimsePresentationContext,
      callback: (ds: unknown) => void,
    ): void {
      const sink = this.currentSink;
      this.currentSink = undefined;
      if (sink) {
        this.bytes += sink.bytes;
        const result = sink.finish().catch((err: unknown) => toResult(err, log));
        this.pendingResults.set(stream.request, { result, bytes: sink.bytes, startedAt: sink.startedAt });
        this.inFlight.add(result);
        void result.finally(() => this.inFlight.delete(result));
      }
      // The handler reads the data from disk; the library only needs a Dataset object to attach.
      callback(new Dataset({}, context.getAcceptedTransferSyntaxUid()));
    }

    override cStoreRequest(request: DimseRequest, callback: (r: unknown) => void): void {
      const pending = this.pendingResults.get(request) ?? {
        result: Promise.resolve<DimseResult>({
          status: DicomStatus.ProcessingFailure,
          comment: 'no data set received',
        }),
        bytes: 0,
        startedAt: performance.now(),
      };
      void pending.result.then((result) => {
        if (result.status === DicomStatus.Success) this.instances++;
        else this.failures++;
        try {
          const rsp = CStoreResponse.fromRequest(request);
          rsp.setStatus(result.status);
          if (result.comment && result.status !== DicomStatus.Success) rsp.setErrorComment(result.comment.slice(0, 64));
          callback(rsp);
        } catch (err) {
          log.error('cannot send C-STORE response', { err: String(err) });
        }
        try {
          handlers.storeCompleted?.({
            association: this.info!,
            status: result.status,
            bytes: pending.bytes,
            durationMs: performance.now() - pending.startedAt,
          });
        } catch (err) {
          log.error('C-STORE completion hook failed', { err: String(err) });
        }
      });
    }

    // -- The C-STORE fast path -------------------------------------------------------------------------------------
    // dcmjs-dimse parses every command set through a full dcmjs dataset and routes each data fragment through several
    // layers; for C-STORE that cost more main-thread time than storing the image. Here a P-DATA-TF whose PDV is a whole
    // C-STORE-RQ command set is decoded by our codec, the data set fragments that follow go straight to the storage
    // stream, and the request then takes the library's own dispatch (`_performDimse`) to cStoreRequest above. Every
    // other command, a command set in several fragments, or one our codec does not know, takes the library's path.

    override _processPDataTf(pdu: DimsePDataTf): Promise<void> {
      const pdvs = pdu.getPdvs();
      try {
        for (let i = 0; i < pdvs.length; i++) {
          const pdv = pdvs[i]!;
          if (!this.fastStore) {
            if (this.dimse || this.libraryMidCommand || !this.beginFastStore(pdv)) {
              const last = pdvs[pdvs.length - 1]!;
              // Set before the library runs: the next PDU may be framed before its promise settles.
              this.libraryMidCommand = last.isCommand() && !last.isLastFragment();
              return super._processPDataTf(i === 0 ? pdu : withPdvs(pdu, pdvs.slice(i)));
            }
            continue;
          }
          const control = (pdv.isCommand() ? 1 : 0) | (pdv.isLastFragment() ? 2 : 0);
          this.streamedPdv(pdv.getPresentationContextId(), control, pdv.getValue(), true);
        }
      } catch (err) {
        this.protocolError(err);
      }
      return Promise.resolve();
    }

    /** A piece of a data set PDV of the C-STORE being streamed (from the framer, or a PDU the library parsed). */
    private streamedPdv(pc: number, control: number, piece: Buffer, pdvEnd: boolean): void {
      const store = this.fastStore;
      this.lastPduTime = Date.now();
      if (!store) return;
      if (control & 1 || pc !== store.pcId) {
        this.protocolError(new Error('a command arrived in the middle of a C-STORE data set'));
        return;
      }
      (store.stream as { write(b: Buffer): boolean }).write(piece);
      if (pdvEnd && control & 2) {
        this.fastStore = undefined;
        this.createDatasetFromStoreWritableStream(store.stream as never, store.context, (ds) => {
          store.request.setDataset(ds);
          this._performDimse(store.context, store.request);
        });
      }
    }

    private protocolError(err: unknown): void {
      if (this.protocolFailed) return;
      this.protocolFailed = true;
      log.error('protocol error, association aborted', {
        err: String(err),
        ip: (this.socket as net.Socket).remoteAddress,
      });
      this.fastStore = undefined;
      this.sendAbort();
      (this.socket as net.Socket).end();
    }

    /** Starts the fast path when this PDV is a whole C-STORE-RQ command set with a data set to follow. */
    private beginFastStore(pdv: DimsePdv): boolean {
      if (!pdv.isCommand() || !pdv.isLastFragment()) return false;
      const elements = decodeCommandSet(pdv.getValue());
      if (!elements || elements.CommandField !== C_STORE_RQ || elements.CommandDataSetType === NO_DATA_SET)
        return false;
      const pcId = pdv.getPresentationContextId();
      const context = this.association?.getPresentationContext(pcId);
      if (!context) return false;
      const request = new requests.CStoreRequest();
      request.setCommandDataset(new Dataset(elements));
      const stream = this.createStoreWritableStream(context, request);
      this.fastStore = { request, context, pcId, stream };
      return true;
    }

    /** Command sets without a data set (every C-STORE-RSP, C-ECHO-RSP...) are written by our codec in one PDU. */
    override _sendPDataTF(command: DimseCommand, pcId: number, maxPduLength: number): void {
      const encoded = command.getDataset() ? undefined : encodeCommandSet(command.getCommandDataset().getElements());
      if (!encoded || (maxPduLength > 0 && encoded.length + 6 > maxPduLength)) {
        super._sendPDataTF(command, pcId, maxPduLength);
        return;
      }
      const pdu = commandPdu(pcId, encoded);
      (this.socket as net.Socket).write(pdu);
      this.statistics.addBytesSent(pdu.length);
    }

    // -- N-CREATE / N-SET (MPPS) -------------------------------------------------------------------------------

    override nCreateRequest(request: DimseRequest, callback: (r: unknown) => void): void {
      void this.nRequest(request, callback, handlers.nCreate, NCreateResponse);
    }

    override nSetRequest(request: DimseRequest, callback: (r: unknown) => void): void {
      void this.nRequest(request, callback, handlers.nSet, NSetResponse);
    }

    private async nRequest(
      request: DimseRequest,
      callback: (r: unknown) => void,
      handler: ((r: NRequest) => Promise<import('./types.js').NResponse>) | undefined,
      ResponseClass: DimseResponseClass,
    ): Promise<void> {
      let result: import('./types.js').NResponse;
      try {
        if (!handler) throw new DimseError(DicomStatus.NoSuchSopClass, 'service not supported');
        const ds = request.getDataset();
        result = await handler({
          association: this.info!,
          sopClassUid: cleanUid(request.getAffectedSopClassUid() ?? request.getRequestedSopClassUid()) ?? '',
          sopInstanceUid: cleanUid(request.getAffectedSopInstanceUid() ?? request.getRequestedSopInstanceUid()),
          dataset: ds ? (ds.getElements() as Record<string, unknown>) : undefined,
        });
      } catch (err) {
        result = toResult(err, log);
      }
      try {
        const rsp = ResponseClass.fromRequest(request);
        rsp.setStatus(result.status);
        if (result.sopInstanceUid) rsp.setAffectedSopInstanceUid(result.sopInstanceUid);
        if (result.comment && result.status !== DicomStatus.Success) rsp.setErrorComment(result.comment.slice(0, 64));
        if (result.dataset) rsp.setDataset(new Dataset(result.dataset, COMMAND_TRANSFER_SYNTAXES[0]));
        callback(rsp);
      } catch (err) {
        log.error('cannot send N-response', { err: String(err) });
      }
    }

    private closed(): void {
      if (this.closedOnce) return;
      this.closedOnce = true;
      active.delete(this);
      if (this.currentSink) {
        this.aborted = true;
        this.failures++;
        this.currentSink.abort('association closed mid-transfer');
        this.currentSink = undefined;
      }
      if (!this.info) return;
      const summary: AssociationSummary = {
        ...this.info,
        startedAt: this.startedAt,
        endedAt: new Date(),
        accepted: this.accepted,
        rejectReason: this.rejectReason,
        instancesReceived: this.instances,
        bytesReceived: this.bytes,
        failures: this.failures,
        aborted: this.aborted,
      };
      const durationMs = summary.endedAt.getTime() - summary.startedAt.getTime();
      if (this.accepted) {
        log.info('association closed', {
          callingAe: summary.callingAe,
          ip: summary.remoteAddress,
          instances: summary.instancesReceived,
          bytes: summary.bytesReceived,
          failures: summary.failures,
          aborted: summary.aborted,
          ms: durationMs,
        });
      } else {
        log.warn('association rejected', {
          callingAe: summary.callingAe,
          ip: summary.remoteAddress,
          reason: this.rejectReason,
        });
      }
      try {
        handlers.associationClosed?.(summary);
      } catch (err) {
        log.error('association audit failed', { err: String(err) });
      }
    }
  };
}

const C_STORE_RQ = 0x0001;
const NO_DATA_SET = 0x0101;

/** A P-DATA-TF of the same class holding only these PDVs (PDataTF itself is not exported by the library). */
function withPdvs(pdu: DimsePDataTf, pdvs: DimsePdv[]): DimsePDataTf {
  const rest = new (pdu.constructor as new () => DimsePDataTf)();
  for (const pdv of pdvs) rest.addPdv(pdv);
  return rest;
}

function failedSink(result: DimseResult): StoreSink {
  return { write: () => undefined, finish: () => Promise.resolve(result), abort: () => undefined };
}

function toResult(err: unknown, log: Logger): DimseResult {
  if (err instanceof DimseError) return { status: err.status, comment: err.message };
  log.error('processing failure', { err: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return { status: DicomStatus.ProcessingFailure, comment: err instanceof Error ? err.message : String(err) };
}

export { hex };

// ----------------------------------------------------------------------------------------------------------------
// The slice of dcmjs-dimse's API used here (its index.d.ts types the classes, not the subclassing we do).

interface DimsePresentationContext {
  getAbstractSyntaxUid(): string;
  getTransferSyntaxUids(): string[];
  getAcceptedTransferSyntaxUid(): string;
  setResult(result: number, ts?: string): void;
}
interface DimseAssociation {
  getCallingAeTitle(): string;
  getCalledAeTitle(): string;
  getPresentationContexts(): Array<{ id: number; context: DimsePresentationContext }>;
  setMaxPduLength(n: number): void;
}
interface DimseRequest {
  getAffectedSopClassUid(): string;
  getAffectedSopInstanceUid(): string;
  getRequestedSopClassUid(): string;
  getRequestedSopInstanceUid(): string;
  getCommandDataset(): { getElement(name: string): unknown };
  getDataset(): { getElements(): unknown } | undefined;
  setDataset(ds: unknown): void;
  setCommandDataset(ds: unknown): void;
}
interface DimseCommand {
  getDataset(): unknown;
  getCommandDataset(): { getElements(): Record<string, unknown> };
}
interface DimsePdv {
  getPresentationContextId(): number;
  getValue(): Buffer;
  isCommand(): boolean;
  isLastFragment(): boolean;
}
interface DimsePDataTf {
  getPdvs(): DimsePdv[];
  addPdv(pdv: DimsePdv): void;
}
interface DimseResponse {
  setStatus(s: number): void;
  setErrorComment(c: string): void;
  setAffectedSopInstanceUid(u: string): void;
  setDataset(d: unknown): void;
}
interface DimseResponseClass {
  fromRequest(r: DimseRequest): DimseResponse;
}
interface DimseModule {
  Scp: new (socket: net.Socket, opts: Record<string, unknown>) => ScpBase;
  Dataset: new (elements: Record<string, unknown>, ts?: string) => unknown;
  constants: {
    PresentationContextResult: {
      Accept: number;
      RejectAbstractSyntaxNotSupported: number;
      RejectTransferSyntaxesNotSupported: number;
    };
  };
  responses: Record<'CEchoResponse' | 'CStoreResponse' | 'NCreateResponse' | 'NSetResponse', DimseResponseClass>;
  requests: { CStoreRequest: new () => DimseRequest };
  Implementation?: { setMaxPduLength?(n: number): void };
}
interface ScpBase extends EventEmitter {
  socket: unknown;
  // The library's private members the C-STORE fast path builds on (dcmjs-dimse 0.3.x Network).
  association: { getPresentationContext(id: number): DimsePresentationContext | undefined } | undefined;
  dimse: unknown;
  lastPduTime: number | undefined;
  statistics: { addBytesSent(n: number): void; addBytesReceived(n: number): void };
  _processPdu(buf: Buffer): Promise<void>;
  _processPDataTf(pdu: DimsePDataTf): Promise<void>;
  _sendPDataTF(command: DimseCommand, pcId: number, maxPduLength: number): void;
  _performDimse(context: DimsePresentationContext, dimse: DimseRequest): void;
  associationRequested(a: DimseAssociation): void;
  associationReleaseRequested(): void;
  abort(source?: number, reason?: number): void;
  cEchoRequest(r: DimseRequest, cb: (r: unknown) => void): void;
  cStoreRequest(r: DimseRequest, cb: (r: unknown) => void): void;
  nCreateRequest(r: DimseRequest, cb: (r: unknown) => void): void;
  nSetRequest(r: DimseRequest, cb: (r: unknown) => void): void;
  createStoreWritableStream(c: DimsePresentationContext, r: DimseRequest): unknown;
  createDatasetFromStoreWritableStream(w: never, c: DimsePresentationContext, cb: (ds: unknown) => void): void;
  sendAssociationAccept(): void;
  sendAssociationReject(result?: number, source?: number, reason?: number): void;
  sendAssociationReleaseResponse(): void;
  sendAbort(source?: number, reason?: number): void;
}
