import dimse from 'dcmjs-dimse';

const { Client, Dataset, requests } = dimse;

export interface RawStoreResult {
  status?: number;
  rejected?: { result: number; source: number; reason: number };
  error?: string;
}

/**
 * A C-STORE SCU that sends bytes of our choosing as the data set (garbage, truncated data, a hostile SOP Instance
 * UID): what no well-behaved DCMTK tool would send. Built on dcmjs-dimse's Client; the data set encoder is replaced
 * by the raw bytes.
 */
export function rawStore(opts: {
  port: number;
  calledAe?: string;
  callingAe?: string;
  sopClassUid?: string;
  sopInstanceUid: string;
  transferSyntaxUid?: string;
  bytes: Buffer;
}): Promise<RawStoreResult> {
  return new Promise((resolve) => {
    // dcmjs-dimse's Client proposes implicit VR little endian first; bytes in any other syntax would be transcoded.
    const ts = opts.transferSyntaxUid ?? '1.2.840.10008.1.2';
    const ds = new Dataset(
      { SOPClassUID: opts.sopClassUid ?? '1.2.840.10008.5.1.4.1.1.4', SOPInstanceUID: opts.sopInstanceUid },
      ts,
    );
    (ds as unknown as { getDenaturalizedDataset: () => Buffer }).getDenaturalizedDataset = () => opts.bytes;
    const request = new requests.CStoreRequest(ds);
    const result: RawStoreResult = {};
    request.on('response', (rsp: { getStatus(): number }) => {
      result.status = rsp.getStatus();
    });
    const client = new Client();
    client.addRequest(request);
    client.on('associationRejected', (r: { result: number; source: number; reason: number }) => (result.rejected = r));
    client.on('networkError', (e: Error) => (result.error = e.message));
    client.on('closed', () => resolve(result));
    client.send('127.0.0.1', opts.port, opts.callingAe ?? 'RAWSCU', opts.calledAe ?? 'SCANNODE', {
      connectTimeout: 5000,
      associationTimeout: 5000,
      pduTimeout: 5000,
    });
  });
}
