/** Study Root C-FIND: the query's keys at each level, and one association that collects the matches. */
import dimse from 'dcmjs-dimse';
import {
  runAssociation,
  ScuAbortedError,
  ScuStatusError,
  type QueryLevel,
  type ScuOptions,
  type ScuPeer,
} from './scuAssociation.js';
import { cleanDataset, errorComment } from './scuAnswers.js';
import { isFailure, isPending } from '../domain/statusTable.js';

const { Dataset, requests } = dimse;

/** Return keys asked for at each level unless the caller gives them (empty = "return it"). */
const FIND_RETURN_KEYS: Record<QueryLevel, string[]> = {
  STUDY: [
    'StudyInstanceUID',
    'AccessionNumber',
    'PatientID',
    'PatientName',
    'StudyDate',
    'StudyTime',
    'StudyID',
    'StudyDescription',
    'NumberOfStudyRelatedSeries',
    'NumberOfStudyRelatedInstances',
  ],
  SERIES: [
    'StudyInstanceUID',
    'SeriesInstanceUID',
    'SeriesNumber',
    'Modality',
    'SeriesDescription',
    'NumberOfSeriesRelatedInstances',
  ],
  IMAGE: ['StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID', 'SOPClassUID', 'InstanceNumber'],
};

/**
 * Study Root C-FIND at `level`. `keys` are matching keys (a value) and extra return keys (''), by DICOM keyword;
 * the usual return keys of the level are added. Resolves with one naturalized data set per match: strings trimmed of
 * padding, empty elements left out (so a key the peer cannot fill, e.g. dcmqrscp's NumberOfSeriesRelatedInstances, is
 * absent). Rejects with ScuStatusError on a failure status, and with the connection errors above.
 */
export async function cFind(
  peer: ScuPeer,
  callingAe: string,
  level: QueryLevel,
  keys: Record<string, string>,
  opts: ScuOptions,
): Promise<Array<Record<string, unknown>>> {
  const elements: Record<string, unknown> = {};
  for (const k of FIND_RETURN_KEYS[level]) elements[k] = '';
  Object.assign(elements, keys);
  elements.QueryRetrieveLevel = level;
  // eslint-disable-next-line no-control-regex
  if (Object.values(keys).some((v) => /[^\x00-\x7f]/.test(v))) elements.SpecificCharacterSet = 'ISO_IR 192';

  const request = new requests.CFindRequest();
  request.setDataset(new Dataset(elements));

  const matches: Array<Record<string, unknown>> = [];
  let final: { status: number; comment?: string } | undefined;
  await runAssociation(peer, callingAe, opts, 'C-FIND', [
    {
      request,
      onResponse(rsp) {
        const status = rsp.getStatus();
        if (isPending(status, 'C-FIND')) {
          const ds = rsp.getDataset();
          if (ds) matches.push(cleanDataset(ds.getElements()));
          return false;
        }
        final = { status, comment: errorComment(rsp) };
        return true;
      },
    },
  ]);
  if (!final) throw new ScuAbortedError(peer, 'no final C-FIND response');
  if (isFailure(final.status, 'C-FIND')) throw new ScuStatusError(peer, 'C-FIND', final.status, final.comment);
  return matches;
}
