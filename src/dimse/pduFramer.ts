/**
 * Splits the bytes of an association into PDUs (PS3.8 section 9.3), linearly.
 *
 * dcmjs-dimse's own accumulator `Buffer.concat`s every socket chunk onto the PDU received so far, then copies each PDU
 * twice more while parsing it into PDVs: for a 1 GiB data set that was ~80 MiB of garbage held at once (the peak RSS
 * target is 200 MiB) and a fixed cost per PDU on the main thread. This framer hands whole PDUs to the library as
 * before, except while a C-STORE data set is being streamed (`sink.streaming()`): the PDVs of those P-DATA-TF PDUs
 * are cut out of the socket chunks as they arrive and passed on without a copy. Pure: no I/O.
 */

export interface PduFramerSink {
  /** A whole PDU, header included, for the library's parser. */
  pdu(buf: Buffer): void;
  /** True while a C-STORE data set is being streamed: P-DATA-TF PDUs are then cut into PDV pieces. */
  streaming(): boolean;
  /**
   * A piece of one PDV's value, in order. `pdvEnd` on the piece that ends the PDV; `control` is its message control
   * header (bit 0: command, bit 1: last fragment).
   */
  pdv(presentationContextId: number, control: number, piece: Buffer, pdvEnd: boolean): void;
  /** The byte stream is not DICOM UL: the association must be aborted. */
  error(err: Error): void;
}

const PDU_TYPES = new Set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
const P_DATA_TF = 0x04;

export class PduFramer {
  private readonly head = Buffer.alloc(6);
  private headLength = 0;
  /** Bytes of the current PDU's body still to come (undefined: between PDUs). */
  private remaining: number | undefined;
  /** Parts of a PDU assembled for the library (whole mode, or the rest of a streamed PDU). */
  private parts: Buffer[] | undefined;
  private partsLength = 0;
  // Streaming a P-DATA-TF: the PDV item being read.
  private readonly pdvHead = Buffer.alloc(6);
  private pdvHeadLength = 0;
  private pdvRemaining = 0;
  private pdvPc = 0;
  private pdvControl = 0;
  private failed = false;

  constructor(private readonly sink: PduFramerSink) {}

  push(chunk: Buffer): void {
    while (chunk.length > 0 && !this.failed) {
      if (this.remaining === undefined) {
        const take = Math.min(6 - this.headLength, chunk.length);
        chunk.copy(this.head, this.headLength, 0, take);
        this.headLength += take;
        chunk = chunk.subarray(take);
        if (this.headLength < 6) return;
        this.startPdu();
        continue;
      }
      const take = Math.min(this.remaining, chunk.length);
      const piece = chunk.subarray(0, take);
      chunk = chunk.subarray(take);
      this.remaining -= take;
      if (this.parts) {
        this.parts.push(piece);
        this.partsLength += piece.length;
      } else {
        this.streamPdvs(piece);
      }
      if (this.remaining === 0 && !this.failed) this.endPdu();
    }
  }

  private startPdu(): void {
    const type = this.head[0]!;
    const length = this.head.readUInt32BE(2);
    this.headLength = 0;
    if (!PDU_TYPES.has(type)) return this.fail(new Error(`unknown PDU type 0x${type.toString(16)}`));
    this.remaining = length;
    if (type === P_DATA_TF && this.sink.streaming()) {
      this.parts = undefined;
      this.pdvHeadLength = 0;
      this.pdvRemaining = 0;
    } else {
      this.parts = [Buffer.from(this.head)];
      this.partsLength = 6;
    }
    if (length === 0) this.endPdu();
  }

  private endPdu(): void {
    this.remaining = undefined;
    if (this.parts) {
      const parts = this.parts;
      this.parts = undefined;
      this.sink.pdu(parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.partsLength));
    } else if (this.pdvHeadLength > 0 || this.pdvRemaining > 0) {
      this.fail(new Error('a PDV runs past the end of its P-DATA-TF'));
    }
  }

  /** Cuts the PDV items of a streamed P-DATA-TF out of `piece`. */
  private streamPdvs(piece: Buffer): void {
    while (piece.length > 0) {
      if (this.pdvRemaining === 0) {
        if (this.pdvHeadLength === 0 && !this.sink.streaming()) {
          // The data set ended inside this PDU: what follows (a command) goes to the library as a P-DATA-TF of its own.
          const rest = Buffer.alloc(6);
          rest[0] = P_DATA_TF;
          rest.writeUInt32BE(piece.length + this.remaining!, 2);
          this.parts = [rest, piece];
          this.partsLength = 6 + piece.length;
          return;
        }
        const take = Math.min(6 - this.pdvHeadLength, piece.length);
        piece.copy(this.pdvHead, this.pdvHeadLength, 0, take);
        this.pdvHeadLength += take;
        piece = piece.subarray(take);
        if (this.pdvHeadLength < 6) return;
        this.pdvHeadLength = 0;
        const itemLength = this.pdvHead.readUInt32BE(0);
        if (itemLength < 2) return this.fail(new Error(`PDV item length ${itemLength}`));
        this.pdvPc = this.pdvHead[4]!;
        this.pdvControl = this.pdvHead[5]!;
        this.pdvRemaining = itemLength - 2;
        if (this.pdvRemaining === 0) {
          this.sink.pdv(this.pdvPc, this.pdvControl, Buffer.alloc(0), true);
          continue;
        }
      }
      const take = Math.min(this.pdvRemaining, piece.length);
      this.pdvRemaining -= take;
      this.sink.pdv(this.pdvPc, this.pdvControl, piece.subarray(0, take), this.pdvRemaining === 0);
      piece = piece.subarray(take);
    }
  }

  private fail(err: Error): void {
    this.failed = true;
    this.sink.error(err);
  }
}
