/**
 * Splits the byte stream of one connection into PDUs (PS3.8 section 9.3), linearly and within limits. Pure: no I/O.
 *
 * Nothing of a PDU's body is kept before its header has been judged: `header()` answers how the body is read:
 * - `whole`: gathered into one buffer (association, release and abort PDUs, whose length the caller has capped);
 * - `stream`: a P-DATA-TF is cut into its PDV items as the bytes arrive; each piece is handed on without a copy, so a
 *   data set streams to its sink whatever the PDU size, and a PDV that does not fit its PDU is caught at its header;
 * - `skip`: the body is counted off and dropped (a PDU that was answered from its header alone).
 */
import { AbortReason, PduError, PDU_HEADER, PDV_HEADER } from './pdu.js';

export type Disposition = 'whole' | 'stream' | 'skip';

export interface PduFramerSink {
  /** A PDU header arrived: how to read its body. May call `stop()`. */
  header(type: number, length: number): Disposition;
  /** The body of a PDU read `whole`. */
  pdu(type: number, body: Buffer): void;
  /**
   * A piece of one PDV's value, in order; `pdvEnd` on the piece that ends the PDV; `control` is its message control
   * header (bit 0: command, bit 1: last fragment).
   */
  pdv(presentationContextId: number, control: number, piece: Buffer, pdvEnd: boolean): void;
  /** The end of a streamed P-DATA-TF, after its last PDV. */
  pduEnd(): void;
  /** The PDV items of a streamed P-DATA-TF do not fit it. */
  error(err: PduError): void;
}

export class PduFramer {
  private readonly head = Buffer.alloc(PDU_HEADER);
  private headLength = 0;
  private mode: Disposition | undefined;
  private type = 0;
  /** Bytes of the current PDU's body still to come. */
  private remaining = 0;
  // whole mode
  private body: Buffer | undefined;
  private bodyLength = 0;
  // stream mode: the PDV item being read
  private readonly pdvHead = Buffer.alloc(PDV_HEADER);
  private pdvHeadLength = 0;
  private pdvRemaining = 0;
  private pdvPc = 0;
  private pdvControl = 0;
  private stopped = false;

  constructor(private readonly sink: PduFramerSink) {}

  /** Nothing more is parsed (the connection is over, or its bytes no longer matter). */
  stop(): void {
    this.stopped = true;
    this.body = undefined;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** True between PDUs (no header or body half read). */
  get atBoundary(): boolean {
    return this.mode === undefined && this.headLength === 0;
  }

  push(chunk: Buffer): void {
    while (chunk.length > 0 && !this.stopped) {
      if (this.mode === undefined) {
        const take = Math.min(PDU_HEADER - this.headLength, chunk.length);
        chunk.copy(this.head, this.headLength, 0, take);
        this.headLength += take;
        chunk = chunk.subarray(take);
        if (this.headLength < PDU_HEADER) return;
        this.headLength = 0;
        this.startPdu();
        continue;
      }
      const take = Math.min(this.remaining, chunk.length);
      const piece = chunk.subarray(0, take);
      chunk = chunk.subarray(take);
      this.remaining -= take;
      if (this.mode === 'stream') this.streamPdvs(piece);
      else if (this.mode === 'whole') this.gather(piece);
      if (this.remaining === 0 && !this.stopped) this.endPdu();
    }
  }

  private startPdu(): void {
    this.type = this.head[0]!;
    const length = this.head.readUInt32BE(2);
    const mode = this.sink.header(this.type, length);
    if (this.stopped) return;
    this.mode = mode;
    this.remaining = length;
    if (mode === 'whole') {
      this.body = undefined;
      this.bodyLength = 0;
    } else if (mode === 'stream') {
      this.pdvHeadLength = 0;
      this.pdvRemaining = 0;
    }
    if (length === 0) this.endPdu();
  }

  private gather(piece: Buffer): void {
    // A body that arrives in one chunk is used in place; otherwise one buffer of the announced size.
    if (this.body === undefined && this.remaining === 0) {
      this.body = piece;
      this.bodyLength = piece.length;
      return;
    }
    this.body ??= Buffer.allocUnsafe(piece.length + this.remaining);
    piece.copy(this.body, this.bodyLength);
    this.bodyLength += piece.length;
  }

  private endPdu(): void {
    const mode = this.mode;
    this.mode = undefined;
    if (mode === 'whole') {
      const body = this.body ?? Buffer.alloc(0);
      this.body = undefined;
      this.sink.pdu(this.type, body);
    } else if (mode === 'stream') {
      if (this.pdvHeadLength > 0 || this.pdvRemaining > 0) {
        return this.fail('a PDV runs past the end of its P-DATA-TF');
      }
      this.sink.pduEnd();
    }
  }

  /** Cuts the PDV items of a streamed P-DATA-TF out of `piece`. `this.remaining` already excludes `piece`. */
  private streamPdvs(piece: Buffer): void {
    while (piece.length > 0 && !this.stopped) {
      if (this.pdvRemaining === 0) {
        const take = Math.min(PDV_HEADER - this.pdvHeadLength, piece.length);
        piece.copy(this.pdvHead, this.pdvHeadLength, 0, take);
        this.pdvHeadLength += take;
        piece = piece.subarray(take);
        if (this.pdvHeadLength < PDV_HEADER) return;
        this.pdvHeadLength = 0;
        const itemLength = this.pdvHead.readUInt32BE(0);
        if (itemLength < 2) return this.fail(`PDV item length ${itemLength}`);
        const left = piece.length + this.remaining;
        if (itemLength - 2 > left) return this.fail(`a PDV of ${itemLength - 2} bytes in the ${left} left of its PDU`);
        this.pdvPc = this.pdvHead[4]!;
        this.pdvControl = this.pdvHead[5]!;
        this.pdvRemaining = itemLength - 2;
        if (this.pdvRemaining === 0) {
          this.sink.pdv(this.pdvPc, this.pdvControl, piece.subarray(0, 0), true);
          continue;
        }
      }
      const take = Math.min(this.pdvRemaining, piece.length);
      this.pdvRemaining -= take;
      this.sink.pdv(this.pdvPc, this.pdvControl, piece.subarray(0, take), this.pdvRemaining === 0);
      piece = piece.subarray(take);
    }
  }

  private fail(message: string): void {
    this.stop();
    this.sink.error(new PduError(AbortReason.InvalidPduParameter, message));
  }
}
