// PS3.8 §9.2.3, Table 9-10 "DICOM Upper Layer Protocol State Transition Table": for each state, the
// action each event triggers. A cell left out here is empty in the standard (see `step`).
import type { Action } from './actions.ts';
import type { Event, State } from './states.ts';

/**
 * PS3.8 Table 9-10, one entry per non-empty cell (123 of 13 x 19), by state. Checked cell by cell
 * against the standard and against two independent implementations (pynetdicom `TRANSITION_TABLE`,
 * DCMTK `dulfsm.cc` `StateTable`); DCMTK's non-standard ARTIM cells (Evt18 in Sta5, Sta7) are not
 * taken.
 */
export const TRANSITIONS = {
  // No association
  Sta1: { Evt1: 'AE-1', Evt5: 'AE-5' },

  // Association establishment
  Sta2: {
    Evt3: 'AA-1',
    Evt4: 'AA-1',
    Evt6: 'AE-6',
    Evt10: 'AA-1',
    Evt12: 'AA-1',
    Evt13: 'AA-1',
    Evt16: 'AA-2',
    Evt17: 'AA-5',
    Evt18: 'AA-2',
    Evt19: 'AA-1',
  },
  Sta3: {
    Evt3: 'AA-8',
    Evt4: 'AA-8',
    Evt6: 'AA-8',
    Evt7: 'AE-7',
    Evt8: 'AE-8',
    Evt10: 'AA-8',
    Evt12: 'AA-8',
    Evt13: 'AA-8',
    Evt15: 'AA-1',
    Evt16: 'AA-3',
    Evt17: 'AA-4',
    Evt19: 'AA-8',
  },
  Sta4: { Evt2: 'AE-2', Evt15: 'AA-2', Evt17: 'AA-4' },
  Sta5: {
    Evt3: 'AE-3',
    Evt4: 'AE-4',
    Evt6: 'AA-8',
    Evt10: 'AA-8',
    Evt12: 'AA-8',
    Evt13: 'AA-8',
    Evt15: 'AA-1',
    Evt16: 'AA-3',
    Evt17: 'AA-4',
    Evt19: 'AA-8',
  },

  // Data transfer
  Sta6: {
    Evt3: 'AA-8',
    Evt4: 'AA-8',
    Evt6: 'AA-8',
    Evt9: 'DT-1',
    Evt10: 'DT-2',
    Evt11: 'AR-1',
    Evt12: 'AR-2',
    Evt13: 'AA-8',
    Evt15: 'AA-1',
    Evt16: 'AA-3',
    Evt17: 'AA-4',
    Evt19: 'AA-8',
  },

  // Association release (normal and collision)
  Sta7: {
    Evt3: 'AA-8',
    Evt4: 'AA-8',
    Evt6: 'AA-8',
    Evt10: 'AR-6',
    Evt12: 'AR-8',
    Evt13: 'AR-3',
    Evt15: 'AA-1',
    Evt16: 'AA-3',
    Evt17: 'AA-4',
    Evt19: 'AA-8',
  },
  Sta8: {
    Evt3: 'AA-8',
    Evt4: 'AA-8',
    Evt6: 'AA-8',
    Evt9: 'AR-7',
    Evt10: 'AA-8',
    Evt12: 'AA-8',
    Evt13: 'AA-8',
    Evt14: 'AR-4',
    Evt15: 'AA-1',
    Evt16: 'AA-3',
    Evt17: 'AA-4',
    Evt19: 'AA-8',
  },
  Sta9: {
    Evt3: 'AA-8',
    Evt4: 'AA-8',
    Evt6: 'AA-8',
    Evt10: 'AA-8',
    Evt12: 'AA-8',
    Evt13: 'AA-8',
    Evt14: 'AR-9',
    Evt15: 'AA-1',
    Evt16: 'AA-3',
    Evt17: 'AA-4',
    Evt19: 'AA-8',
  },
  Sta10: {
    Evt3: 'AA-8',
    Evt4: 'AA-8',
    Evt6: 'AA-8',
    Evt10: 'AA-8',
    Evt12: 'AA-8',
    Evt13: 'AR-10',
    Evt15: 'AA-1',
    Evt16: 'AA-3',
    Evt17: 'AA-4',
    Evt19: 'AA-8',
  },
  Sta11: {
    Evt3: 'AA-8',
    Evt4: 'AA-8',
    Evt6: 'AA-8',
    Evt10: 'AA-8',
    Evt12: 'AA-8',
    Evt13: 'AR-3',
    Evt15: 'AA-1',
    Evt16: 'AA-3',
    Evt17: 'AA-4',
    Evt19: 'AA-8',
  },
  Sta12: {
    Evt3: 'AA-8',
    Evt4: 'AA-8',
    Evt6: 'AA-8',
    Evt10: 'AA-8',
    Evt12: 'AA-8',
    Evt13: 'AA-8',
    Evt14: 'AR-4',
    Evt15: 'AA-1',
    Evt16: 'AA-3',
    Evt17: 'AA-4',
    Evt19: 'AA-8',
  },

  // Waiting for transport connection close
  Sta13: {
    Evt3: 'AA-6',
    Evt4: 'AA-6',
    Evt6: 'AA-7',
    Evt10: 'AA-6',
    Evt12: 'AA-6',
    Evt13: 'AA-6',
    Evt16: 'AA-2',
    Evt17: 'AR-5',
    Evt18: 'AA-2',
    Evt19: 'AA-7',
  },
} as const satisfies Record<State, Partial<Record<Event, Action>>>;

/** The action of a (state, event) cell of Table 9-10, or `undefined` for an empty cell. */
export function transition(state: State, event: Event): Action | undefined {
  const row: Partial<Record<Event, Action>> = TRANSITIONS[state];
  return row[event];
}
