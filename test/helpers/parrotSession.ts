/**
 * The raw-socket peer's connection: sends the bytes a case scripts and collects what the node answers, PDU by PDU
 * (A-ASSOCIATE-AC / RJ with result, source and reason, A-ABORT with source and reason, P-DATA with the command sets
 * it carries, A-RELEASE-RP), and how the connection ended (closed by the node, reset), each with a deadline.
 */
import net from 'node:net';
import { PDU } from './parrot.js';
import { decodeCommand, type DecodedCommand } from './parrotDimse.js';

export interface PdvIn {
  pc: number;
  control: number;
  data: Buffer;
}

export type NodeEvent =
  | { kind: 'AC'; contexts: Map<number, { result: number; transfer?: string }>; maxLength: number | undefined }
  | { kind: 'RJ'; result: number; source: number; reason: number }
  | { kind: 'ABORT'; source: number; reason: number }
  | { kind: 'PDATA'; length: number; pdvs: PdvIn[]; commands: Array<DecodedCommand & { pc: number }> }
  | { kind: 'RELEASE_RP' }
  | { kind: 'RELEASE_RQ' }
  | { kind: 'OTHER'; type: number; length: number }
  | { kind: 'CLOSE' }
  | { kind: 'RESET'; code: string }
  | { kind: 'TIMEOUT' };

/** What the node sends that ends the case (the connection may still be open). */
export const TERMINAL = new Set(['RJ', 'ABORT', 'RELEASE_RP', 'CLOSE', 'RESET']);

/** Longest PDU the reader assembles from the node (it announces 128 KiB at most; anything longer is garbage). */
const MAX_IN = 4 * 1024 * 1024;

export class ParrotSession {
  readonly events: Array<NodeEvent & { at: number }> = [];
  private readIndex = 0;
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private readonly pendingCommand = new Map<number, Buffer[]>();
  /** When the node closed (FIN or reset), ms since epoch. */
  endedAt: number | undefined;
  lastSentAt = Date.now();
  readonly startedAt = Date.now();

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.finish({ kind: 'CLOSE' }));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' && this.endedAt === undefined) return; // writing after the node's FIN: 'end' follows
      this.finish({ kind: 'RESET', code: err.code ?? err.message });
    });
    socket.on('close', () => this.finish({ kind: 'CLOSE' }));
  }

  static connect(port: number, timeoutMs = 10_000): Promise<ParrotSession> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${port} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new ParrotSession(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  get closed(): boolean {
    return this.endedAt !== undefined;
  }

  send(bytes: Buffer): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.lastSentAt = Date.now();
    this.socket.write(bytes);
  }

  /** Sends in pieces with a pause between them (cut anywhere, as TCP may). */
  async sendPieces(bytes: Buffer, cuts: number[], pauseMs = 2): Promise<void> {
    let from = 0;
    for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
      this.send(bytes.subarray(from, cut));
      from = cut;
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }

  /** The next event not yet read, or TIMEOUT after `timeoutMs`. */
  async next(timeoutMs: number): Promise<NodeEvent> {
    const deadline = Date.now() + timeoutMs;
    while (this.readIndex >= this.events.length) {
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'TIMEOUT' };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.events[this.readIndex++]!;
  }

  /** Skips events until one `pred` accepts or a terminal one comes (returned too), or TIMEOUT. */
  async until(pred: (e: NodeEvent) => boolean, timeoutMs: number): Promise<NodeEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = await this.next(Math.max(0, deadline - Date.now()));
      if (e.kind === 'TIMEOUT' || pred(e) || TERMINAL.has(e.kind)) return e;
    }
  }

  /** Resolves true when the node closes the connection within `timeoutMs` (we send nothing meanwhile). */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await this.next(Math.max(1, deadline - Date.now()));
    return this.closed;
  }

  /** A peer that sends FIN and goes. */
  end(): void {
    this.socket.end();
  }

  /** A peer that resets (RST) the connection. */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  /** We are done: what happens to the socket from now on is not the node's doing and is not recorded. */
  destroy(): void {
    this.endedAt ??= Date.now();
    this.socket.destroy();
  }

  private finish(e: NodeEvent): void {
    if (this.endedAt !== undefined) return;
    this.endedAt = Date.now();
    this.push(e);
  }

  private push(e: NodeEvent): void {
    this.events.push({ ...e, at: Date.now() });
    this.waiter?.();
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 6) {
      const type = this.buf[0]!;
      const length = this.buf.readUInt32BE(2);
      if (length > MAX_IN) {
        this.push({ kind: 'OTHER', type, length });
        this.buf = Buffer.alloc(0);
        this.socket.destroy();
        return;
      }
      if (this.buf.length < 6 + length) return;
      const body = this.buf.subarray(6, 6 + length);
      this.buf = this.buf.subarray(6 + length);
      this.push(this.parse(type, body));
    }
  }

  private parse(type: number, body: Buffer): NodeEvent {
    switch (type) {
      case PDU.AC:
        return parseAc(body);
      case PDU.RJ:
        return { kind: 'RJ', result: body[1] ?? -1, source: body[2] ?? -1, reason: body[3] ?? -1 };
      case PDU.ABORT:
        return { kind: 'ABORT', source: body[2] ?? -1, reason: body[3] ?? -1 };
      case PDU.RELEASE_RP:
        return { kind: 'RELEASE_RP' };
      case PDU.RELEASE_RQ:
        return { kind: 'RELEASE_RQ' };
      case PDU.PDATA:
        return this.parsePdata(body);
      default:
        return { kind: 'OTHER', type, length: body.length };
    }
  }

  private parsePdata(body: Buffer): NodeEvent {
    const pdvs: PdvIn[] = [];
    const commands: Array<DecodedCommand & { pc: number }> = [];
    let at = 0;
    while (at + 6 <= body.length) {
      const len = body.readUInt32BE(at);
      const pc = body[at + 4]!;
      const control = body[at + 5]!;
      const data = body.subarray(at + 6, at + 4 + len);
      pdvs.push({ pc, control, data });
      at += 4 + Math.max(len, 2);
      if (control & 1) {
        const parts = [...(this.pendingCommand.get(pc) ?? []), data];
        if (control & 2) {
          this.pendingCommand.delete(pc);
          commands.push({ pc, ...(decodeCommand(Buffer.concat(parts)) ?? {}) });
        } else this.pendingCommand.set(pc, parts);
      }
    }
    return { kind: 'PDATA', length: body.length, pdvs, commands };
  }
}

