/**
 * One association as the SCP sees it, above the upper layer: the ACSE answer to its A-ASSOCIATE-RQ (acse.ts), the
 * DIMSE messages of its P-DATA (dimseMessages.ts) handed to the services (services.ts), the release once the work in
 * flight is answered, and the summary for the audit and metrics hooks when the connection ends.
 */
import { randomUUID } from 'node:crypto';
import dimse from 'dcmjs-dimse';
import type { Logger } from '../logging/logger.js';
import { negotiate, type AcceptedContext, type AcceptorIdentity } from './acse.js';
import type { AssociateRq } from './associatePdu.js';
import {
  MessageAssembler,
  encodeMessage,
  type CommandSet,
  type DatasetSink,
  type MessageHandler,
} from './dimseMessages.js';
import type { Rejection } from './policy.js';
import { rejectionCodes } from './rejectTable.js';
import { dispatch, type ServiceHost } from './services.js';
import type { AssociationInfo, AssociationSummary, DimseHandlers } from './types.js';
import type { AbortInfo, UpperLayer, UpperLayerUser } from './upperLayer.js';

const { Dataset } = dimse;

/** What the server gives each association. */
export interface AssociationHost {
  readonly identity: AcceptorIdentity;
  readonly handlers: DimseHandlers;
  readonly log: Logger;
  /** Associations established now (for the local limit). */
  activeCount(): number;
  /** The transfer syntaxes we take for an abstract syntax, or undefined when we do not serve it. */
  syntaxesFor(abstractSyntax: string): readonly string[] | undefined;
}

export class ScpAssociation implements UpperLayerUser, MessageHandler, ServiceHost {
  readonly stats = { instances: 0, failures: 0, bytes: 0 };
  private ul: UpperLayer | undefined;
  private readonly assembler: MessageAssembler = new MessageAssembler(this);
  private contexts = new Map<number, AcceptedContext>();
  private infoValue: AssociationInfo | undefined;
  private readonly startedAt = new Date();
  private accepted = false;
  private rejection: Rejection | undefined;
  private abortInfo: AbortInfo | undefined;
  private inFlightCount = 0;
  private releaseWaiting = false;
  /** Requests we sent (N-EVENT-REPORT-RQ), by Message ID, waiting for their response's status. */
  private readonly awaiting = new Map<number, (status: number | undefined) => void>();
  private nextMessageId = 1;

  constructor(
    private readonly host: AssociationHost,
    private readonly remote: { address: string; port: number },
    /** The association was accepted (true) or is over (false): the server's count of associations. */
    private readonly onEstablished: (established: boolean) => void,
    /** Work in flight changed (the connection pauses reading when too much is queued). */
    private readonly onWork: (inFlight: number) => void,
  ) {}

  attach(ul: UpperLayer): void {
    this.ul = ul;
  }

  get info(): AssociationInfo {
    return this.infoValue!;
  }

  get handlers(): DimseHandlers {
    return this.host.handlers;
  }

