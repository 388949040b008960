/**
 * The DICOM upper layer of one transport connection (PS3.8 section 9), for either role: runs the state table of
 * fsm.ts, frames and checks incoming PDUs before anything of them is kept (pduFramer.ts), and keeps the timers:
 * ARTIM (awaiting A-ASSOCIATE-RQ, or the peer's close), the wait for an A-ASSOCIATE-AC / A-RELEASE-RP (requestor),
 * and the idle timer of an established association. It knows nothing of DIMSE: the service user above it (ACSE and
 * DIMSE, association.ts) gets indications and P-DATA pieces, and answers through the methods named after PS3.8's
 * primitives. No I/O of its own: bytes go through `Transport`, time through `Clock`.
 */
import { TRANSITIONS, type Action, type Event, type State } from './fsm.js';
import {
  AbortReason,
  AbortSource,
  PduError,
  encodeAbort,
  encodeReject,
  encodeReleaseRp,
  encodeReleaseRq,
  type RejectPdu,
} from './pdu.js';
import { encodeAssociateAc, encodeAssociateRq, type AssociateAc, type AssociateRq } from './associatePdu.js';
import { PduFramer, type Disposition } from './pduFramer.js';
import { NEEDS_BODY, PDU_EVENTS, PDU_NAMES, decodeBody, judgeHeader, type Received } from './pduIntake.js';
import { UlTimers } from './ulTimers.js';
import type { Transport, UpperLayerOptions, UpperLayerUser } from './upperLayerTypes.js';

export type { AbortInfo, Transport, UpperLayerOptions, UpperLayerUser } from './upperLayerTypes.js';

interface Context extends Received {
  error?: PduError;
  detail?: string;
  pdus?: Buffer[];
}

export class UpperLayer {
  private stateNow: State = 'Sta1';
  private readonly framer: PduFramer;
  private readonly timers: UlTimers;
  private writable = true;
  private closedOnce = false;
  private request: AssociateRq | undefined;
  /** Accepted presentation context IDs: P-DATA on any other is a protocol error. */
  private contexts = new Set<number>();
  /** Largest P-DATA-TF we take (what we announced); until then, none. */
  private maxReceive = 0;
  /** The peer's Maximum Length Received (0: no limit). */
  peerMaxPdu = 0;
  /** Inside a PDV of the P-DATA-TF being streamed (its context was checked at its first piece). */
  private inPdv = false;

  constructor(
    private readonly transport: Transport,
    private readonly user: UpperLayerUser,
    private readonly opts: UpperLayerOptions,
  ) {
    this.timers = new UlTimers(opts.clock, opts.artimMs, opts.idleMs);
    this.framer = new PduFramer({
      header: (type, length) => this.header(type, length),
      pdu: (type, body) => this.body(type, body),
      pdv: (pc, control, piece, end) => this.pdvPiece(pc, control, piece, end),
      pduEnd: () => undefined,
      error: (err) => this.fire('Evt19', { error: err }),
    });
  }

  get state(): State {
    return this.stateNow;
  }

  /** Work the service user has under way (a store being committed): the idle timer waits for it. */
  get busy(): number {
    return this.timers.busy;
  }

  // --- transport events ----------------------------------------------------------------------------------------

  /** Acceptor: a connection was accepted (Evt5). */
  transportIndication(): void {
    this.fire('Evt5', {});
  }

  /** Requestor: the connection is open (Evt2). */
  transportConfirmation(): void {
    this.fire('Evt2', {});
  }

  /** Bytes from the peer. */
  input(chunk: Buffer): void {
    if (this.stateNow === 'Sta1' || this.framer.isStopped) return;
    this.framer.push(chunk);
  }

  /** The connection is gone (Evt17). */
  transportClosed(): void {
    this.writable = false;
    this.fire('Evt17', { detail: 'the connection closed' });
  }

  // --- the service user's primitives ---------------------------------------------------------------------------

  /** Requestor: A-ASSOCIATE request (Evt1). */
  associate(rq: AssociateRq): void {
    this.request = rq;
    this.fire('Evt1', { rq });
  }

  accept(ac: AssociateAc, maxReceive: number): void {
    this.maxReceive = maxReceive;
    this.fire('Evt7', { ac });
  }

  reject(rj: RejectPdu): void {
    this.fire('Evt8', { rj });
  }

  /** P-DATA request (Evt9): whole P-DATA-TF PDUs. */
  send(pdus: Buffer[]): void {
    this.fire('Evt9', { pdus });
  }

  release(): void {
    this.fire('Evt11', {});
  }

  releaseResponse(): void {
    this.fire('Evt14', {});
  }

  abort(detail: string): void {
    this.fire('Evt15', { detail });
  }

