/**
 * Owns what every association scannode opens shares (the requestor role of the upper layer): its A-ASSOCIATE-RQ, and
 * its connection, TCP with TCP_NODELAY or DICOM TLS when the peer has `tls` (its certificate must name `host`).
 */
import net from 'node:net';
import tls from 'node:tls';
import { clientTlsOptions, type TlsClientFiles } from './tls.js';
import type { Transport } from './upperLayerTypes.js';
import type { UpperLayer } from './upperLayer.js';
import type { AssociateRq, PresentationContextRq, RoleSelection } from './associatePdu.js';

/** The DICOM application context (PS3.7 A.2.1). */
const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

/** Our A-ASSOCIATE-RQ: the DICOM application context, a 64 KiB maximum length, our implementation identity. */
export function requestorAssociateRq(o: {
  calledAe: string;
  callingAe: string;
  presentationContexts: PresentationContextRq[];
  implementationClassUid: string;
  implementationVersionName?: string;
  roleSelections?: RoleSelection[];
}): AssociateRq {
  return {
    protocolVersion: 1,
    calledAe: o.calledAe,
    callingAe: o.callingAe,
    applicationContext: APPLICATION_CONTEXT,
    presentationContexts: o.presentationContexts,
    userInfo: {
      maxLength: 65536,
      implementationClassUid: o.implementationClassUid,
      implementationVersionName: o.implementationVersionName,
      asyncOps: undefined,
      roleSelections: o.roleSelections ?? [],
      other: [],
    },
  };
}

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
