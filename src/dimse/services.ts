/**
 * The DIMSE services of the SCP, one function per command (PS3.7 section 9 / 10): C-ECHO, C-STORE (the data set
 * streamed to the StoreSink as it arrives), N-CREATE and N-SET (MPPS, data set bounded by nDataset.ts). A table
 * keyed by Command Field dispatches; N-ACTION (Storage Commitment Push Model; its UIDs and the N-EVENT-REPORT it
 * leads to are in nAction.ts) is answered here too. An exception or rejection from a handler becomes a failure status here, in one place (`toResult`).
 */
import type { Logger } from '../logging/logger.js';
import { DicomStatus, DimseError } from '../domain/status.js';
import { cleanUid } from '../domain/uid.js';
import type { AcceptedContext } from './acse.js';
import type { CommandSet, DatasetSink } from './dimseMessages.js';
import { DatasetCollector, parseNDataset } from './nDataset.js';
import { STORAGE_COMMITMENT_SOP_INSTANCE, eventReportCommand } from './nAction.js';
import type { AssociationInfo, DimseHandlers, DimseResult, NRequest, NResponse, StoreSink } from './types.js';

export const CommandField = {
  CStoreRq: 0x0001,
  CGetRq: 0x0010,
  CFindRq: 0x0020,
  CMoveRq: 0x0021,
  CEchoRq: 0x0030,
  NEventReportRq: 0x0100,
  NGetRq: 0x0110,
  NSetRq: 0x0120,
  NActionRq: 0x0130,
  NCreateRq: 0x0140,
  NDeleteRq: 0x0150,
  CCancelRq: 0x0fff,
  /** A response has this bit set. */
  Response: 0x8000,
} as const;

/** What the association gives a service. */
export interface ServiceHost {
  readonly info: AssociationInfo;
  readonly handlers: DimseHandlers;
  readonly log: Logger;
  /** Sends the response (a command set, and a data set when given) on `context`. */
  respond(context: AcceptedContext, command: CommandSet, dataset?: Record<string, unknown>): void;
  /** Work the release and the idle timer wait for. */
  track(work: Promise<unknown>): void;
  readonly stats: { instances: number; failures: number; bytes: number };
  /** Sends a request on `context` (an N-EVENT-REPORT-RQ): its response's status, undefined if the association ends. */
  request(
    context: AcceptedContext,
    command: CommandSet,
    dataset?: Record<string, unknown>,
  ): Promise<number | undefined>;
}

/** A request: its command set, its presentation context, whether a data set follows. */
export interface Request {
  context: AcceptedContext;
  command: CommandSet;
  hasDataset: boolean;
}

type Service = (host: ServiceHost, rq: Request) => DatasetSink | undefined;

const SERVICES: Readonly<Record<number, Service>> = {
  [CommandField.CEchoRq]: echo,
  [CommandField.CStoreRq]: store,
  [CommandField.NCreateRq]: (host, rq) => nRequest(host, rq, host.handlers.nCreate),
  [CommandField.NSetRq]: (host, rq) => nRequest(host, rq, host.handlers.nSet),
  [CommandField.NActionRq]: nAction,
  [CommandField.NEventReportRq]: nEventReport,
};

/** Runs the service of `rq`; returns the sink of its data set, if one follows. */
export function dispatch(host: ServiceHost, rq: Request): DatasetSink | undefined {
  const field = rq.command.CommandField as number;
  const service = SERVICES[field];
  if (service) return service(host, rq);
  // C-CANCEL has no response; any other request we do not perform is refused (its data set read and dropped).
  if (field !== CommandField.CCancelRq) respond(host, rq, { status: DicomStatus.UnrecognizedOperation });
  return undefined;
}

function respond(host: ServiceHost, rq: Request, result: DimseResult, extra: CommandSet = {}): void {
  const c = rq.command;
  const command: CommandSet = {
    CommandField: (c.CommandField as number) | CommandField.Response,
    MessageIDBeingRespondedTo: c.MessageID ?? 0,
    Status: result.status,
    ...extra,
  };
  const sopClass = c.AffectedSOPClassUID ?? c.RequestedSOPClassUID;
  if (sopClass !== undefined && command.AffectedSOPClassUID === undefined) command.AffectedSOPClassUID = sopClass;
  if (result.comment && result.status !== DicomStatus.Success) command.ErrorComment = result.comment.slice(0, 64);
  host.respond(rq.context, command);
}

/** The command names another SOP class than its presentation context's abstract syntax. */
function wrongSopClass(rq: Request, sopClass: string | undefined): DimseResult | undefined {
  if (sopClass === rq.context.abstractSyntax) return undefined;
  return {
    status: DicomStatus.SopClassNotSupported,
    comment: `SOP class ${sopClass ?? '(none)'} on a ${rq.context.abstractSyntax} context`,
  };
}

function echo(host: ServiceHost, rq: Request): DatasetSink | undefined {
  const wrong = wrongSopClass(rq, cleanUid(rq.command.AffectedSOPClassUID));
  respond(host, rq, wrong ?? { status: DicomStatus.Success });
  return undefined;
}

// --- C-STORE ---------------------------------------------------------------------------------------------------