  /** The service user found the P-DATA it was given invalid (fragments out of order...): Evt19. */
  invalidPdu(reason: number, detail: string): void {
    this.fire('Evt19', { error: new PduError(reason, detail) });
  }

  workStarted(): void {
    this.timers.workStarted();
  }

  workFinished(): void {
    this.timers.workFinished();
  }

  // --- incoming PDUs -------------------------------------------------------------------------------------------

  private header(type: number, length: number): Disposition {
    this.timers.touch();
    const { event, error } = judgeHeader(type, length, this.maxReceive);
    if (error) {
      this.fire('Evt19', { error });
      return 'skip';
    }
    if (!NEEDS_BODY.has(TRANSITIONS[this.stateNow][event])) {
      this.fire(event, {});
      return 'skip';
    }
    if (event !== 'Evt10') return 'whole';
    this.fire(event, {});
    this.inPdv = false;
    return 'stream';
  }

  private body(type: number, body: Buffer): void {
    let ctx: Context;
    try {
      ctx = decodeBody(type, body);
    } catch (err) {
      if (!(err instanceof PduError)) throw err;
      return this.fire('Evt19', { error: err });
    }
    this.fire(PDU_EVENTS[type]!, ctx);
  }

  private pdvPiece(pc: number, control: number, piece: Buffer, end: boolean): void {
    if (this.stateNow !== 'Sta6' && this.stateNow !== 'Sta7') return;
    if (!this.inPdv && !this.contexts.has(pc)) {
      return this.invalidPdu(AbortReason.InvalidPduParameter, `P-DATA on presentation context ${pc}, not accepted`);
    }
    this.inPdv = !end;
    this.user.pdv(pc, control, piece, end);
  }

  // --- the state machine ---------------------------------------------------------------------------------------

  private fire(event: Event, ctx: Context): void {
    const from = this.stateNow;
    const action = TRANSITIONS[from][event];
    const notices: Array<() => void> = [];
    const to = this.perform(action, event, ctx, notices) ?? from;
    this.stateNow = to;
    this.opts.onTransition?.({ from, event, action, to });
    // The service user hears of it once the state is set: it may answer (accept, release response) right away.
    for (const notice of notices) notice();
    if (to === 'Sta1' && !this.closedOnce) this.finish();
  }

