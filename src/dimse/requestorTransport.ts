/**
 * Owns the connection of an association scannode opens (the requestor role of the upper layer): TCP with
 * TCP_NODELAY, or DICOM TLS when the peer has `tls` (its certificate must name `host`), wired to the upper layer.
 */
import net from 'node:net';
import tls from 'node:tls';
import { clientTlsOptions, type TlsClientFiles } from './tls.js';
import type { Transport } from './upperLayerTypes.js';
import type { UpperLayer } from './upperLayer.js';

export interface RequestorTransport extends Transport {
  /** The socket once connecting started (for backpressure). */
  readonly socket: net.Socket | undefined;
}

/** `ul` is asked for lazily: the transport is made before the upper layer that uses it. */
export function requestorTransport(
  peer: { host: string; port: number; tls?: TlsClientFiles },
  ul: () => UpperLayer,
  onError: (message: string) => void,
): RequestorTransport {
  let socket: net.Socket | undefined;
  return {
    get socket() {
      return socket;
    },
    connect: () => {
      const connected = () => {
        socket!.setNoDelay(true);
        ul().transportConfirmation();
      };
      socket = peer.tls
        ? tls.connect({ host: peer.host, port: peer.port, ...clientTlsOptions(peer.tls) }, connected)
        : net.connect(peer.port, peer.host, connected);
      socket.on('data', (chunk: Buffer) => ul().input(chunk));
      socket.on('error', (err) => onError(err.message));
      socket.on('close', () => ul().transportClosed());
    },
    write: (b) => void socket!.write(b),
    end: () => void socket!.end(),
    destroy: () => void socket!.destroy(),
  };
}