function store(host: ServiceHost, rq: Request): DatasetSink | undefined {
  const c = rq.command;
  const sopClassUid = cleanUid(c.AffectedSOPClassUID);
  const sopInstanceUid = cleanUid(c.AffectedSOPInstanceUID) ?? '';
  const extra = { AffectedSOPInstanceUID: String(c.AffectedSOPInstanceUID ?? '') };
  const startedAt = performance.now();
  let refused = wrongSopClass(rq, sopClassUid);
  if (!rq.hasDataset) refused ??= { status: DicomStatus.CannotUnderstand, comment: 'a C-STORE without a data set' };
  let sink: StoreSink;
  if (refused) {
    sink = failedSink(refused);
  } else {
    const moveOriginator = c.MoveOriginatorApplicationEntityTitle;
    try {
      sink = host.handlers.openStore({
        association: host.info,
        sopClassUid: sopClassUid ?? '',
        sopInstanceUid,
        transferSyntaxUid: rq.context.transferSyntax,
        moveOriginatorAe: typeof moveOriginator === 'string' ? moveOriginator.trim() || undefined : undefined,
      });
    } catch (err) {
      sink = failedSink(toResult(err, host.log));
    }
  }
  let bytes = 0;
  let broken: DimseResult | undefined;
  const finish = async (): Promise<void> => {
    const result = broken ?? (await sink.finish().catch((err: unknown) => toResult(err, host.log)));
    if (result.status === DicomStatus.Success) host.stats.instances++;
    else host.stats.failures++;
    host.stats.bytes += bytes;
    respond(host, rq, result, extra);
    if (result.after) host.track(result.after);
    try {
      host.handlers.storeCompleted?.({
        association: host.info,
        status: result.status,
        bytes,
        durationMs: performance.now() - startedAt,
      });
    } catch (err) {
      host.log.error('C-STORE completion hook failed', { err: String(err) });
    }
  };
  if (!rq.hasDataset) {
    host.track(finish());
    return undefined;
  }
  return {
    write(piece) {
      bytes += piece.length;
      if (broken) return;
      try {
        sink.write(piece);
      } catch (err) {
        // The sink failed mid-stream: the rest is read and dropped, the status says why.
        broken = toResult(err, host.log);
        safeAbort(sink, 'the store sink failed', host.log);
      }
    },
    end() {
      host.track(finish());
    },
    abort(reason) {
      host.stats.failures++;
      safeAbort(sink, reason, host.log);
    },
  };
}

function failedSink(result: DimseResult): StoreSink {
  return { write: () => undefined, finish: () => Promise.resolve(result), abort: () => undefined };
}

function safeAbort(sink: StoreSink, reason: string, log: Logger): void {
  try {
    sink.abort(reason);
  } catch (err) {
    log.error('store sink abort failed', { err: String(err) });
  }
}

// --- N-CREATE / N-SET ------------------------------------------------------------------------------------------

function nRequest(
  host: ServiceHost,
  rq: Request,
  handler: ((r: NRequest) => Promise<NResponse>) | undefined,
): DatasetSink | undefined {
  const c = rq.command;
  const create = c.CommandField === CommandField.NCreateRq;
  const sopClass = cleanUid(create ? c.AffectedSOPClassUID : c.RequestedSOPClassUID);
  const requested = cleanUid(create ? c.AffectedSOPInstanceUID : c.RequestedSOPInstanceUID);
  const run = async (bytes: Buffer | undefined): Promise<void> => {
    let result: NResponse;
    try {
      const wrong = wrongSopClass(rq, sopClass);
      if (wrong) throw new DimseError(wrong.status, wrong.comment ?? '');
      if (!handler) throw new DimseError(DicomStatus.NoSuchSopClass, 'service not supported');
      let dataset: Record<string, unknown> | undefined;
      if (rq.hasDataset) {
        const parsed = parseNDataset(bytes, rq.context.transferSyntax);
        if (!parsed.ok) throw new DimseError(parsed.result.status, parsed.result.comment ?? '');
        dataset = parsed.dataset;
      }
      result = await handler({
        association: host.info,
        sopClassUid: sopClass ?? '',
        sopInstanceUid: requested,
        dataset,
      });
    } catch (err) {
      result = toResult(err, host.log);
    }
    const extra: CommandSet = { AffectedSOPClassUID: sopClass ?? '' };
    const instance = result.sopInstanceUid ?? requested;
    if (instance) extra.AffectedSOPInstanceUID = instance;
    if (!result.dataset) return respond(host, rq, result, extra);
    const command: CommandSet = {
      CommandField: (c.CommandField as number) | CommandField.Response,
      MessageIDBeingRespondedTo: c.MessageID ?? 0,
      Status: result.status,
      ...extra,
    };
    host.respond(rq.context, command, result.dataset);
  };
  if (!rq.hasDataset) {
    host.track(run(undefined));
    return undefined;
  }
  return new DatasetCollector((bytes) => host.track(run(bytes)));
}

// --- N-ACTION and N-EVENT-REPORT (Storage Commitment Push Model, PS3.4 J) ----------------------------------------

