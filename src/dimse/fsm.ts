/**
 * The DICOM upper layer state machine (PS3.8 section 9.2, table 9-10) as data: state x event -> action, for both
 * roles. Every event has an answer in every state: where the standard's cell is blank, the cell says what we do (an
 * event that cannot happen there is ignored; a local request that makes no sense there is a local error, ignored and
 * logged). The actions themselves are carried out by the upper layer (upperLayer.ts). Pure.
 */

export const STATES = [
  'Sta1', // idle
  'Sta2', // transport connection open, awaiting A-ASSOCIATE-RQ
  'Sta3', // awaiting the local A-ASSOCIATE response
  'Sta4', // awaiting transport connection opening to complete
  'Sta5', // awaiting A-ASSOCIATE-AC or -RJ
  'Sta6', // association established, ready for data transfer
  'Sta7', // awaiting A-RELEASE-RP
  'Sta8', // awaiting the local A-RELEASE response
  'Sta9', // release collision, requestor: awaiting the local A-RELEASE response
  'Sta10', // release collision, acceptor: awaiting A-RELEASE-RP
  'Sta11', // release collision, requestor: awaiting A-RELEASE-RP
  'Sta12', // release collision, acceptor: awaiting the local A-RELEASE response
  'Sta13', // awaiting transport connection close
] as const;
export type State = (typeof STATES)[number];

export const EVENTS = {
  Evt1: 'A-ASSOCIATE request (local)',
  Evt2: 'transport connect confirmation',
  Evt3: 'A-ASSOCIATE-AC PDU received',
  Evt4: 'A-ASSOCIATE-RJ PDU received',
  Evt5: 'transport connection indication',
  Evt6: 'A-ASSOCIATE-RQ PDU received',
  Evt7: 'A-ASSOCIATE response (accept, local)',
  Evt8: 'A-ASSOCIATE response (reject, local)',
  Evt9: 'P-DATA request (local)',
  Evt10: 'P-DATA-TF PDU received',
  Evt11: 'A-RELEASE request (local)',
  Evt12: 'A-RELEASE-RQ PDU received',
  Evt13: 'A-RELEASE-RP PDU received',
  Evt14: 'A-RELEASE response (local)',
  Evt15: 'A-ABORT request (local)',
  Evt16: 'A-ABORT PDU received',
  Evt17: 'transport connection closed',
  Evt18: 'ARTIM timer expired',
  Evt19: 'unrecognized or invalid PDU received',
} as const;
export type Event = keyof typeof EVENTS;
export const EVENT_NAMES = Object.keys(EVENTS) as Event[];

export const ACTIONS = {
  'AE-1': 'issue a transport connect request',
  'AE-2': 'send A-ASSOCIATE-RQ',
  'AE-3': 'issue A-ASSOCIATE confirmation (accept)',
  'AE-4': 'issue A-ASSOCIATE confirmation (reject), close the transport',
  'AE-5': 'accept the transport connection, start ARTIM',
  'AE-6': 'stop ARTIM, issue A-ASSOCIATE indication (or send A-ASSOCIATE-RJ and start ARTIM)',
  'AE-7': 'send A-ASSOCIATE-AC',
  'AE-8': 'send A-ASSOCIATE-RJ, start ARTIM',
  'DT-1': 'send P-DATA-TF',
  'DT-2': 'issue P-DATA indication',
  'AR-1': 'send A-RELEASE-RQ',
  'AR-2': 'issue A-RELEASE indication',
  'AR-3': 'issue A-RELEASE confirmation, close the transport',
  'AR-4': 'send A-RELEASE-RP, start ARTIM',
  'AR-5': 'stop ARTIM',
  'AR-6': 'issue P-DATA indication',
  'AR-7': 'send P-DATA-TF',
  'AR-8': 'issue A-RELEASE indication (release collision)',
  'AR-9': 'send A-RELEASE-RP',
  'AR-10': 'issue A-RELEASE confirmation',
  'AA-1': 'send A-ABORT (service-user), start or restart ARTIM',
  'AA-2': 'stop ARTIM, close the transport',
  'AA-3': 'issue A-ABORT / A-P-ABORT indication, close the transport',
  'AA-4': 'issue A-P-ABORT indication',
  'AA-5': 'stop ARTIM',
  'AA-6': 'ignore the PDU',
  'AA-7': 'send A-ABORT',
  'AA-8': 'send A-ABORT (service-provider), issue A-P-ABORT indication, start ARTIM',
  /** A blank cell for an event that cannot occur in that state (no connection, no timer running): nothing to do. */
  ignore: 'nothing (the event cannot occur in this state)',
  /** A blank cell for a local request that makes no sense in that state: logged, the state is kept. */
  'local-error': 'refuse the local request (logged), keep the state',
} as const;
export type Action = keyof typeof ACTIONS;

