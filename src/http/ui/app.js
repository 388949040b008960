// scannode status page: renders the snapshot of GET /api/status and every update of GET /api/events (server-sent
// events) in place, without a reload. Scans and series are keyed by UID and updated where they stand, so open/closed
// state, the filter and the scroll position survive updates even with hundreds of series. Text is always set with
// textContent (never parsed as HTML).
'use strict';

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function setText(e, text) {
  const t = text == null ? '' : String(text);
  if (e.textContent !== t) e.textContent = t;
}

function bytes(n) {
  if (n == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

/** How long ago an ISO time was, in the largest whole unit (s, min, h, d). */
function age(iso) {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

function shortUid(uid) {
  if (!uid) return '(study not known yet)';
  return uid.length > 28 ? `…${uid.slice(-26)}` : uid;
}

function dicomDate(d) {
  return d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}` : d || '';
}

// -- progress bars ----------------------------------------------------------------------------------------------

function bar() {
  const b = el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0' }, el('span'));
  return b;
}

function updateBar(b, received, expected) {
  const known = expected != null && expected > 0;
  const pct = known ? Math.min(100, (100 * received) / expected) : 100;
  b.classList.toggle('unknown', !known);
  b.classList.toggle('done', known && received >= expected);
  b.setAttribute('aria-valuenow', String(received));
  if (known) b.setAttribute('aria-valuemax', String(expected));
  else b.removeAttribute('aria-valuemax');
  b.dataset.received = String(received);
  b.dataset.expected = known ? String(expected) : '';
  b.firstChild.style.width = `${pct}%`;
  b.title = known ? `${received} of ${expected}` : `${received} received, expected count not known yet`;
}

function counts(received, expected) {
  return expected ? `${received} / ${expected}` : `${received} / ?`;
}

// -- active scans -------------------------------------------------------------------------------------------------

const scanNodes = new Map();

function scanNode() {
  const details = el('details', { class: 'scan' });
  const title = el('span', { class: 'title uid' });
  const why = el('span', { class: 'why' });
  const total = bar();
  const num = el('span', { class: 'num' });
  details.append(el('summary', {}, title, why, total, num));
  const tbody = el('tbody');
  details.append(el('table', { class: 'series' }, tbody));
  const node = { details, title, why, total, num, tbody, rows: new Map(), fresh: true };
  return node;
}

/** Scans with more series than this start folded: their summary line carries the progress. */
const OPEN_UP_TO = 20;

function seriesRow() {
  const r = {
    tr: el('tr'),
    number: el('td', { class: 'num' }),
    modality: el('td'),
    description: el('td', { class: 'wrap' }),
    bar: bar(),
    count: el('td', { class: 'num' }),
  };
  r.tr.append(r.number, r.modality, r.description, el('td', { class: 'bar-cell' }, r.bar), r.count);
  return r;
}

function searchText(scan) {
  return [scan.studyInstanceUid, scan.accessionNumber, scan.studyDate, scan.mppsStatus]
    .filter((v) => v != null)
    .join(' ')
    .toLowerCase();
}

function renderActive(active) {
  const container = $('#active');
  const seen = new Set();
  let previous = null;
  for (const scan of active.scans) {
    const key = scan.id;
    seen.add(key);
    let node = scanNodes.get(key);
    if (!node) {
      node = scanNode();
      scanNodes.set(key, node);
    }
    const d = node.details;
    if (node.fresh) {
      d.open = scan.series.length <= OPEN_UP_TO;
      node.fresh = false;
    }
    d.dataset.scan = scan.id;
    d.dataset.study = scan.studyInstanceUid || '';
    d.dataset.search = searchText(scan);
    setText(
      node.title,
      [
        shortUid(scan.studyInstanceUid),
        scan.patientId && `patient ${scan.patientId}`,
        scan.accessionNumber && `acc ${scan.accessionNumber}`,
        dicomDate(scan.studyDate),
        scan.remote && `from ${scan.remote}`,
        scan.requestedAt && `requested ${age(scan.requestedAt)} ago`,
      ]
        .filter(Boolean)
        .join(' · '),
    );
    node.title.title = scan.studyInstanceUid || scan.id;
    const complete = scan.series.filter((s) => s.expected && s.received >= s.expected).length;
    setText(
      node.why,
      [
        scan.mppsStatus ? `MPPS ${scan.mppsStatus}` : 'no MPPS',
        `${complete}/${scan.series.length} series complete`,
        scan.waiting,
      ]
        .filter(Boolean)
        .join(' · '),
    );
    updateBar(node.total, scan.receivedOfExpected, scan.expected);
    setText(node.num, counts(scan.expected ? scan.receivedOfExpected : scan.received, scan.expected));
    // Series rows, keyed by UID, in the order given.
    const rowSeen = new Set();
    let prevRow = null;
    for (const s of scan.series) {
      rowSeen.add(s.seriesInstanceUid);
      let r = node.rows.get(s.seriesInstanceUid);
      if (!r) {
        r = seriesRow();
        node.rows.set(s.seriesInstanceUid, r);
      }
      r.tr.dataset.series = s.seriesInstanceUid;
      r.tr.dataset.search = [s.seriesInstanceUid, s.modality, s.seriesDescription, s.seriesNumber]
        .filter((v) => v != null)
        .join(' ')
        .toLowerCase();
      setText(r.number, s.seriesNumber);
      setText(r.modality, s.modality);
      setText(r.description, s.seriesDescription);
      updateBar(r.bar, s.received, s.expected);
      setText(r.count, counts(s.received, s.expected));
      const want = prevRow ? prevRow.nextSibling : node.tbody.firstChild;
      if (want !== r.tr) node.tbody.insertBefore(r.tr, want);
      prevRow = r.tr;
    }
    for (const [uid, r] of node.rows) {
      if (!rowSeen.has(uid)) {
        r.tr.remove();
        node.rows.delete(uid);
      }
    }
    const want = previous ? previous.nextSibling : container.firstChild;
    if (want !== d) container.insertBefore(d, want);
    previous = d;
  }
  for (const [key, node] of scanNodes) {
    if (!seen.has(key)) {
      node.details.remove();
      scanNodes.delete(key);
    }
  }
  const shown = active.scans.length;
  setText($('#active-count'), active.total > shown ? `(${shown} of ${active.total})` : `(${active.total})`);
  $('#active-empty').hidden = active.total > 0;
  applyFilter();
}

/**
 * The filter shows the scans whose study, accession, date or MPPS state match, whole; of the other scans, only the
 * series that match (the scan is opened when they are few).
 */
function applyFilter() {
  const q = $('#filter').value.trim().toLowerCase();
  for (const node of scanNodes.values()) {
    const d = node.details;
    const scanMatch = q === '' || d.dataset.search.includes(q);
    let shown = 0;
    for (const r of node.rows.values()) {
      r.tr.hidden = !scanMatch && !r.tr.dataset.search.includes(q);
      if (!r.tr.hidden) shown++;
    }
    d.hidden = !scanMatch && shown === 0;
    if (!scanMatch && shown > 0 && shown <= OPEN_UP_TO) d.open = true;
  }
}

// -- tables -------------------------------------------------------------------------------------------------------

function fillTable(table, rows, cells) {
  const tbody = table.tBodies[0];
  const frag = document.createDocumentFragment();
  for (const row of rows) {
    const tr = el('tr');
    const { attrs, values } = cells(row);
    for (const [k, v] of Object.entries(attrs || {})) tr.dataset[k] = v;
    for (const v of values) {
      const td = el('td');
      if (v && typeof v === 'object') {
        td.className = v.class || '';
        td.textContent = v.text == null ? '' : String(v.text);
        if (v.title) td.title = v.title;
      } else td.textContent = v == null ? '' : String(v);
      tr.append(td);
    }
    frag.append(tr);
  }
  tbody.replaceChildren(frag);
}

/** The forward state of an ended scan, one "destination: state" per destination; the last error as its title. */
function forwarded(forwards) {
  if (!forwards || !forwards.length) return '';
  const bad = forwards.some((f) => f.state === 'given-up' || (f.state === 'pending' && f.attempts > 0));
  return {
    text: forwards.map((f) => `${f.destination}: ${f.state}`).join(', '),
    class: `wrap${bad ? ' failed-reason' : ''}`,
    title: forwards
      .filter((f) => f.lastError)
      .map((f) => `${f.destination} (attempt ${f.attempts}): ${f.lastError}`)
      .join('\n'),
  };
}

/** The scanner at a glance: answering, unreachable (with why as the title), or not asked yet. */
function renderScanner(remotes) {
  const pill = $('#scanner');
  const scanner = remotes.find((r) => r.scanner);
  pill.hidden = !scanner;
  if (!scanner) return;
  const st = scanner.state || { reachable: null };
  setText(
    pill,
    st.reachable == null ? 'scanner not asked yet' : st.reachable ? 'scanner answers' : 'scanner unreachable',
  );
  pill.className = `pill ${st.reachable == null ? 'off' : st.reachable ? 'ok' : 'bad'}`;
  pill.title = st.lastError ? `${when(st.lastErrorAt)}: ${st.lastError}` : '';
}

function render(st) {
  setText($('#ae'), st.aeTitle ? `AE ${st.aeTitle}` : '');
  const dicom = $('#dicom');
  if (st.dicom) {
    setText(dicom, st.dicom.listening ? `DICOM up · ${st.dicom.activeAssociations} open` : 'DICOM down');
    dicom.className = `pill ${st.dicom.listening ? 'ok' : 'bad'}`;
  }
  const sch = $('#scheduler');
  if (st.scheduler) {
    const s = st.scheduler;
    const parts = [s.paused ? 'scheduler paused' : s.running ? 'scheduler running' : 'scheduler idle'];
    if (s.lastRunAt) parts.push(`last ${when(s.lastRunAt)}`);
    if (s.nextRunAt && !s.paused) parts.push(`next ${when(s.nextRunAt)}`);
    setText(sch, parts.join(' · '));
    sch.className = `pill ${s.lastError ? 'bad' : s.paused ? 'warn' : 'ok'}`;
    sch.title = s.lastError || '';
  }
  const disk = $('#disk');
  if (st.disk) {
    const frac = st.disk.freeBytes / st.disk.totalBytes;
    setText(disk, `${bytes(st.disk.freeBytes)} free of ${bytes(st.disk.totalBytes)}`);
    disk.className = `pill ${frac < 0.05 ? 'bad' : frac < 0.15 ? 'warn' : 'ok'}`;
  }
  renderScanner(st.remotes || []);
  renderActive(st.active);
  setText($('#finished-count'), `(${st.finished.total})`);
  fillTable($('#finished'), st.finished.scans, (s) => ({
    attrs: { study: s.studyInstanceUid || '', scan: s.id },
    values: [
      { text: when(s.completedAt), title: s.requestedAt ? `requested ${age(s.requestedAt)} ago` : '' },
      { text: shortUid(s.studyInstanceUid), class: 'uid', title: s.studyInstanceUid },
      s.patientId,
      s.accessionNumber,
      s.series,
      counts(s.received, s.expected),
      s.mppsStatus,
      forwarded(s.forwards),
    ],
  }));
  setText($('#failed-count'), `(${st.failed.total})`);
  fillTable($('#failed'), st.failed.scans, (s) => ({
    attrs: { study: s.studyInstanceUid || '', scan: s.id },
    values: [
      { text: when(s.completedAt), title: s.requestedAt ? `requested ${age(s.requestedAt)} ago` : '' },
      { text: shortUid(s.studyInstanceUid), class: 'uid', title: s.studyInstanceUid },
      s.patientId,
      s.accessionNumber,
      counts(s.received, s.expected),
      { text: s.reason, class: 'wrap failed-reason' },
      forwarded(s.forwards),
    ],
  }));
  if (st.imports) {
    setText($('#imports-count'), `(${st.imports.total})`);
    fillTable($('#imports'), st.imports.recent, (b) => ({
      attrs: { import: b.id, state: b.state },
      values: [
        when(b.startedAt),
        { text: b.name, class: 'wrap', title: b.path },
        b.source,
        { text: b.attempts > 1 ? `${b.state} (attempt ${b.attempts})` : b.state, class: `state-${b.state}` },
        b.counts.filesFound,
        b.counts.archived,
        b.counts.duplicates,
        b.counts.problems,
        b.counts.errors,
        { text: b.message, class: `wrap${b.state === 'failed' ? ' failed-reason' : ''}` },
      ],
    }));
  }
  fillTable($('#associations'), st.associations, (a) => ({
    values: [
      when(a.endedAt),
      a.remote ? `${a.callingAe} (${a.remote})` : a.callingAe,
      a.remoteAddress,
      a.accepted
        ? a.aborted
          ? 'aborted'
          : 'ok'
        : { text: `rejected: ${a.rejectReason || ''}`, class: 'failed-reason' },
      a.instancesReceived,
      bytes(a.bytesReceived),
      a.failures,
      `${(a.durationMs / 1000).toFixed(1)} s`,
    ],
  }));
  fillTable(
    $('#remotes'),
    (st.remotes || []).map((r) => ({ ...r, state: r.state || { reachable: null } })),
    (r) => ({
      values: [
        r.scanner ? `${r.name} (scanner)` : r.name,
        `${r.aeTitle}@${r.host}:${r.port}`,
        ['send', 'retrieve', 'store'].filter((k) => r.roles[k]).join(', '),
        r.state.reachable == null
          ? 'not seen'
          : { text: r.state.reachable ? 'reachable' : 'unreachable', class: r.state.reachable ? '' : 'failed-reason' },
        when(r.state.lastSuccessAt),
        {
          text: r.state.lastError
            ? `${when(r.state.lastErrorAt)}: ${r.state.lastError}${r.state.lastErrorStatus ? ` (status ${r.state.lastErrorStatus})` : ''}`
            : '',
          class: 'wrap',
        },
      ],
    }),
  );
  if (st.cluster) {
    // The node holding the scheduler lease reconciles and finishes every scan: it owns them all.
    setText($('#passes'), `(${st.cluster.passes} passes; the node marked * owns the scans)`);
    fillTable($('#nodes'), st.cluster.nodes, (n) => ({
      attrs: { node: n.id, state: n.state },
      values: [
        n.id,
        `${n.host} (pid ${n.pid})`,
        { text: n.state, class: n.state === 'dead' ? 'failed-reason' : '' },
        `${when(n.heartbeatAt)} (${n.heartbeatAgeSeconds} s ago)`,
        n.associations,
        n.scheduler ? '*' : '',
      ],
    }));
  }
  setText($('#generated'), `updated ${when(st.generatedAt)}`);
  document.body.dataset.generatedAt = st.generatedAt;
}

// -- live updates -------------------------------------------------------------------------------------------------

function connect() {
  const conn = $('#conn');
  const source = new EventSource('/api/events');
  source.addEventListener('status', (ev) => {
    setText(conn, 'live');
    conn.className = 'pill ok';
    render(JSON.parse(ev.data));
  });
  source.onerror = () => {
    // EventSource reconnects by itself; say so meanwhile.
    setText(conn, 'reconnecting…');
    conn.className = 'pill off';
  };
}

document.addEventListener('DOMContentLoaded', () => {
  $('#filter').addEventListener('input', applyFilter);
  fetch('/api/status')
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then(render)
    .catch(() => undefined)
    .finally(connect);
});