/** Failure: No such action (PS3.7 C.4.2) and No such event type (PS3.7 C.4.1). */
const NO_SUCH_ACTION = 0x0123;
const NO_SUCH_EVENT_TYPE = 0x0113;

/**
 * What N-ACTION and N-EVENT-REPORT of storage commitment share: the command names the well-known SOP instance on a
 * context of its SOP class, a data set follows (read bounded, walked), the handler's status is answered with the
 * command's SOP class, instance and type id (Action Type ID or Event Type ID) echoed.
 */
function commitmentExchange(
  host: ServiceHost,
  rq: Request,
  o: {
    sopClass: string | undefined;
    instance: string | undefined;
    typeField: 'ActionTypeID' | 'EventTypeID';
    handle(dataset: Record<string, unknown>): Promise<NResponse>;
  },
): DatasetSink | undefined {
  const c = rq.command;
  const run = async (bytes: Buffer | undefined): Promise<void> => {
    let result: NResponse;
    try {
      if (o.sopClass !== rq.context.abstractSyntax) {
        throw new DimseError(DicomStatus.SopClassNotSupported, `SOP class ${o.sopClass ?? '(none)'} on this context`);
      }
      if (o.instance !== STORAGE_COMMITMENT_SOP_INSTANCE) {
        throw new DimseError(DicomStatus.NoSuchObjectInstance, `no SOP instance ${o.instance ?? '(none)'}`);
      }
      if (!rq.hasDataset) throw new DimseError(DicomStatus.MissingAttribute, 'a request without a data set');
      const parsed = parseNDataset(bytes, rq.context.transferSyntax);
      if (!parsed.ok) throw new DimseError(parsed.result.status, parsed.result.comment ?? '');
      result = await o.handle(parsed.dataset);
    } catch (err) {
      result = toResult(err, host.log);
    }
    const command: CommandSet = {
      CommandField: (c.CommandField as number) | CommandField.Response,
      MessageIDBeingRespondedTo: c.MessageID ?? 0,
      Status: result.status,
      AffectedSOPClassUID: o.sopClass ?? '',
    };
    if (o.instance) command.AffectedSOPInstanceUID = o.instance;
    if (result.comment && result.status !== DicomStatus.Success) command.ErrorComment = result.comment.slice(0, 64);
    if (typeof c[o.typeField] === 'number') command[o.typeField] = c[o.typeField]!;
    host.respond(rq.context, command);
    if (result.after) host.track(result.after);
  };
  if (!rq.hasDataset) {
    host.track(run(undefined));
    return undefined;
  }
  return new DatasetCollector((bytes) => host.track(run(bytes)));
}

/** N-ACTION: a storage commitment request, handed to `nAction`; the report may follow on this association. */
function nAction(host: ServiceHost, rq: Request): DatasetSink | undefined {
  const c = rq.command;
  const sopClass = cleanUid(c.RequestedSOPClassUID);
  const instance = cleanUid(c.RequestedSOPInstanceUID);
  return commitmentExchange(host, rq, {
    sopClass,
    instance,
    typeField: 'ActionTypeID',
    handle: async (dataset) => {
      const handler = host.handlers.nAction;
      if (!handler) throw new DimseError(DicomStatus.NoSuchSopClass, 'service not supported');
      if (c.ActionTypeID !== 1) throw new DimseError(NO_SUCH_ACTION, `no action type ${String(c.ActionTypeID)}`);
      return handler({
        association: host.info,
        sopClassUid: sopClass!,
        sopInstanceUid: instance,
        actionTypeId: 1,
        dataset,
        reportOnSameAssociation: (eventTypeId, ds) => host.request(rq.context, eventReportCommand(0, eventTypeId), ds),
      });
    },
  });
}

/** N-EVENT-REPORT: the storage commitment result of a request we sent (forwarding), handed to `nEventReport`. */
function nEventReport(host: ServiceHost, rq: Request): DatasetSink | undefined {
  const c = rq.command;
  const sopClass = cleanUid(c.AffectedSOPClassUID);
  const instance = cleanUid(c.AffectedSOPInstanceUID);
  return commitmentExchange(host, rq, {
    sopClass,
    instance,
    typeField: 'EventTypeID',
    handle: async (dataset) => {
      const handler = host.handlers.nEventReport;
      if (!handler) throw new DimseError(DicomStatus.NoSuchSopClass, 'service not supported');
      const eventTypeId = c.EventTypeID;
      if (eventTypeId !== 1 && eventTypeId !== 2) {
        throw new DimseError(NO_SUCH_EVENT_TYPE, `no event type ${String(c.EventTypeID)}`);
      }
      return handler({
        association: host.info,
        sopClassUid: sopClass!,
        sopInstanceUid: instance,
        eventTypeId,
        dataset,
      });
    },
  });
}

/** One place where what a handler threw becomes a status: DimseError keeps its own, anything else is 0x0110. */
export function toResult(err: unknown, log: Logger): DimseResult {
  if (err instanceof DimseError) return { status: err.status, comment: err.message };
  log.error('processing failure', { err: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return { status: DicomStatus.ProcessingFailure, comment: err instanceof Error ? err.message : String(err) };
}
