/**
 * NiDB-style grouping of instances (completion.grouping: 'nidb'): subject = PatientID; study = Modality + StudyDate +
 * StudyTime of that subject; series = SeriesNumber within that study. Pure functions, no I/O.
 *
 * Keys are text: `<PatientID>|<Modality>|<StudyDate>|<StudyTime>` for a study, the study key + `|<SeriesNumber>` for a
 * series. Values are trimmed; StudyTime is cut to whole seconds (HHMMSS, the fraction dropped) so 101500 and
 * 101500.123 match. Missing-value rule: when PatientID, Modality, StudyDate or StudyTime is empty the study cannot be
 * matched reliably, so its key falls back to `uid:<StudyInstanceUID>` (the study stays on its own, as in 'uid' mode);
 * a missing SeriesNumber likewise gives `<studyKey>|uid:<SeriesInstanceUID>`.
 */
export interface GroupingInput {
  patientId: string | null | undefined;
  modality: string | null | undefined;
  studyDate: string | null | undefined;
  studyTime: string | null | undefined;
  studyInstanceUid: string;
}

export interface StudyGroup {
  subject: string;
  studyKey: string;
}

const clean = (v: string | null | undefined): string => (v ?? '').trim();

/** HHMMSS(.ffffff) -> HHMMSS; HH:MM:SS (old ACR-NEMA form) -> HHMMSS. */
export function normalizeStudyTime(v: string | null | undefined): string {
  const t = clean(v).replace(/:/g, '');
  const dot = t.indexOf('.');
  return dot >= 0 ? t.slice(0, dot) : t;
}

export function studyGroupKey(i: GroupingInput): StudyGroup {
  const subject = clean(i.patientId);
  const modality = clean(i.modality).toUpperCase();
  const date = clean(i.studyDate);
  const time = normalizeStudyTime(i.studyTime);
  if (!subject || !modality || !date || !time) {
    return { subject: subject || `uid:${i.studyInstanceUid}`, studyKey: `uid:${i.studyInstanceUid}` };
  }
  return { subject, studyKey: [subject, modality, date, time].join('|') };
}

export function seriesGroupKey(
  studyKey: string,
  seriesNumber: number | null | undefined,
  seriesInstanceUid: string,
): string {
  return seriesNumber === null || seriesNumber === undefined || !Number.isFinite(seriesNumber)
    ? `${studyKey}|uid:${seriesInstanceUid}`
    : `${studyKey}|${seriesNumber}`;
}
