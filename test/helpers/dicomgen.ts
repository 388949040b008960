import fs from 'node:fs';
import path from 'node:path';
import dcmjs from 'dcmjs';

const { DicomDict, DicomMetaDictionary } = dcmjs.data;

export interface GeneratedInstance {
  file: string;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  studyInstanceUid: string;
}

export interface StudySpec {
  dir: string;
  series?: number;
  perSeries?: number;
  rows?: number;
  columns?: number;
  studyInstanceUid?: string;
  patientId?: string;
  patientName?: string;
  accessionNumber?: string;
  /** File name extension; '' for none. */
  ext?: string;
  /** More attributes for every instance (e.g. a Referenced Performed Procedure Step Sequence). */
  extra?: Record<string, unknown>;
}

let seq = 0;
/** A UID under a root of our own, unique per call within this process and across runs. */
export function newUid(): string {
  return `2.25.${BigInt(Date.now()) * 1000000n + BigInt(process.pid % 1000) * 1000n + BigInt(++seq % 1000)}${seq}`;
}

/** Writes an MR study (explicit VR little endian, 16-bit pixels) and returns what it wrote. */
export function generateStudy(spec: StudySpec): GeneratedInstance[] {
  const series = spec.series ?? 2;
  const perSeries = spec.perSeries ?? 3;
  const rows = spec.rows ?? 64;
  const columns = spec.columns ?? 64;
  const study = spec.studyInstanceUid ?? newUid();
  fs.mkdirSync(spec.dir, { recursive: true });
  const out: GeneratedInstance[] = [];
  const pixels = new Uint16Array(rows * columns);
  for (let s = 1; s <= series; s++) {
    const seriesUid = newUid();
    for (let i = 1; i <= perSeries; i++) {
      const sop = newUid();
      for (let p = 0; p < pixels.length; p++) pixels[p] = (p * 7 + i * 13 + s) & 0xfff;
      const file = path.join(spec.dir, `s${s}_i${i}${spec.ext ?? '.dcm'}`);
      fs.writeFileSync(
        file,
        encode({
          SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
          SOPInstanceUID: sop,
          StudyInstanceUID: study,
          SeriesInstanceUID: seriesUid,
          PatientID: spec.patientId ?? 'SN-TEST-1',
          PatientName: spec.patientName ?? 'Test^Patient',
          AccessionNumber: spec.accessionNumber ?? 'ACC1',
          StudyDate: '20261123',
          StudyTime: '101500',
          Modality: 'MR',
          SeriesNumber: String(s),
          InstanceNumber: String(i),
          SeriesDescription: `series ${s}`,
          ...spec.extra,
          Rows: rows,
          Columns: columns,
          BitsAllocated: 16,
          BitsStored: 12,
          HighBit: 11,
          PixelRepresentation: 0,
          SamplesPerPixel: 1,
          PhotometricInterpretation: 'MONOCHROME2',
          PixelData: [pixels.slice().buffer],
        }),
      );
      out.push({ file, sopInstanceUid: sop, seriesInstanceUid: seriesUid, studyInstanceUid: study });
    }
  }
  return out;
}

export function encode(naturalized: Record<string, unknown>, transferSyntaxUid = '1.2.840.10008.1.2.1'): Buffer {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: naturalized.SOPClassUID,
    MediaStorageSOPInstanceUID: naturalized.SOPInstanceUID,
    TransferSyntaxUID: transferSyntaxUid,
    ImplementationClassUID: '2.25.1',
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset({ ...naturalized, _vrMap: { PixelData: 'OW' } });
  return Buffer.from(dict.write());
}
