import { z } from 'zod';

/** DICOM AE titles: 1-16 characters, no backslash or control characters. */
const aeTitle = z
  .string()
  .trim()
  .min(1)
  .max(16)
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  .regex(/^[^\\\x00-\x1f]+$/, 'an AE title has no backslash or control characters');
const port = z.number().int().min(1).max(65535);

/** A file path, relative to the config file's folder (resolved by the loader). */
const filePath = z.string().min(1);

/** DICOM TLS (PS3.15 annex B) beside, or instead of, the plain port. */
const dicomTls = z.strictObject({
  /** 2762 is the port IANA registered for DICOM over TLS; 0 takes any free port (tests). */
  port: z.number().int().min(0).max(65535).default(2762),
  /** PEM certificate (chain) and private key of this node. */
  cert: filePath,
  key: filePath,
  /** PEM CA certificate(s) that client certificates must be signed by. */
  ca: filePath.optional(),
  /** Refuse a client without a certificate signed by `ca`. */
  requireClientCert: z.boolean().default(false),
});

const dicom = z
  .strictObject({
    aeTitle: aeTitle.default('SCANNODE'),
    host: z.string().min(1).default('0.0.0.0'),
    /** The plain (non-TLS) port; null turns the plain listener off (TLS only). */
    port: z.number().int().min(0).max(65535).nullable().default(11112),
    allowedCallingAeTitles: z.array(aeTitle).default([]),
    maxAssociations: z.number().int().min(1).max(1024).default(16),
    /** Largest P-DATA-TF PDU we announce; larger PDUs mean fewer round trips per instance. */
    maxPduLength: z.number().int().min(16384).max(4194304).default(131072),
    /** ARTIM: a connection that has not finished association or release within this is closed. */
    artimTimeoutSeconds: z.number().positive().max(3600).default(30),
    /** An association with no PDU either way and nothing being processed for this long is aborted. */
    idleTimeoutSeconds: z.number().positive().max(86400).default(60),
    /** TCP connections outside an association (before A-ASSOCIATE-RQ, in a TLS handshake, or closing). */
    maxPendingConnections: z.number().int().min(1).max(4096).default(64),
    pduTimeoutSeconds: z
      .undefined({
        error:
          'removed: use dicom.idleTimeoutSeconds (an idle association is aborted, default 60) and ' +
          'dicom.artimTimeoutSeconds (association and release setup, default 30)',
      })
      .optional(),
    tls: dicomTls.optional(),
    /** What to do with a re-sent SOP Instance UID whose content differs from the stored one. */
    onConflict: z.enum(['refuse', 'quarantine']).default('refuse'),
    /** How long shutdown waits for associations in flight before closing them. */
    shutdownGraceSeconds: z.number().int().min(0).default(10),
  })
  .superRefine((d, ctx) => {
    if (d.port === null && !d.tls) {
      ctx.addIssue({
        code: 'custom',
        path: ['port'],
        message: 'null (plain port off) needs dicom.tls: nothing would listen',
      });
    }
  })
  .prefault({});

/** DICOM TLS towards a remote (we are the TLS client). */
const remoteTls = z.strictObject({
  /** PEM CA certificate(s) that signed the remote's certificate (default: the system's CAs). */
  ca: filePath.optional(),
  /** Our certificate and key, for a remote that asks for one. */
  cert: filePath.optional(),
  key: filePath.optional(),
});

/** What a remote may do with us, and we with it. */
const remoteRoles = z
  .strictObject({
    /** It may open associations to us (C-STORE, MPPS, Storage Commitment) and is named in logs, metrics, status. */
    send: z.boolean().default(true),
    /** We may C-FIND / C-MOVE from it (a scanner, a PACS to pull from by accession). */
    retrieve: z.boolean().default(false),
    /** We may C-STORE to it (a forward destination) and ask it for Storage Commitment. */
    store: z.boolean().default(false),
  })
  .prefault({});

