/**
 * Sends one storage commitment N-EVENT-REPORT-RQ on a new association to the requester (PS3.4 J.3.3), over
 * dcmjs-dimse's Client: resolves with the peer's status, rejects when the association cannot be made or ends first.
 */
import dimse from 'dcmjs-dimse';
import { STORAGE_COMMITMENT_SOP_CLASS, STORAGE_COMMITMENT_SOP_INSTANCE } from './nAction.js';

const { Client, Dataset } = dimse;
const { NEventReportRequest } = dimse.requests;

export interface ReportPeer {
  aeTitle: string;
  host: string;
  port: number;
}

export function sendEventReport(
  peer: ReportPeer,
  callingAe: string,
  eventTypeId: 1 | 2,
  dataset: Record<string, unknown>,
  timeoutMs = 30_000,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const client = new Client();
    const request = new NEventReportRequest(STORAGE_COMMITMENT_SOP_CLASS, STORAGE_COMMITMENT_SOP_INSTANCE, eventTypeId);
    request.setDataset(new Dataset(dataset));
    let status: number | undefined;
    let error: string | undefined;
    const timer = setTimeout(() => {
      error = 'timed out';
      try {
        client.abort();
      } catch {
        // not connected
      }
    }, timeoutMs).unref();
    request.on('response', (rsp: { getStatus(): number }) => {
      status = rsp.getStatus();
    });
    client.on('associationRejected', () => (error = 'association rejected'));
    client.on('networkError', (e: Error) => (error = e.message));
    client.on('closed', () => {
      clearTimeout(timer);
      if (status !== undefined) resolve(status);
      else reject(new Error(error ?? 'closed without an N-EVENT-REPORT-RSP'));
    });
    client.addRequest(request);
    client.send(peer.host, peer.port, callingAe, peer.aeTitle);
  });
}