/** The states an action may lead to (AE-6 and AR-8 choose; `ignore` and `local-error` keep the state). */
export const NEXT_STATES: Readonly<Record<Action, readonly State[] | 'same'>> = {
  'AE-1': ['Sta4'],
  'AE-2': ['Sta5'],
  'AE-3': ['Sta6'],
  'AE-4': ['Sta1'],
  'AE-5': ['Sta2'],
  'AE-6': ['Sta3', 'Sta13'],
  'AE-7': ['Sta6'],
  'AE-8': ['Sta13'],
  'DT-1': ['Sta6'],
  'DT-2': ['Sta6'],
  'AR-1': ['Sta7'],
  'AR-2': ['Sta8'],
  'AR-3': ['Sta1'],
  'AR-4': ['Sta13'],
  'AR-5': ['Sta1'],
  'AR-6': ['Sta7'],
  'AR-7': ['Sta8'],
  'AR-8': ['Sta9', 'Sta10'],
  'AR-9': ['Sta11'],
  'AR-10': ['Sta12'],
  'AA-1': ['Sta13'],
  'AA-2': ['Sta1'],
  'AA-3': ['Sta1'],
  'AA-4': ['Sta1'],
  'AA-5': ['Sta1'],
  'AA-6': ['Sta13'],
  'AA-7': ['Sta13'],
  'AA-8': ['Sta13'],
  ignore: 'same',
  'local-error': 'same',
};

// Table 9-10, one row per event, columns Sta1..Sta13. '.' is a blank cell of the standard, filled in below.
const ROWS: Record<Event, string> = {
  Evt1: 'AE-1 . . . . . . . . . . . .',
  Evt2: '. . . AE-2 . . . . . . . . .',
  Evt3: '. AA-1 AA-8 . AE-3 AA-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-6',
  Evt4: '. AA-1 AA-8 . AE-4 AA-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-6',
  Evt5: 'AE-5 . . . . . . . . . . . .',
  Evt6: '. AE-6 AA-8 . AA-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-7',
  Evt7: '. . AE-7 . . . . . . . . . .',
  Evt8: '. . AE-8 . . . . . . . . . .',
  Evt9: '. . . . . DT-1 . AR-7 . . . . .',
  Evt10: '. AA-1 AA-8 . AA-8 DT-2 AR-6 AA-8 AA-8 AA-8 AA-8 AA-8 AA-6',
  Evt11: '. . . . . AR-1 . . . . . . .',
  Evt12: '. AA-1 AA-8 . AA-8 AR-2 AR-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-6',
  Evt13: '. AA-1 AA-8 . AA-8 AA-8 AR-3 AA-8 AA-8 AR-10 AR-3 AA-8 AA-6',
  Evt14: '. . . . . . . AR-4 AR-9 . . AR-4 .',
  Evt15: '. . AA-1 AA-2 AA-1 AA-1 AA-1 AA-1 AA-1 AA-1 AA-1 AA-1 .',
  Evt16: '. AA-2 AA-3 . AA-3 AA-3 AA-3 AA-3 AA-3 AA-3 AA-3 AA-3 AA-2',
  Evt17: '. AA-5 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AR-5',
  Evt18: '. AA-2 . . . . . . . . . . AA-2',
  Evt19: '. AA-1 AA-8 . AA-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-8 AA-7',
};

/** Local requests (the service user's primitives); a blank cell for one of them is a local error. */
const LOCAL_EVENTS: ReadonlySet<Event> = new Set(['Evt1', 'Evt7', 'Evt8', 'Evt9', 'Evt11', 'Evt14', 'Evt15']);

/**
 * Our fillings of blank cells that are neither `ignore` nor `local-error`: closing a connection that has not sent its
 * A-ASSOCIATE-RQ yet (shutdown, or making room for another connection) is AA-2, as the ARTIM expiry there is.
 */
const FILLED: Partial<Record<State, Partial<Record<Event, Action>>>> = {
  Sta2: { Evt15: 'AA-2' },
};

function build(): Readonly<Record<State, Readonly<Record<Event, Action>>>> {
  const table = {} as Record<State, Record<Event, Action>>;
  for (const state of STATES) table[state] = {} as Record<Event, Action>;
  for (const event of EVENT_NAMES) {
    const cells = ROWS[event].split(' ');
    if (cells.length !== STATES.length) throw new Error(`fsm: row ${event} has ${cells.length} cells`);
    cells.forEach((cell, i) => {
      const state = STATES[i]!;
      const filled = FILLED[state]?.[event];
      table[state][event] =
        cell !== '.' ? (cell as Action) : (filled ?? (LOCAL_EVENTS.has(event) ? 'local-error' : 'ignore'));
    });
  }
  return table;
}

/** TRANSITIONS[state][event]: the action PS3.8 prescribes (or our filling of its blank cell). */
export const TRANSITIONS = build();