/** A named DICOM node scannode talks to. */
const remote = z.strictObject({
  aeTitle,
  host: z.string().min(1),
  port,
  /** Present: associations we open to it go over TLS. */
  tls: remoteTls.optional(),
  roles: remoteRoles,
  /**
   * Incoming associations are matched to this remote by calling AE title; when true, also by the peer's address
   * (`host` must then be the address it connects from).
   */
  matchAddress: z.boolean().default(false),
  /**
   * Forwarding to it asks for Storage Commitment after the C-STOREs (N-ACTION), and a study counts as delivered only
   * once the remote reports every instance committed (needs roles.store).
   */
  commitment: z.boolean().default(false),
});
export type Remote = z.infer<typeof remote>;

/** Today's `scanner` object: still accepted, and becomes the remote named "scanner". */
const scannerObject = z.strictObject({
  aeTitle: aeTitle.default('SCANNER'),
  host: z.string().min(1).default('127.0.0.1'),
  port: port.default(104),
  /** Present: C-FIND / C-MOVE / C-ECHO to the scanner go over TLS. */
  tls: remoteTls.optional(),
});

/**
 * The scanner: the name of a remote, or (as before remotes existed) its own object. Absent: the remote named
 * "scanner" if there is one, else the object's defaults.
 */
const scanner = z.union([z.string().min(1), scannerObject]).optional();

/** Which scans go to which destinations once they end (issue 15). */
const forwardRule = z.strictObject({
  /** Names of remotes with roles.store. */
  to: z.array(z.string().min(1)).min(1),
  /** Which ends of a scan are forwarded. */
  when: z.enum(['finished', 'failed', 'both']).default('finished'),
  /** Only scans with a series of one of these modalities (e.g. ["MR"]). */
  modality: z.array(z.string().min(1)).optional(),
  /** Only scans from one of these remotes (a scan's source remote; the scanner by its name). */
  from: z.array(z.string().min(1)).min(1).optional(),
  /** Only the series whose description matches this regular expression are sent. */
  seriesDescription: z.string().min(1).optional(),
});

/** The outbox: how forwarding retries. */
const forwarding = z
  .strictObject({
    maxTries: z.number().int().min(1).max(1000).default(20),
    /** First wait before a failed delivery is tried again; it doubles with each attempt, up to an hour. */
    retrySeconds: z.number().positive().max(86_400).default(60),
    /** How long a destination has to report storage commitment before the study is sent and asked again. */
    commitmentWaitSeconds: z.number().positive().max(86_400).default(600),
  })
  .prefault({});

const database = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('sqlite'), path: z.string().min(1).default('scannode.sqlite') }),
    z.strictObject({
      type: z.literal('postgres'),
      url: z.string().regex(/^postgres(ql)?:\/\//, 'a postgres:// URL'),
      schema: z
        .string()
        .regex(/^[a-z_][a-z0-9_]*$/)
        .optional(),
    }),
  ])
  .prefault({ type: 'sqlite' });

const scheduler = z
  .strictObject({
    enabled: z.boolean().default(true),
    cron: z.string().min(1).default('*/15 * * * * *'),
  })
  .prefault({});

const completion = z
  .strictObject({
    /** Scans without MPPS: finished after no new instance for this long, once the scanner's C-FIND agrees. */
    quietPeriodSeconds: z.number().int().min(0).default(120),
    /** Never finish a scan by the quiet period: wait for MPPS COMPLETED. */
    requireMpps: z.boolean().default(false),
    /** A scan with no progress (instance, MPPS event) for this long fails. */
    failAfterHours: z.number().positive().default(24),
    /**
     * How instances are grouped into patient / study / series on completion: 'uid' (by their UIDs) or 'nidb'
     * (PatientID; Modality + StudyDate + StudyTime; SeriesNumber; keys in src/domain/grouping.ts).
     */
    grouping: z.enum(['uid', 'nidb']).default('uid'),
  })
  .prefault({});