  get log(): Logger {
    return this.host.log;
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  get isAccepted(): boolean {
    return this.accepted;
  }

  // --- upper layer indications -----------------------------------------------------------------------------------

  associateIndication(rq: AssociateRq): void {
    const n = negotiate(rq, this.host.identity, this.host.activeCount(), (a) => this.host.syntaxesFor(a));
    this.infoValue = {
      id: randomUUID(),
      callingAe: printable(n.callingAe),
      calledAe: printable(n.calledAe),
      remoteAddress: this.remote.address,
      remotePort: this.remote.port,
    };
    if (!n.ok) {
      this.rejection = n.rejection;
      this.ul!.reject(rejectionCodes(n.rejection));
      return;
    }
    this.contexts = n.contexts;
    this.accepted = true;
    this.onEstablished(true);
    this.ul!.accept(n.ac, this.host.identity.maxPduLength);
  }

  pdv(pcId: number, control: number, piece: Buffer, pdvEnd: boolean): void {
    this.assembler.pdv(pcId, control, piece, pdvEnd);
  }

  releaseIndication(): void {
    // A message cut short by the release is abandoned; the answer waits for the work in flight.
    this.assembler.abort('association released in the middle of a message');
    if (this.inFlightCount === 0) this.ul!.releaseResponse();
    else this.releaseWaiting = true;
  }

  abortIndication(info: AbortInfo): void {
    this.abortInfo = info;
    this.assembler.abort(info.detail);
  }

  closed(): void {
    this.assembler.abort('connection closed');
    for (const waiter of this.awaiting.values()) waiter(undefined);
    this.awaiting.clear();
    if (this.accepted) this.onEstablished(false);
    if (!this.infoValue) return;
    const summary: AssociationSummary = {
      ...this.infoValue,
      startedAt: this.startedAt,
      endedAt: new Date(),
      accepted: this.accepted,
      rejectReason: this.rejection?.detail,
      rejection: this.rejection?.kind,
      instancesReceived: this.stats.instances,
      bytesReceived: this.stats.bytes,
      failures: this.stats.failures,
      aborted: this.abortInfo !== undefined,
      abortDetail: this.abortInfo?.detail,
    };
    const ms = summary.endedAt.getTime() - summary.startedAt.getTime();
    if (this.accepted) {
      this.log.info('association closed', {
        callingAe: summary.callingAe,
        ip: summary.remoteAddress,
        instances: summary.instancesReceived,
        bytes: summary.bytesReceived,
        failures: summary.failures,
        aborted: summary.aborted,
        ms,
      });
    } else {
      this.log.warn('association rejected', {
        callingAe: summary.callingAe,
        ip: summary.remoteAddress,
        reason: summary.rejectReason,
      });
    }
    try {
      this.host.handlers.associationClosed?.(summary);
    } catch (err) {
      this.log.error('association audit failed', { err: String(err) });
    }
  }

  // --- DIMSE messages ------------------------------------------------------------------------------------------

  command(pcId: number, command: CommandSet, hasDataset: boolean): DatasetSink | undefined {
    if (((command.CommandField as number) & 0x8000) !== 0) {
      const waiter = this.awaiting.get(command.MessageIDBeingRespondedTo as number);
      if (waiter) {
        this.awaiting.delete(command.MessageIDBeingRespondedTo as number);
        waiter(typeof command.Status === 'number' ? command.Status : undefined);
        return undefined;
      }
      this.unreadable('a DIMSE response where only requests are expected');
      return undefined;
    }
    if (typeof command.MessageID !== 'number') {
      this.unreadable('a DIMSE request without Message ID');
      return undefined;
    }
    // The upper layer let this PDV through only on an accepted context.
    return dispatch(this, { context: this.contexts.get(pcId)!, command, hasDataset });
  }

  invalid(reason: number, detail: string): void {
    this.ul!.invalidPdu(reason, detail);
  }

  unreadable(detail: string): void {
    this.ul!.abort(detail);
  }

  // --- what the services use -------------------------------------------------------------------------------------

  respond(context: AcceptedContext, command: CommandSet, dataset?: Record<string, unknown>): void {
    const ul = this.ul!;
    // The peer may have gone while the work was done: nothing to answer then.
    if (ul.state !== 'Sta6' && ul.state !== 'Sta8') return;
    let bytes: Buffer | undefined;
    if (dataset) {
      try {
        bytes = new Dataset(dataset, context.transferSyntax).getDenaturalizedDataset();
      } catch (err) {
        this.log.error('cannot encode a response data set; answered without it', { err: String(err) });
      }
    }
    const pdus = encodeMessage(context.id, command, bytes, ul.peerMaxPdu);
    if (!pdus) {
      this.log.error('cannot encode a response command set', { command: JSON.stringify(command) });
      this.unreadable('a response could not be encoded');
      return;
    }
    ul.send(pdus);
  }

  request(
    context: AcceptedContext,
    command: CommandSet,
    dataset?: Record<string, unknown>,
  ): Promise<number | undefined> {
    const ul = this.ul!;
    if (ul.state !== 'Sta6') return Promise.resolve(undefined);
    const messageId = this.nextMessageId++;
    const sent = new Promise<number | undefined>((resolve) => this.awaiting.set(messageId, resolve));
    this.respond(context, { ...command, MessageID: messageId }, dataset);
    return sent;
  }

  track(work: Promise<unknown>): void {
    this.inFlightCount++;
    this.ul!.workStarted();
    this.onWork(this.inFlightCount);
    work
      .catch((err: unknown) => this.log.error('DIMSE work failed', { err: String(err) }))
      .finally(() => {
        this.inFlightCount--;
        this.ul!.workFinished();
        this.onWork(this.inFlightCount);
        if (this.inFlightCount === 0 && this.releaseWaiting) {
          this.releaseWaiting = false;
          this.ul!.releaseResponse();
        }
      })
      .catch((err: unknown) => this.log.error('association bookkeeping failed', { err: String(err) }));
  }
}

/** AE titles from the wire go to logs and the audit table: control characters shown as '?'. */
function printable(ae: string): string {
  // eslint-disable-next-line no-control-regex -- exactly what is replaced
  return ae.replace(/[\x00-\x1f\x7f-\uffff]/g, '?').slice(0, 16);
}
