/**
 * A test MPPS SCU on dcmjs-dimse's Client (no Debian package ships one). It knows nothing of the server code it tests:
 * it speaks DICOM to a port and reports the statuses it got back.
 */
import dimse from 'dcmjs-dimse';

const { Client, Dataset, requests } = dimse;
const MPPS = '1.2.840.10008.3.1.2.3.3';

export interface NOp {
  op: 'create' | 'set';
  /** SOP Instance UID; undefined on N-CREATE lets the SCP assign one. */
  uid: string | undefined;
  dataset: Record<string, unknown>;
}

export interface NResult {
  status: number;
  sopInstanceUid: string | undefined;
  comment: string | undefined;
}

interface Rsp {
  getStatus(): number;
  getAffectedSopInstanceUid(): string | undefined;
  getErrorComment?(): string | undefined;
}

/** Sends the operations in order on one association; resolves with one result per operation. */
export function mppsSend(port: number, ops: NOp[], opts: { calledAe?: string; callingAe?: string } = {}) {
  return new Promise<NResult[]>((resolve, reject) => {
    const client = new Client();
    const results: Array<NResult | undefined> = ops.map(() => undefined);
    ops.forEach((o, i) => {
      const req =
        o.op === 'create'
          ? new requests.NCreateRequest(MPPS, o.uid as string)
          : new requests.NSetRequest(MPPS, o.uid as string);
      req.setDataset(new Dataset(o.dataset, '1.2.840.10008.1.2.1'));
      req.on('response', (rsp: Rsp) => {
        results[i] = {
          status: rsp.getStatus(),
          sopInstanceUid: rsp.getAffectedSopInstanceUid() || undefined,
          comment: rsp.getErrorComment?.() || undefined,
        };
      });
      client.addRequest(req);
    });
    client.on('associationRejected', () => reject(new Error('association rejected')));
    client.on('networkError', (e: Error) => reject(e));
    client.on('closed', () => {
      if (results.some((r) => r === undefined)) reject(new Error('closed without every N- response'));
      else resolve(results as NResult[]);
    });
    client.send('127.0.0.1', port, opts.callingAe ?? 'MPPSSCU', opts.calledAe ?? 'SCANNODE', {
      connectTimeout: 10000,
      associationTimeout: 10000,
      pduTimeout: 10000,
    });
  });
}

export async function nCreate(port: number, uid: string | undefined, dataset: Record<string, unknown>) {
  return (await mppsSend(port, [{ op: 'create', uid, dataset }]))[0]!;
}

export async function nSet(port: number, uid: string, dataset: Record<string, unknown>) {
  return (await mppsSend(port, [{ op: 'set', uid, dataset }]))[0]!;
}

/** The attributes of an N-CREATE as a scanner sends them (PS3.4 F.7.2.1). */
export function createDataset(o: {
  studyInstanceUid?: string;
  accessionNumber?: string;
  patientId?: string;
  patientName?: string;
  charset?: string;
  status?: string;
}): Record<string, unknown> {
  return {
    ...(o.charset ? { SpecificCharacterSet: o.charset } : {}),
    PatientName: o.patientName ?? 'Test^Patient',
    PatientID: o.patientId ?? 'SN-TEST-1',
    PatientBirthDate: '19800101',
    PatientSex: 'O',
    ScheduledStepAttributesSequence: [
      {
        StudyInstanceUID: o.studyInstanceUid ?? '',
        AccessionNumber: o.accessionNumber ?? 'ACC1',
        RequestedProcedureID: 'RP1',
        ScheduledProcedureStepID: 'SPS1',
      },
    ],
    PerformedProcedureStepID: 'PPS1',
    PerformedStationAETitle: 'SCANNER',
    PerformedProcedureStepStartDate: '20261123',
    PerformedProcedureStepStartTime: '101500',
    PerformedProcedureStepStatus: o.status ?? 'IN PROGRESS',
    PerformedProcedureStepDescription: 'MR brain',
    Modality: 'MR',
    PerformedSeriesSequence: [],
  };
}

/** A Performed Series Sequence naming the given instances, grouped by series. */
export function performedSeries(
  instances: Array<{ seriesInstanceUid: string; sopInstanceUid: string }>,
  sopClassUid = '1.2.840.10008.5.1.4.1.1.4',
): Record<string, unknown>[] {
  const bySeries = new Map<string, string[]>();
  for (const i of instances)
    bySeries.set(i.seriesInstanceUid, [...(bySeries.get(i.seriesInstanceUid) ?? []), i.sopInstanceUid]);
  return [...bySeries].map(([series, sops]) => ({
    SeriesInstanceUID: series,
    SeriesDescription: 'series',
    PerformingPhysicianName: '',
    ProtocolName: 'proto',
    OperatorsName: '',
    RetrieveAETitle: '',
    ReferencedImageSequence: sops.map((s) => ({ ReferencedSOPClassUID: sopClassUid, ReferencedSOPInstanceUID: s })),
    ReferencedNonImageCompositeSOPInstanceSequence: [],
  }));
}