const retrieve = z
  .strictObject({
    /** C-MOVE attempts per series before the scan fails. */
    maxAttempts: z.number().int().min(1).default(9),
    /** Wait after a failed attempt; doubles with each further failure, at most maxBackoffSeconds. */
    backoffSeconds: z.number().min(0).default(30),
    maxBackoffSeconds: z.number().min(0).default(3600),
    /**
     * Longest wait before a C-MOVE while the scanner is seen sending the study (an association from scanner.aeTitle
     * that stored images of it is open): measured from the study's last image. 0: pull at once, never wait.
     */
    settleSeconds: z.number().min(0).default(5),
    /**
     * Once no association of the scanner is storing the study: no C-MOVE until its last image and the scan's last
     * MPPS event are this old (at most settleSeconds).
     */
    quietSeconds: z.number().min(0).default(0.5),
    /** Deadline of one C-FIND (connect, every answer, release). */
    findTimeoutSeconds: z.number().positive().default(30),
    /** Deadline of one C-MOVE. */
    moveTimeoutSeconds: z.number().positive().default(600),
  })
  .prefault({});

const http = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    token: z.string().min(16, 'a token has at least 16 characters').optional(),
    /** Host header names answered besides the loopback names (DNS-rebinding guard; docs/API.md). */
    allowedHosts: z.array(z.string().trim().min(1).max(253)).default([]),
    /** Open /api/events (live status) connections at most; more get 503. */
    maxEventStreams: z.number().int().min(1).max(10000).default(32),
  })
  .prefault({});

const importSection = z
  .strictObject({
    /** Watch dataDir/inbox/ and import what lands there. */
    watchInbox: z.boolean().default(true),
    /** A loose inbox file (or a renamed folder) is taken once it has not changed for this long. */
    stableSeconds: z.number().min(0).default(5),
    /** Full rescan of inbox/ (the safety net beside fs.watch). */
    rescanSeconds: z.number().min(0.05).default(10),
    /** Files of one batch imported in parallel. */
    concurrency: z.number().int().min(1).max(64).default(8),
    /** A batch that failed for a reason that may pass (disk full, database down) is tried again after this... */
    retrySeconds: z.number().min(0.01).default(30),
    /** ...doubling after each attempt up to this... */
    retryMaxSeconds: z.number().min(0.01).default(3600),
    /** ...and failed (waiting for an operator) after this many attempts. */
    maxAttempts: z.number().int().min(1).max(1000).default(10),
  })
  .prefault({});

const archive = z
  .strictObject({
    /**
     * Index the archive (site/raw) at start-up, in the background: 'auto' after a run that did not stop cleanly or
     * when the index is empty while site/raw is not; 'always'; 'never' (then only `scannode reindex` does it).
     */
    reindexOnStart: z.enum(['auto', 'always', 'never']).default('auto'),
  })
  .prefault({});

const spool = z
  .strictObject({
    /** Empty spool files kept ready (created and fsynced in the background); 0: each C-STORE creates its own. */
    poolSize: z.number().int().min(0).max(4096).default(32),
  })
  .prefault({});

const log = z
  .strictObject({
    level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    /** Optional log file (relative to the config file's folder); the console always gets the log too. */
    file: z.string().min(1).optional(),
  })
  .prefault({});

/** Storage Commitment SCP: how often an undelivered N-EVENT-REPORT is tried again, and how many times in all. */
const storageCommitment = z
  .strictObject({
    maxTries: z.number().int().min(1).max(1000).default(10),
    retrySeconds: z.number().int().min(1).max(86_400).default(60),
  })
  .prefault({});

