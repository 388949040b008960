/**
 * The DICOM listeners (plain TCP and DICOM TLS, PS3.15 annex B): both run the same upper layer and share the
 * association limit and the cap on connections outside an association. Owns start-up and the graceful close.
 * dcmjs-dimse's `Server` / `Scp` are not used: their association handling could not give the state table, the
 * limits and the timers of PS3.8 without overriding their private methods (see docs/ARCHITECTURE.md).
 */
import net from 'node:net';
import tls from 'node:tls';
import { EventEmitter } from 'node:events';
import type { Logger } from '../logging/logger.js';
import { COMMAND_TRANSFER_SYNTAXES, STORAGE_TRANSFER_SYNTAXES } from '../domain/transferSyntax.js';
import { Sop, isStorageSopClass } from '../domain/sopClass.js';
import { hex } from '../domain/status.js';
import type { AcceptorIdentity } from './acse.js';
import type { AssociationHost } from './association.js';
import { realClock, type Clock } from './clock.js';
import { Connection, PendingRegistry, type Closable } from './connection.js';
import { serverTlsOptions, type TlsServerFiles } from './tls.js';
import type { DimseHandlers } from './types.js';
import { STORAGE_COMMITMENT_SOP_CLASS } from './nAction.js';

export interface DicomServerOptions {
  aeTitle: string;
  allowedCallingAeTitles: readonly string[];
  maxAssociations: number;
  host: string;
  /** Plain TCP port; null: no plain listener (TLS only). 0: any free port. */
  port: number | null;
  maxPduLength: number;
  artimTimeoutSeconds: number;
  idleTimeoutSeconds: number;
  /** Connections outside an association (see PendingRegistry). */
  maxPendingConnections: number;
  shutdownGraceSeconds: number;
  tls?: TlsServerFiles & { port: number };
  implementationClassUid: string;
  implementationVersionName: string;
  /** Injected by tests; real time otherwise. */
  clock?: Clock;
}

export class DicomServer extends EventEmitter {
  private plain: net.Server | undefined;
  private secure: tls.Server | undefined;
  private readonly connections = new Set<Connection>();
  private readonly established = new Set<Connection>();
  private readonly pending: PendingRegistry;
  private readonly host: AssociationHost;
  private closing = false;

  constructor(
    private readonly opts: DicomServerOptions,
    handlers: DimseHandlers,
    private readonly log: Logger,
  ) {
    super();
    if (opts.port === null && !opts.tls) throw new Error('DICOM: neither a plain port nor TLS is configured');
    this.pending = new PendingRegistry(opts.maxPendingConnections);
    const identity: AcceptorIdentity = {
      aeTitle: opts.aeTitle,
      allowedCallingAeTitles: opts.allowedCallingAeTitles,
      maxAssociations: opts.maxAssociations,
      maxPduLength: opts.maxPduLength,
      implementationClassUid: opts.implementationClassUid,
      implementationVersionName: opts.implementationVersionName,
    };
    this.host = {
      identity,
      handlers,
      log,
      activeCount: () => this.established.size,
      syntaxesFor: (abstract) =>
        isStorageSopClass(abstract)
          ? STORAGE_TRANSFER_SYNTAXES
          : abstract === Sop.Verification ||
              (abstract === Sop.Mpps && handlers.nCreate) ||
              (abstract === STORAGE_COMMITMENT_SOP_CLASS && handlers.nAction)
            ? COMMAND_TRANSFER_SYNTAXES
            : undefined,
    };
  }

  get activeAssociations(): number {
    return this.established.size;
  }

  /** Connections outside an association right now. */
  get pendingConnections(): number {
    return this.pending.size;
  }

  get listening(): boolean {
    return (this.plain?.listening ?? false) || (this.secure?.listening ?? false);
  }

  /** The plain listener's address (the TLS one when there is no plain listener). */
  address(): net.AddressInfo {
    return (this.plain ?? this.secure)!.address() as net.AddressInfo;
  }