  /** Carries out `action`; returns the next state (undefined: unchanged). Indications go to `notices`. */
  private perform(action: Action, event: Event, ctx: Context, notices: Array<() => void>): State | undefined {
    const user = this.user;
    switch (action) {
      case 'AE-1':
        this.transport.connect?.();
        return 'Sta4';
      case 'AE-2':
        this.write(encodeAssociateRq(this.request!));
        this.timers.startWait(() => this.noAnswer());
        return 'Sta5';
      case 'AE-3':
        this.timers.stop();
        this.established(ctx.ac!, ctx.ac!.userInfo?.maxLength ?? 0, this.request?.userInfo?.maxLength ?? 0);
        notices.push(() => user.associateConfirmation?.({ ac: ctx.ac! }));
        return 'Sta6';
      case 'AE-4':
        notices.push(() => user.associateConfirmation?.({ rj: ctx.rj! }));
        this.transport.destroy();
        return 'Sta1';
      case 'AE-5':
        this.timers.startArtim(() => this.fire('Evt18', {}));
        return 'Sta2';
      case 'AE-6':
        this.timers.stop();
        this.request = ctx.rq!;
        // Every check of the request is the service user's (acse.ts), which answers accept() or reject().
        if (!user.associateIndication) {
          this.write(encodeReject({ result: 1, source: 1, reason: 1 }));
          return this.closing();
        }
        notices.push(() => user.associateIndication?.(ctx.rq!));
        return 'Sta3';
      case 'AE-7':
        this.write(encodeAssociateAc(ctx.ac!));
        this.established(ctx.ac!, this.request?.userInfo?.maxLength ?? 0, this.maxReceive);
        return 'Sta6';
      case 'AE-8':
        this.write(encodeReject(ctx.rj!));
        return this.closing();
      case 'DT-1':
      case 'AR-7':
        for (const pdu of ctx.pdus ?? []) this.write(pdu);
        return action === 'DT-1' ? 'Sta6' : 'Sta8';
      case 'DT-2':
        return 'Sta6';
      case 'AR-6':
        return 'Sta7';
      case 'AR-1':
        this.write(encodeReleaseRq());
        this.timers.startWait(() => this.noAnswer());
        return 'Sta7';
      case 'AR-2':
        notices.push(() => user.releaseIndication());
        return 'Sta8';
      case 'AR-3':
        this.timers.stop();
        notices.push(() => user.releaseConfirmation?.());
        this.transport.destroy();
        return 'Sta1';
      case 'AR-4':
        this.write(encodeReleaseRp());
        return this.closing();
      case 'AR-5':
      case 'AA-5':
        return 'Sta1';
      case 'AR-8':
        notices.push(() => user.releaseIndication());
        return this.opts.role === 'requestor' ? 'Sta9' : 'Sta10';
      case 'AR-9':
        this.write(encodeReleaseRp());
        return 'Sta11';
      case 'AR-10':
        notices.push(() => user.releaseConfirmation?.());
        return 'Sta12';
      case 'AA-1': {
        const detail = ctx.error?.message ?? ctx.detail ?? 'aborted';
        const info = { source: AbortSource.ServiceUser, reason: AbortReason.NotSpecified, detail };
        this.logProblem(event, detail);
        this.write(encodeAbort(info));
        // Not an indication of PS3.8 (the user asked, or there is no association yet): it tells the user why.
        notices.push(() => user.abortIndication({ by: 'user', ...info }));
        return this.closing();
      }
      case 'AA-2':
        this.transport.destroy();
        return 'Sta1';
      case 'AA-3': {
        const a = ctx.abort ?? { source: AbortSource.ServiceUser, reason: AbortReason.NotSpecified };
        notices.push(() => user.abortIndication({ by: 'peer', ...a, detail: 'A-ABORT from the peer' }));
        this.transport.destroy();
        return 'Sta1';
      }
      case 'AA-4': {
        const detail = ctx.detail ?? 'the connection closed';
        const info = { source: AbortSource.ServiceProvider, reason: AbortReason.NotSpecified, detail };
        notices.push(() => user.abortIndication({ by: 'provider', ...info }));
        return 'Sta1';
      }
      case 'AA-6':
        return 'Sta13';
      case 'AA-7':
        this.write(encodeAbort({ source: AbortSource.ServiceProvider, reason: this.abortReason(event, ctx) }));
        return 'Sta13';
      case 'AA-8': {
        const reason = this.abortReason(event, ctx);
        const detail = ctx.error?.message ?? `unexpected ${PDU_NAMES[event] ?? event} in ${this.stateNow}`;
        this.logProblem(event, detail);
        this.write(encodeAbort({ source: AbortSource.ServiceProvider, reason }));
        notices.push(() =>
          user.abortIndication({ by: 'provider', source: AbortSource.ServiceProvider, reason, detail }),
        );
        return this.closing();
      }
      case 'ignore':
        return undefined;
      case 'local-error':
        this.opts.log.warn('upper layer: local request refused in this state', {
          ...this.opts.logMeta,
          state: this.stateNow,
          event,
        });
        return undefined;
    }
  }

  /** PS3.8 9.3.8: an unknown PDU type is "unrecognized PDU", a PDU in the wrong state "unexpected PDU". */
  private abortReason(event: Event, ctx: Context): number {
    if (ctx.error) return ctx.error.reason;
    return event === 'Evt19' ? AbortReason.InvalidPduParameter : AbortReason.UnexpectedPdu;
  }

  private established(ac: AssociateAc, peerMax: number, maxReceive: number): void {
    this.contexts = new Set(ac.presentationContexts.filter((pc) => pc.result === 0).map((pc) => pc.id));
    this.peerMaxPdu = peerMax;
    this.maxReceive = maxReceive;
    this.timers.touch();
    this.timers.startIdle(
      () => this.stateNow === 'Sta6',
      (ms) => this.fire('Evt15', { detail: `idle for ${Math.round(ms / 1000)} s` }),
    );
  }

  /** Requestor: no A-ASSOCIATE-AC / -RJ or A-RELEASE-RP within ARTIM: our own A-ABORT request (Evt15). */
  private noAnswer(): void {
    this.fire('Evt15', { detail: `no answer from the peer within ${this.timers.artimMs} ms` });
  }

  /** Sta13: our last PDU is out; our side closes, and ARTIM bounds the wait for the peer's close. */
  private closing(): State {
    this.timers.stop();
    this.timers.startArtim(() => this.fire('Evt18', {}));
    if (this.writable) {
      this.writable = false;
      this.transport.end();
    }
    return 'Sta13';
  }

  private write(buf: Buffer): void {
    if (!this.writable) return;
    this.transport.write(buf);
    this.timers.touch();
  }

  private logProblem(event: Event, detail: string): void {
    this.opts.log.warn('association aborted', { ...this.opts.logMeta, state: this.stateNow, event, detail });
  }

  private finish(): void {
    this.closedOnce = true;
    this.timers.stop();
    this.framer.stop();
    this.writable = false;
    this.user.closed();
  }
}