/** Several nodes on one PostgreSQL (issue 16): who this node is, and how fast a dead node's work is taken over. */
const cluster = z
  .strictObject({
    /** This node's name in the cluster, stable across its restarts (default: the host name). */
    nodeId: z
      .string()
      .regex(/^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$/, 'a node id is 1-64 letters, digits, _ . - (not . or ..)')
      .optional(),
    /**
     * The nodes share one dataDir (NFS or another shared filesystem): each node spools under
     * incoming/nodes/<nodeId>/, and a dead node's spool is recovered by the node holding the scheduler lease.
     */
    sharedDataDir: z.boolean().default(false),
    /** How often the node writes its heartbeat and renews its leases. */
    heartbeatSeconds: z.number().positive().max(3600).default(5),
    /** A node silent for this long is dead: another node takes over its leases (the scheduler). */
    leaseSeconds: z.number().positive().max(86_400).default(30),
  })
  .superRefine((c, ctx) => {
    if (c.leaseSeconds < 2 * c.heartbeatSeconds) {
      ctx.addIssue({ code: 'custom', path: ['leaseSeconds'], message: 'at least twice heartbeatSeconds' });
    }
  })
  .prefault({});

const configObject = z.strictObject({
  dicom,
  scanner,
  remotes: z
    .record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a remote name is 1-64 letters, digits, _ . -'), remote)
    .default({}),
  forward: z.array(forwardRule).default([]),
  forwarding,
  cluster,
  dataDir: z.string().min(1).default('../data'),
  database,
  scheduler,
  completion,
  retrieve,
  http,
  import: importSection,
  archive,
  spool,
  log,
  storageCommitment,
});

/** The top-level sections, for environment overrides (SCANNODE_<SECTION>_<KEY>). */
export const configShape = configObject.shape;

type ParsedConfig = z.infer<typeof configObject>;
/** The scanner as the code sees it: always a remote with a name. */
export type ScannerRemote = Remote & { name: string };
export type Config = Omit<ParsedConfig, 'scanner'> & { scanner: ScannerRemote };

/**
 * The whole configuration. `scanner` is resolved to a named remote: a name must exist in `remotes`; today's object
 * becomes the remote "scanner" (it may send to us and we may retrieve from it). Forward rules may only name remotes we
 * may store to.
 */
export const configSchema = configObject
  .superRefine((c, ctx) => {
    const names = Object.keys(c.remotes);
    const known = names.length ? names.join(', ') : 'none';
    if (typeof c.scanner === 'string' && !c.remotes[c.scanner]) {
      ctx.addIssue({
        code: 'custom',
        path: ['scanner'],
        message: `no remote named "${c.scanner}" (remotes: ${known})`,
      });
    }
    if (typeof c.scanner === 'object' && c.remotes.scanner) {
      ctx.addIssue({
        code: 'custom',
        path: ['scanner'],
        message: 'remotes.scanner exists: set "scanner": "scanner" (its name) instead of a second scanner object',
      });
    }
    c.forward.forEach((rule, i) => {
      rule.to.forEach((name, j) => {
        const r = c.remotes[name];
        const path = ['forward', i, 'to', j];
        if (!r) ctx.addIssue({ code: 'custom', path, message: `no remote named "${name}" (remotes: ${known})` });
        else if (!r.roles.store)
          ctx.addIssue({ code: 'custom', path, message: `remote "${name}" does not have roles.store` });
      });
      rule.from?.forEach((name, j) => {
        if (!c.remotes[name] && !(name === 'scanner' && typeof c.scanner !== 'string'))
          ctx.addIssue({ code: 'custom', path: ['forward', i, 'from', j], message: `no remote named "${name}"` });
      });
      if (rule.seriesDescription) {
        try {
          new RegExp(rule.seriesDescription);
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: ['forward', i, 'seriesDescription'], message: (e as Error).message });
        }
      }
    });
  })
  .transform((c): Config => {
    if (typeof c.scanner === 'string') {
      const name = c.scanner;
      return { ...c, scanner: { ...c.remotes[name]!, name } };
    }
    if (c.scanner === undefined && c.remotes.scanner)
      return { ...c, scanner: { ...c.remotes.scanner, name: 'scanner' } };
    const own: Remote = {
      ...(c.scanner ?? scannerObject.parse({})),
      roles: { send: true, retrieve: true, store: false },
      matchAddress: false,
      commitment: false,
    };
    return { ...c, remotes: { scanner: own, ...c.remotes }, scanner: { ...own, name: 'scanner' } };
  });