function parseAc(body: Buffer): NodeEvent {
  const contexts = new Map<number, { result: number; transfer?: string }>();
  let maxLength: number | undefined;
  let at = 68;
  while (at + 4 <= body.length) {
    const type = body[at]!;
    const len = body.readUInt16BE(at + 2);
    const v = body.subarray(at + 4, at + 4 + len);
    if (type === 0x21 && v.length >= 4) {
      const ts = v.length >= 8 ? v.subarray(8, 8 + v.readUInt16BE(6)).toString('latin1') : undefined;
      contexts.set(v[0]!, { result: v[2]!, transfer: ts });
    }
    if (type === 0x50) {
      let s = 0;
      while (s + 4 <= v.length) {
        const sl = v.readUInt16BE(s + 2);
        if (v[s] === 0x51 && sl === 4) maxLength = v.readUInt32BE(s + 4);
        s += 4 + sl;
      }
    }
    at += 4 + len;
  }
  return { kind: 'AC', contexts, maxLength };
}

/** A short description of an event for failure messages and the printed case table. */
export function describe(e: NodeEvent | undefined): string {
  if (!e) return 'nothing';
  switch (e.kind) {
    case 'RJ':
      return `A-ASSOCIATE-RJ(result ${e.result}, source ${e.source}, reason ${e.reason})`;
    case 'ABORT':
      return `A-ABORT(source ${e.source}, reason ${e.reason})`;
    case 'AC':
      return `A-ASSOCIATE-AC(${[...e.contexts].map(([id, c]) => `${id}:${c.result}`).join(' ')})`;
    case 'PDATA':
      return `P-DATA(${e.commands.map((c) => `cmd 0x${(c.commandField ?? 0).toString(16)} status 0x${(c.status ?? -1).toString(16)}`).join(', ') || `${e.length} bytes`})`;
    case 'OTHER':
      return `PDU type 0x${e.type.toString(16)} (${e.length} bytes)`;
    case 'RESET':
      return `reset (${e.code})`;
    default:
      return e.kind;
  }
}
