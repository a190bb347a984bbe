// PS3.8 §9.2.1: the states of the DICOM Upper Layer protocol machine (Tables 9-1 to 9-5) and the
// events that drive it (the rows of Table 9-10).

/** Every state, in the standard's order. */
export const STATE_IDS = [
  'Sta1',
  'Sta2',
  'Sta3',
  'Sta4',
  'Sta5',
  'Sta6',
  'Sta7',
  'Sta8',
  'Sta9',
  'Sta10',
  'Sta11',
  'Sta12',
  'Sta13',
] as const;

/** A state of the Upper Layer protocol machine, `Sta1` (Idle) to `Sta13`. PS3.8 §9.2.1. */
export type State = (typeof STATE_IDS)[number];

/** The standard's definition of each state (PS3.8 Tables 9-1 to 9-5). */
export const STATES: Readonly<Record<State, string>> = {
  // Table 9-1. No Association
  Sta1: 'Idle',
  // Table 9-2. Association Establishment
  Sta2: 'Transport connection open (Awaiting A-ASSOCIATE-RQ PDU)',
  Sta3: 'Awaiting local A-ASSOCIATE response primitive (from local user)',
  Sta4: 'Awaiting transport connection opening to complete (from local transport service)',
  Sta5: 'Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU',
  // Table 9-3. Data Transfer
  Sta6: 'Association established and ready for data transfer',
  // Table 9-4. Association Release
  Sta7: 'Awaiting A-RELEASE-RP PDU',
  Sta8: 'Awaiting local A-RELEASE response primitive (from local user)',
  Sta9: 'Release collision requestor side; awaiting A-RELEASE response (from local user)',
  Sta10: 'Release collision acceptor side; awaiting A-RELEASE-RP PDU',
  Sta11: 'Release collision requestor side; awaiting A-RELEASE-RP PDU',
  Sta12: 'Release collision acceptor side; awaiting A-RELEASE response primitive (from local user)',
  // Table 9-5. Waiting for Transport Connection Close
  Sta13: 'Awaiting Transport Connection Close Indication (Association no longer exists)',
};

/** Every event, in the standard's order. */
export const EVENT_IDS = [
  'Evt1',
  'Evt2',
  'Evt3',
  'Evt4',
  'Evt5',
  'Evt6',
  'Evt7',
  'Evt8',
  'Evt9',
  'Evt10',
  'Evt11',
  'Evt12',
  'Evt13',
  'Evt14',
  'Evt15',
  'Evt16',
  'Evt17',
  'Evt18',
  'Evt19',
] as const;

/**
 * An event of the Upper Layer protocol machine, `Evt1` to `Evt19` (the rows of PS3.8 Table 9-10).
 * Local user primitives (Evt1, Evt7-Evt9, Evt11, Evt14, Evt15), local transport service and timer
 * indications (Evt2, Evt5, Evt17, Evt18) and PDUs received from the peer (Evt3, Evt4, Evt6, Evt10,
 * Evt12, Evt13, Evt16, Evt19).
 */
export type Event = (typeof EVENT_IDS)[number];

/** The standard's name of each event (PS3.8 Table 9-10). */
export const EVENTS: Readonly<Record<Event, string>> = {
  Evt1: 'A-ASSOCIATE Request (local user)',
  Evt2: 'Transport Connect Confirm (local transport service)',
  Evt3: 'A-ASSOCIATE-AC PDU (received on transport connection)',
  Evt4: 'A-ASSOCIATE-RJ PDU (received on transport connection)',
  Evt5: 'Transport Connection Indication (local transport service)',
  Evt6: 'A-ASSOCIATE-RQ PDU (received on transport connection)',
  Evt7: 'A-ASSOCIATE response primitive (accept)',
  Evt8: 'A-ASSOCIATE response primitive (reject)',
  Evt9: 'P-DATA request primitive',
  Evt10: 'P-DATA-TF PDU',
  Evt11: 'A-RELEASE Request primitive',
  Evt12: 'A-RELEASE-RQ PDU (received on open transport connection)',
  Evt13: 'A-RELEASE-RP PDU (received on transport connection)',
  Evt14: 'A-RELEASE response primitive',
  Evt15: 'A-ABORT Request primitive',
  Evt16: 'A-ABORT PDU (received on open transport connection)',
  Evt17: 'Transport connection closed indication (local transport service)',
  Evt18: 'ARTIM timer expired (Association reject/release timer)',
  Evt19: 'Unrecognized or invalid PDU received',
};

/** Where an event comes from: the local service-user, the local transport service, the peer (a PDU), or the ARTIM timer. */
export type EventOrigin = 'user' | 'transport' | 'pdu' | 'timer';

/**
 * The origin of each event. An empty cell of Table 9-10 is only ever met by a `user`, `transport` or
 * `timer` event, or by a PDU while no transport connection is open (Sta1, Sta4): every PDU received on
 * an open connection has an entry.
 */
export const EVENT_ORIGIN: Readonly<Record<Event, EventOrigin>> = {
  Evt1: 'user',
  Evt2: 'transport',
  Evt3: 'pdu',
  Evt4: 'pdu',
  Evt5: 'transport',
  Evt6: 'pdu',
  Evt7: 'user',
  Evt8: 'user',
  Evt9: 'user',
  Evt10: 'pdu',
  Evt11: 'user',
  Evt12: 'pdu',
  Evt13: 'pdu',
  Evt14: 'user',
  Evt15: 'user',
  Evt16: 'pdu',
  Evt17: 'transport',
  Evt18: 'timer',
  Evt19: 'pdu',
};
