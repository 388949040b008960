/** C-ECHO SCU (`scannode echo`): one association on dcmjs-dimse's Client, plain or over DICOM TLS. */
import dimse from 'dcmjs-dimse';
import { clientTlsOptions, type TlsClientFiles } from './tls.js';
import { describeStatus } from '../domain/statusTable.js';
import { rejectText } from './rejectTable.js';

const { Client, requests, constants } = dimse;
// The library logs every PDU at info; a CLI user wants the answer only.
(dimse.log as { setLevel(l: string): void }).setLevel('warn');

export interface Peer {
  aeTitle: string;
  host: string;
  port: number;
  /** Present: over DICOM TLS. */
  tls?: TlsClientFiles;
}

/** Parses AET@HOST:PORT. */
export function parsePeer(spec: string): Peer {
  const m = /^([^@]{1,16})@(.+):(\d{1,5})$/.exec(spec);
  if (!m) throw new Error(`expected AET@HOST:PORT, got "${spec}"`);
  return { aeTitle: m[1]!, host: m[2]!, port: Number(m[3]) };
}

/** C-ECHO a peer; resolves with the round-trip time or rejects with why it failed. */
export function echo(peer: Peer, callingAe: string, timeoutMs = 10000): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const client = new Client();
    const request = new requests.CEchoRequest();
    let status: number | undefined;
    request.on('response', (rsp: { getStatus(): number }) => {
      status = rsp.getStatus();
    });
    client.addRequest(request);
    client.on('associationRejected', (r: { result: number; source: number; reason: number }) =>
      reject(new Error(`association rejected: ${rejectText(r.result, r.source, r.reason)}`)),
    );
    client.on('networkError', (e: Error) => reject(new Error(`network error: ${e.message}`)));
    client.on('closed', () => {
      if (status === constants.Status.Success) resolve(Date.now() - started);
      else
        reject(
          new Error(
            status === undefined
              ? 'closed without a C-ECHO response'
              : `C-ECHO status ${describeStatus(status, 'C-ECHO')}`,
          ),
        );
    });
    client.send(peer.host, peer.port, callingAe, peer.aeTitle, {
      connectTimeout: timeoutMs,
      associationTimeout: timeoutMs,
      pduTimeout: timeoutMs,
      securityOptions: peer.tls ? clientTlsOptions(peer.tls) : undefined,
    });
  });
}
