/** The contracts of the upper layer (upperLayer.ts): the transport below it, the service user above it, its options. */
import type { Logger } from '../logging/logger.js';
import type { Clock } from './clock.js';
import type { Action, Event, State } from './fsm.js';
import type { RejectPdu } from './pdu.js';
import type { AssociateAc, AssociateRq } from './associatePdu.js';

export interface Transport {
  write(buf: Buffer): void;
  /** Closes our side once what was written is sent; the peer is expected to close its side. */
  end(): void;
  /** Closes the connection now. */
  destroy(): void;
  /** Requestor: opens the connection (AE-1); `transportConfirmation()` follows. */
  connect?(): void;
}

/** How an association or connection ended, for the service user and the log. */
export interface AbortInfo {
  /** peer: its A-ABORT; provider: this layer (a bad PDU, the connection lost); user: our own A-ABORT request. */
  by: 'peer' | 'provider' | 'user';
  source: number;
  reason: number;
  detail: string;
}

export interface UpperLayerUser {
  /** Acceptor: an A-ASSOCIATE-RQ arrived; answer with `accept()` or `reject()`. */
  associateIndication?(rq: AssociateRq): void;
  /** Requestor: the peer accepted or rejected. */
  associateConfirmation?(answer: { ac: AssociateAc } | { rj: RejectPdu }): void;
  /** A piece of a PDV of a P-DATA-TF, in order (see PduFramerSink.pdv). */
  pdv(presentationContextId: number, control: number, piece: Buffer, pdvEnd: boolean): void;
  /** The peer asked to release (also in a release collision); answer with `releaseResponse()`. */
  releaseIndication(): void;
  /** Requestor: the peer answered our A-RELEASE-RQ. */
  releaseConfirmation?(): void;
  /** A-ABORT or A-P-ABORT indication: the association is over. */
  abortIndication(info: AbortInfo): void;
  /** The connection is gone (Sta1); called once, last. */
  closed(): void;
}

export interface UpperLayerOptions {
  role: 'acceptor' | 'requestor';
  clock: Clock;
  /** ARTIM, and the wait for an A-ASSOCIATE-AC or A-RELEASE-RP. */
  artimMs: number;
  /** An established association with no PDU either way and no work in progress for this long is aborted. */
  idleMs: number;
  log: Logger;
  /** Fields for every log line of this connection (remote address...). */
  logMeta: Record<string, unknown>;
  /** Test hook: every transition. */
  onTransition?(t: { from: State; event: Event; action: Action; to: State }): void;
}
