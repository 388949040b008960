/**
 * One accepted TCP (or TLS) connection: the socket wired to its upper layer and association, with containment (an
 * exception from any callback ends this connection only), flow control (reading pauses while too much is queued),
 * TCP keepalive and TCP_NODELAY. Also the registry that caps connections outside an association.
 */
import type net from 'node:net';
import type { Logger } from '../logging/logger.js';
import type { Clock } from './clock.js';
import { ScpAssociation, type AssociationHost } from './association.js';
import { UpperLayer, type Transport } from './upperLayer.js';
import type { State } from './fsm.js';

/** Reading pauses while more than this waits to be sent (a peer that does not read its responses). */
const MAX_WRITE_BUFFER = 1024 * 1024;
/** Reading pauses while this many operations are being committed (a peer that does not wait for its responses). */
const MAX_IN_FLIGHT = 4;
/** TCP keepalive probes start after this long without traffic; the idle timer usually acts first. */
export const KEEPALIVE_MS = 30_000;

export interface ConnectionOptions {
  clock: Clock;
  artimMs: number;
  idleMs: number;
  log: Logger;
  /** For log lines: 'dicom' or 'dicom-tls'. */
  listener: string;
}

/** Whatever the registry may close to make room. */
export interface Closable {
  /** Sta13 (answered, closing) goes first, then Sta2 (no request yet); an association is never evicted. */
  evictionRank(): number;
  evict(): void;
}

export class Connection implements Closable {
  readonly ul: UpperLayer;
  readonly association: ScpAssociation;
  private paused = false;

  constructor(
    private readonly socket: net.Socket,
    host: AssociationHost,
    private readonly opts: ConnectionOptions,
    private readonly events: {
      established(c: Connection, yes: boolean): void;
      state(c: Connection, s: State): void;
      closed(c: Connection): void;
    },
  ) {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    const remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    this.association = new ScpAssociation(
      host,
      remote,
      (yes) => events.established(this, yes),
      () => this.flow(),
    );
    const transport: Transport = {
      write: (buf) => {
        socket.write(buf);
        if (socket.writableLength > MAX_WRITE_BUFFER) this.flow();
      },
      end: () => socket.end(),
      destroy: () => socket.destroy(),
    };
    this.ul = new UpperLayer(transport, this.association, {
      role: 'acceptor',
      clock: opts.clock,
      artimMs: opts.artimMs,
      idleMs: opts.idleMs,
      log: opts.log,
      logMeta: { ip: remote.address, port: remote.port, listener: opts.listener },
      onTransition: (t) => {
        if (t.from !== t.to) events.state(this, t.to);
      },
    });
    this.association.attach(this.ul);
    socket.on('data', (chunk: Buffer) => this.guard('data', () => this.ul.input(chunk)));
    socket.on('drain', () => this.guard('drain', () => this.flow()));
    socket.on('error', (err) => opts.log.debug('DICOM connection error', { err: err.message, ip: remote.address }));
    socket.once('close', () => {
      this.guard('close', () => this.ul.transportClosed());
      // However the state machine ended, the connection is gone.
      this.events.closed(this);
    });
    this.guard('connect', () => this.ul.transportIndication());
  }

  evictionRank(): number {
    const s = this.ul.state;
    return s === 'Sta13' ? 0 : s === 'Sta2' ? 1 : Number.POSITIVE_INFINITY;
  }

  /** Closes a connection that holds no association (to make room for a new one). */
  evict(): void {
    this.guard('evict', () => {
      if (this.ul.state === 'Sta2') this.ul.abort('closed to make room for a new connection');
      this.socket.destroy();
    });
  }

  /** Shutdown: an association still open after the grace period is aborted. */
  abort(detail: string): void {
    this.guard('abort', () => this.ul.abort(detail));
    // Let the A-ABORT go out, then close regardless of the peer.
    setTimeout(() => this.socket.destroy(), 500).unref();
  }

  private flow(): void {
    const full = this.socket.writableLength > MAX_WRITE_BUFFER || this.association.inFlight >= MAX_IN_FLIGHT;
    if (full && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!full && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /**
   * Every way into this connection's code goes through here: whatever throws (a handler, the codec, a bug) ends this
   * connection and nothing else. Nothing reaches the process's uncaught-exception path.
   */
  private guard(where: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.log.error('DICOM connection failed; closing it', {
        where,
        err: err instanceof Error ? (err.stack ?? err.message) : String(err),
        ip: this.socket.remoteAddress,
      });
      try {
        this.ul.abort(`internal error: ${err instanceof Error ? err.message : String(err)}`);
      } catch {
        // the state machine itself failed: the socket goes regardless
      }
      this.socket.destroy();
    }
  }
}

/**
 * Connections outside an association (awaiting the A-ASSOCIATE-RQ, a TLS handshake, or the peer's close after a
 * reject, abort or release) are capped apart from the associations: at the cap, the oldest of them in the lowest rank
 * is closed to make room, so idle sockets can neither lock a scanner out nor exhaust file descriptors.
 */
export class PendingRegistry {
  private readonly pending = new Set<Closable>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.pending.size;
  }

  add(c: Closable): void {
    while (this.pending.size >= this.max) {
      let victim: Closable | undefined;
      for (const p of this.pending) if (!victim || p.evictionRank() < victim.evictionRank()) victim = p;
      if (!victim) break;
      this.pending.delete(victim);
      victim.evict();
    }
    this.pending.add(c);
  }

  delete(c: Closable): void {
    this.pending.delete(c);
  }

  has(c: Closable): boolean {
    return this.pending.has(c);
  }

  all(): Closable[] {
    return [...this.pending];
  }
}
