/**
 * DIMSE messages over P-DATA (PS3.7 section 9.1 / annex E, PS3.8 annex E): assembles incoming PDV pieces into a
 * command set followed by its data set, enforcing the ordering rules (command fragments first, on one presentation
 * context, then the data set's fragments on the same context, nothing interleaved), and encodes outgoing messages
 * into P-DATA-TF PDUs. The data set is never gathered here: its pieces go to whatever sink the service gives, as
 * they arrive. Role-agnostic. Pure.
 */
import { decodeCommandSet, encodeCommandSet } from './commandSet.js';
import { AbortReason, PDV_COMMAND, PDV_LAST, pdataPdu, pdataPdus, PDV_HEADER } from './pdu.js';

/** No command set needs more (a C-MOVE-RQ with every element is a few hundred bytes). */
export const MAX_COMMAND_SET = 64 * 1024;
/** CommandDataSetType (0000,0800): this value means "no data set"; any other, one follows. */
export const NO_DATA_SET = 0x0101;
export const DATA_SET_PRESENT = 0x0001;

export type CommandSet = Record<string, string | number>;

export interface DatasetSink {
  /** A piece of the data set, in order, a view into the socket's buffer (copy it to keep it). */
  write(piece: Buffer): void;
  /** The last fragment arrived. */
  end(): void;
  /** The association ended before the last fragment. */
  abort(reason: string): void;
}

export interface MessageHandler {
  /**
   * A whole command set arrived on `pcId`. When `hasDataset`, returns the sink of its data set (undefined: the data
   * set is read and dropped).
   */
  command(pcId: number, command: CommandSet, hasDataset: boolean): DatasetSink | undefined;
  /** The P-DATA broke the ordering rules (an upper layer matter: A-ABORT, reason in PS3.8 terms). */
  invalid(reason: number, detail: string): void;
  /** The command set cannot be read: a DIMSE matter, the service user aborts. */
  unreadable(detail: string): void;
}

const DISCARD: DatasetSink = { write: () => undefined, end: () => undefined, abort: () => undefined };

export class MessageAssembler {
  private phase: 'idle' | 'command' | 'dataset' = 'idle';
  private pcId = 0;
  private parts: Buffer[] = [];
  private length = 0;
  private sink: DatasetSink = DISCARD;

  constructor(private readonly handler: MessageHandler) {}

  /** True while a message is half received. */
  get busy(): boolean {
    return this.phase !== 'idle';
  }

  pdv(pcId: number, control: number, piece: Buffer, pdvEnd: boolean): void {
    const isCommand = (control & PDV_COMMAND) !== 0;
    const last = pdvEnd && (control & PDV_LAST) !== 0;
    if (this.phase === 'dataset') {
      if (isCommand) return this.invalid('a command fragment in the middle of a data set');
      if (pcId !== this.pcId)
        return this.invalid(`a data set fragment on context ${pcId}, its command on ${this.pcId}`);
      this.sink.write(piece);
      if (last) {
        const sink = this.sink;
        this.reset();
        sink.end();
      }
      return;
    }
    if (!isCommand) {
      return this.invalid(
        this.phase === 'idle'
          ? 'a data set fragment with no command before it'
          : "a data set fragment before the command's last fragment",
      );
    }
    if (this.phase === 'command' && pcId !== this.pcId) {
      return this.invalid(`command fragments on contexts ${this.pcId} and ${pcId}`);
    }
    this.phase = 'command';
    this.pcId = pcId;
    this.length += piece.length;
    if (this.length > MAX_COMMAND_SET) return this.invalid(`a command set over ${MAX_COMMAND_SET} bytes`);
    // Pieces are views into socket chunks, which are not reused, so keeping them is safe.
    this.parts.push(piece);
    if (last) this.commandDone();
  }

  /** The association ended: a data set being received is abandoned. */
  abort(reason: string): void {
    const sink = this.sink;
    const wasDataset = this.phase === 'dataset';
    this.reset();
    if (wasDataset) sink.abort(reason);
  }

  private commandDone(): void {
    const bytes = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.length);
    const pcId = this.pcId;
    this.reset();
    const command = decodeCommandSet(bytes);
    if (!command || typeof command.CommandField !== 'number') {
      return this.handler.unreadable(
        command ? 'a command set without Command Field' : 'a command set that cannot be read',
      );
    }
    const hasDataset = command.CommandDataSetType !== NO_DATA_SET;
    const sink = this.handler.command(pcId, command, hasDataset);
    if (hasDataset) {
      this.phase = 'dataset';
      this.pcId = pcId;
      this.sink = sink ?? DISCARD;
    }
  }

  private invalid(detail: string): void {
    this.abort(detail);
    this.handler.invalid(AbortReason.UnexpectedPduParameter, detail);
  }

  private reset(): void {
    this.phase = 'idle';
    this.parts = [];
    this.length = 0;
    this.sink = DISCARD;
  }
}

/**
 * The P-DATA-TF PDUs of one message: the command set (with CommandDataSetType set), then the data set if any, each
 * cut to the peer's maximum PDU length. Returns undefined when an element cannot be encoded.
 */
export function encodeMessage(
  pcId: number,
  command: CommandSet,
  dataset: Buffer | undefined,
  peerMaxPdu: number,
): Buffer[] | undefined {
  const encoded = encodeCommandSet({ ...command, CommandDataSetType: dataset ? DATA_SET_PRESENT : NO_DATA_SET });
  if (!encoded) return undefined;
  // The usual answer (a short command, no data set) is one PDU.
  const pdus =
    peerMaxPdu === 0 || encoded.length + PDV_HEADER <= peerMaxPdu
      ? [pdataPdu(pcId, PDV_COMMAND | PDV_LAST, encoded)]
      : pdataPdus(pcId, true, encoded, peerMaxPdu);
  if (dataset) pdus.push(...pdataPdus(pcId, false, dataset, peerMaxPdu));
  return pdus;
}