  tlsAddress(): net.AddressInfo | undefined {
    return (this.secure?.address() as net.AddressInfo | null) ?? undefined;
  }

  async listen(): Promise<void> {
    const { opts } = this;
    if (opts.port !== null) {
      const server = net.createServer({ noDelay: true, keepAlive: true }, (socket) => this.accept(socket, 'dicom'));
      await this.bind(server, opts.port, 'DICOM listener up');
      this.plain = server;
    }
    if (opts.tls) {
      const server = tls.createServer(
        { ...serverTlsOptions(opts.tls), handshakeTimeout: opts.artimTimeoutSeconds * 1000 },
        (socket) => this.accept(socket, 'dicom-tls'),
      );
      // Until its handshake is done, a TLS connection is one of the connections outside an association.
      server.on('connection', (raw: net.Socket) => this.handshaking(raw));
      server.on('tlsClientError', (err, socket) => {
        this.log.warn('DICOM TLS handshake failed', { err: err.message, ip: socket.remoteAddress });
      });
      await this.bind(server, opts.tls.port, 'DICOM TLS listener up');
      this.secure = server;
    }
  }

  private async bind(server: net.Server, port: number, message: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error('DICOM listener error', { err: err.message }));
    const addr = server.address() as net.AddressInfo;
    this.log.info(message, { aeTitle: this.opts.aeTitle, host: addr.address, port: addr.port });
  }

  /** TLS connections whose handshake is under way, by remote address and port (the TLS socket has the same). */
  private readonly handshakes = new Map<string, Closable>();

  private handshaking(raw: net.Socket): void {
    if (this.closing) return void raw.destroy();
    const key = `${raw.remoteAddress}|${raw.remotePort}`;
    const entry: Closable = { evictionRank: () => 1, evict: () => raw.destroy() };
    this.handshakes.set(key, entry);
    this.pending.add(entry);
    raw.once('close', () => this.handshakeOver(key));
  }

  private handshakeOver(key: string): void {
    const entry = this.handshakes.get(key);
    if (!entry) return;
    this.handshakes.delete(key);
    this.pending.delete(entry);
  }

  private accept(socket: net.Socket, listener: string): void {
    if (listener === 'dicom-tls') this.handshakeOver(`${socket.remoteAddress}|${socket.remotePort}`);
    if (this.closing) return void socket.destroy();
    try {
      const conn = new Connection(
        socket,
        this.host,
        {
          clock: this.opts.clock ?? realClock,
          artimMs: this.opts.artimTimeoutSeconds * 1000,
          idleMs: this.opts.idleTimeoutSeconds * 1000,
          log: this.log,
          listener,
        },
        {
          established: (c, yes) => (yes ? this.established.add(c) : this.established.delete(c)),
          state: (c, s) => {
            // An association is not a pending connection; once it is over (Sta13) it is again, until closed.
            if (s === 'Sta6' || s === 'Sta1') this.pending.delete(c);
            else if (s === 'Sta13' && !this.pending.has(c)) this.pending.add(c);
            if (s === 'Sta13') this.established.delete(c);
          },
          closed: (c) => {
            this.connections.delete(c);
            this.pending.delete(c);
            this.established.delete(c);
          },
        },
      );
      this.connections.add(conn);
      if (conn.ul.state === 'Sta2') this.pending.add(conn);
    } catch (err) {
      this.log.error('cannot set up a DICOM connection', { err: String(err) });
      socket.destroy();
    }
  }

  /**
   * Stops accepting, closes connections outside an association at once, lets associations in flight finish for the
   * grace period, then aborts what is left. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const servers = [this.plain, this.secure].filter((s): s is net.Server => s !== undefined);
    const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    for (const p of this.pending.all()) p.evict();
    const deadline = Date.now() + this.opts.shutdownGraceSeconds * 1000;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (this.connections.size > 0) {
      this.log.warn('aborting associations still open after the grace period', { open: this.connections.size });
      for (const c of this.connections) c.abort('the node is shutting down');
      const until = Date.now() + 1000;
      while (this.connections.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    }
    await closed;
  }
}

export { hex };
