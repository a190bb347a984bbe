import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ACTION_IDS,
  ACTIONS,
  type Action,
  type Effect,
  EVENT_IDS,
  EVENT_ORIGIN,
  EVENTS,
  type Event,
  FsmError,
  type Pdu,
  type Primitive,
  STATE_IDS,
  STATES,
  type State,
  type StepContext,
  step,
  TRANSITIONS,
} from './index.ts';

// PS3.8 Table 9-10, transcribed again as the standard prints it: one row per event, one column per
// state, '' for an empty cell. Independent of TRANSITIONS (which is written by state).
// biome-ignore format: the grid is aligned like the standard's table
const GRID: readonly (readonly string[])[] = [
  //       Sta1    Sta2    Sta3    Sta4    Sta5    Sta6    Sta7    Sta8    Sta9    Sta10    Sta11   Sta12   Sta13
  /*  1 */ ['AE-1', '',     '',     '',     '',     '',     '',     '',     '',     '',      '',     '',     ''    ],
  /*  2 */ ['',     '',     '',     'AE-2', '',     '',     '',     '',     '',     '',      '',     '',     ''    ],
  /*  3 */ ['',     'AA-1', 'AA-8', '',     'AE-3', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8',  'AA-8', 'AA-8', 'AA-6'],
  /*  4 */ ['',     'AA-1', 'AA-8', '',     'AE-4', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8',  'AA-8', 'AA-8', 'AA-6'],
  /*  5 */ ['AE-5', '',     '',     '',     '',     '',     '',     '',     '',     '',      '',     '',     ''    ],
  /*  6 */ ['',     'AE-6', 'AA-8', '',     'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8',  'AA-8', 'AA-8', 'AA-7'],
  /*  7 */ ['',     '',     'AE-7', '',     '',     '',     '',     '',     '',     '',      '',     '',     ''    ],
  /*  8 */ ['',     '',     'AE-8', '',     '',     '',     '',     '',     '',     '',      '',     '',     ''    ],
  /*  9 */ ['',     '',     '',     '',     '',     'DT-1', '',     'AR-7', '',     '',      '',     '',     ''    ],
  /* 10 */ ['',     'AA-1', 'AA-8', '',     'AA-8', 'DT-2', 'AR-6', 'AA-8', 'AA-8', 'AA-8',  'AA-8', 'AA-8', 'AA-6'],
  /* 11 */ ['',     '',     '',     '',     '',     'AR-1', '',     '',     '',     '',      '',     '',     ''    ],
  /* 12 */ ['',     'AA-1', 'AA-8', '',     'AA-8', 'AR-2', 'AR-8', 'AA-8', 'AA-8', 'AA-8',  'AA-8', 'AA-8', 'AA-6'],
  /* 13 */ ['',     'AA-1', 'AA-8', '',     'AA-8', 'AA-8', 'AR-3', 'AA-8', 'AA-8', 'AR-10', 'AR-3', 'AA-8', 'AA-6'],
  /* 14 */ ['',     '',     '',     '',     '',     '',     '',     'AR-4', 'AR-9', '',      '',     'AR-4', ''    ],
  /* 15 */ ['',     '',     'AA-1', 'AA-2', 'AA-1', 'AA-1', 'AA-1', 'AA-1', 'AA-1', 'AA-1',  'AA-1', 'AA-1', ''    ],
  /* 16 */ ['',     'AA-2', 'AA-3', '',     'AA-3', 'AA-3', 'AA-3', 'AA-3', 'AA-3', 'AA-3',  'AA-3', 'AA-3', 'AA-2'],
  /* 17 */ ['',     'AA-5', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AA-4',  'AA-4', 'AA-4', 'AR-5'],
  /* 18 */ ['',     'AA-2', '',     '',     '',     '',     '',     '',     '',     '',      '',     '',     'AA-2'],
  /* 19 */ ['',     'AA-1', 'AA-8', '',     'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8',  'AA-8', 'AA-8', 'AA-7'],
];

// Next state of each action (PS3.8 Tables 9-6 to 9-9): [with a "yes" context, with a "no" context].
// Only AE-6 (acceptable?) and AR-8 (association-requestor?) differ.
const NEXT: Readonly<Record<string, readonly [State, State]>> = {
  'AE-1': ['Sta4', 'Sta4'],
  'AE-2': ['Sta5', 'Sta5'],
  'AE-3': ['Sta6', 'Sta6'],
  'AE-4': ['Sta1', 'Sta1'],
  'AE-5': ['Sta2', 'Sta2'],
  'AE-6': ['Sta3', 'Sta13'],
  'AE-7': ['Sta6', 'Sta6'],
  'AE-8': ['Sta13', 'Sta13'],
  'DT-1': ['Sta6', 'Sta6'],
  'DT-2': ['Sta6', 'Sta6'],
  'AR-1': ['Sta7', 'Sta7'],
  'AR-2': ['Sta8', 'Sta8'],
  'AR-3': ['Sta1', 'Sta1'],
  'AR-4': ['Sta13', 'Sta13'],
  'AR-5': ['Sta1', 'Sta1'],
  'AR-6': ['Sta7', 'Sta7'],
  'AR-7': ['Sta8', 'Sta8'],
  'AR-8': ['Sta9', 'Sta10'],
  'AR-9': ['Sta11', 'Sta11'],
  'AR-10': ['Sta12', 'Sta12'],
  'AA-1': ['Sta13', 'Sta13'],
  'AA-2': ['Sta1', 'Sta1'],
  'AA-3': ['Sta1', 'Sta1'],
  'AA-4': ['Sta1', 'Sta1'],
  'AA-5': ['Sta1', 'Sta1'],
  'AA-6': ['Sta13', 'Sta13'],
  'AA-7': ['Sta13', 'Sta13'],
  'AA-8': ['Sta13', 'Sta13'],
};

const YES: StepContext = { acceptable: true, isRequestor: true, abortSource: 0 };
const NO: StepContext = { acceptable: false, isRequestor: false, abortSource: 2 };

function cell(state: State, event: Event): string {
  return GRID[EVENT_IDS.indexOf(event)]![STATE_IDS.indexOf(state)]!;
}

function isFsmError(code: FsmError['code'], state: State, event: Event) {
  return (err: unknown) => {
    assert.ok(err instanceof FsmError, `${state} + ${event}: expected an FsmError, got ${String(err)}`);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'FsmError');
    assert.equal(err.code, code);
    assert.equal(err.state, state);
    assert.equal(err.event, event);
    return true;
  };
}

describe('PS3.8 Table 9-10, every (state, event) cell', () => {
  test('the grid is 19 events x 13 states', () => {
    assert.equal(GRID.length, 19);
    for (const row of GRID) assert.equal(row.length, 13);
  });

  for (const state of STATE_IDS) {
    test(`${state} (${STATES[state]})`, () => {
      for (const event of EVENT_IDS) {
        const expected = cell(state, event);
        const where = `${state} + ${event}`;
        if (expected === '') {
          assert.throws(() => step(state, event, YES), isFsmError('ERR_UL_FSM_INVALID_EVENT', state, event));
          assert.equal((TRANSITIONS[state] as Partial<Record<Event, Action>>)[event], undefined, where);
          continue;
        }
        const [ifYes, ifNo] = NEXT[expected]!;
        const yes = step(state, event, YES);
        assert.equal(yes.action, expected, `${where}: action`);
        assert.equal(yes.next, ifYes, `${where}: next state`);
        const no = step(state, event, NO);
        assert.equal(no.action, expected, `${where}: action`);
        assert.equal(no.next, ifNo, `${where}: next state (other branch)`);
      }
    });
  }

  test('123 cells have an action, 124 are empty', () => {
    const filled = GRID.flat().filter((c) => c !== '').length;
    assert.equal(filled, 123);
    const inTable = STATE_IDS.reduce((n, s) => n + Object.keys(TRANSITIONS[s]).length, 0);
    assert.equal(inTable, 123);
  });

  test('every action of §9.2.2 appears in the table, and nothing else does', () => {
    const used = new Set(GRID.flat().filter((c) => c !== ''));
    assert.deepEqual([...used].sort(), [...ACTION_IDS].sort());
    assert.deepEqual(Object.keys(ACTIONS).sort(), [...ACTION_IDS].sort());
  });

  test('an empty cell is never a PDU received on an open transport connection', () => {
    for (const state of STATE_IDS) {
      if (state === 'Sta1' || state === 'Sta4') continue; // no open transport connection yet
      for (const event of EVENT_IDS) {
        if (EVENT_ORIGIN[event] === 'pdu') assert.notEqual(cell(state, event), '', `${state} + ${event}`);
      }
    }
  });

  test("each action's declared next states are the ones it reaches", () => {
    for (const action of ACTION_IDS) {
      assert.deepEqual([...new Set(ACTIONS[action].next)].sort(), [...new Set(NEXT[action])].sort(), action);
    }
  });
});

describe('states and events', () => {
  test('13 states and 19 events, each described', () => {
    assert.equal(STATE_IDS.length, 13);
    assert.equal(EVENT_IDS.length, 19);
    assert.deepEqual(Object.keys(STATES), [...STATE_IDS]);
    assert.deepEqual(Object.keys(EVENTS), [...EVENT_IDS]);
    assert.deepEqual(Object.keys(EVENT_ORIGIN), [...EVENT_IDS]);
  });

  test("the standard's wording", () => {
    assert.equal(STATES.Sta1, 'Idle');
    assert.equal(STATES.Sta6, 'Association established and ready for data transfer');
    assert.equal(
      STATES.Sta13,
      'Awaiting Transport Connection Close Indication (Association no longer exists)',
    );
    assert.equal(EVENTS.Evt1, 'A-ASSOCIATE Request (local user)');
    assert.equal(EVENTS.Evt3, 'A-ASSOCIATE-AC PDU (received on transport connection)');
    assert.equal(EVENTS.Evt17, 'Transport connection closed indication (local transport service)');
    assert.equal(EVENTS.Evt18, 'ARTIM timer expired (Association reject/release timer)');
    assert.equal(EVENTS.Evt19, 'Unrecognized or invalid PDU received');
  });
});

// The effects of each action, written out from Tables 9-6 to 9-9.
const CONNECT: Effect = { kind: 'connect' };
const CONNECT_RESPONSE: Effect = { kind: 'connect-response' };
const START: Effect = { kind: 'start-artim' };
const STOP: Effect = { kind: 'stop-artim' };
const CLOSE: Effect = { kind: 'close' };
const send = (pdu: Exclude<Pdu, 'A-ABORT'>): Effect => ({ kind: 'send', pdu });
const indicate = (primitive: Primitive): Effect => ({ kind: 'indicate', primitive });

/** A (state, event) where the action is triggered, for actions whose effects do not depend on the context. */
const FIXED: readonly [Action, State, Event, readonly Effect[]][] = [
  ['AE-1', 'Sta1', 'Evt1', [CONNECT]],
  ['AE-2', 'Sta4', 'Evt2', [send('A-ASSOCIATE-RQ')]],
  ['AE-3', 'Sta5', 'Evt3', [indicate('A-ASSOCIATE confirmation (accept)')]],
  ['AE-4', 'Sta5', 'Evt4', [indicate('A-ASSOCIATE confirmation (reject)'), CLOSE]],
  ['AE-5', 'Sta1', 'Evt5', [CONNECT_RESPONSE, START]],
  ['AE-7', 'Sta3', 'Evt7', [send('A-ASSOCIATE-AC')]],
  ['AE-8', 'Sta3', 'Evt8', [send('A-ASSOCIATE-RJ'), START]],
  ['DT-1', 'Sta6', 'Evt9', [send('P-DATA-TF')]],
  ['DT-2', 'Sta6', 'Evt10', [indicate('P-DATA indication')]],
  ['AR-1', 'Sta6', 'Evt11', [send('A-RELEASE-RQ')]],
  ['AR-2', 'Sta6', 'Evt12', [indicate('A-RELEASE indication')]],
  ['AR-3', 'Sta7', 'Evt13', [indicate('A-RELEASE confirmation'), CLOSE]],
  ['AR-3', 'Sta11', 'Evt13', [indicate('A-RELEASE confirmation'), CLOSE]],
  ['AR-4', 'Sta8', 'Evt14', [send('A-RELEASE-RP'), START]],
  ['AR-4', 'Sta12', 'Evt14', [send('A-RELEASE-RP'), START]],
  ['AR-5', 'Sta13', 'Evt17', [STOP]],
  ['AR-6', 'Sta7', 'Evt10', [indicate('P-DATA indication')]],
  ['AR-7', 'Sta8', 'Evt9', [send('P-DATA-TF')]],
  ['AR-9', 'Sta9', 'Evt14', [send('A-RELEASE-RP')]],
  ['AR-10', 'Sta10', 'Evt13', [indicate('A-RELEASE confirmation')]],
  ['AA-1', 'Sta6', 'Evt15', [{ kind: 'send', pdu: 'A-ABORT', source: 0, reason: 0 }, START]],
  ['AA-1', 'Sta2', 'Evt19', [{ kind: 'send', pdu: 'A-ABORT', source: 0, reason: 0 }, START]],
  ['AA-2', 'Sta2', 'Evt18', [STOP, CLOSE]],
  ['AA-2', 'Sta4', 'Evt15', [STOP, CLOSE]],
  ['AA-2', 'Sta13', 'Evt16', [STOP, CLOSE]],
  ['AA-4', 'Sta6', 'Evt17', [indicate('A-P-ABORT indication')]],
  ['AA-5', 'Sta2', 'Evt17', [STOP]],
  ['AA-6', 'Sta13', 'Evt10', []],
];

describe('the effects of each action (PS3.8 Tables 9-6 to 9-9)', () => {
  for (const [action, state, event, effects] of FIXED) {
    test(`${action} (${state} + ${event}): ${ACTIONS[action].definition}`, () => {
      const r = step(state, event);
      assert.equal(r.action, action);
      assert.deepEqual(r.effects, effects);
    });
  }

  test('AE-2 sends the A-ASSOCIATE-RQ and starts no timer', () => {
    const { effects } = step('Sta4', 'Evt2');
    assert.ok(!effects.some((e) => e.kind === 'start-artim' || e.kind === 'stop-artim'));
  });

  test('AE-6, A-ASSOCIATE-RQ acceptable: stop ARTIM, A-ASSOCIATE indication, Sta3', () => {
    assert.deepEqual(step('Sta2', 'Evt6', { acceptable: true }), {
      action: 'AE-6',
      next: 'Sta3',
      effects: [STOP, indicate('A-ASSOCIATE indication')],
    });
  });

  test('AE-6, not acceptable: stop ARTIM, send A-ASSOCIATE-RJ, start ARTIM, Sta13', () => {
    assert.deepEqual(step('Sta2', 'Evt6', { acceptable: false }), {
      action: 'AE-6',
      next: 'Sta13',
      effects: [STOP, send('A-ASSOCIATE-RJ'), START],
    });
  });

  test('AR-8 release collision: requestor to Sta9, acceptor to Sta10', () => {
    const collision = [indicate('A-RELEASE indication (collision)')];
    assert.deepEqual(step('Sta7', 'Evt12', { isRequestor: true }), {
      action: 'AR-8',
      next: 'Sta9',
      effects: collision,
    });
    assert.deepEqual(step('Sta7', 'Evt12', { isRequestor: false }), {
      action: 'AR-8',
      next: 'Sta10',
      effects: collision,
    });
  });

  test('AA-3: a service-user abort is an A-ABORT indication, any other an A-P-ABORT indication', () => {
    assert.deepEqual(step('Sta6', 'Evt16', { abortSource: 0 }), {
      action: 'AA-3',
      next: 'Sta1',
      effects: [indicate('A-ABORT indication'), CLOSE],
    });
    for (const abortSource of [2, 1]) {
      assert.deepEqual(step('Sta6', 'Evt16', { abortSource }), {
        action: 'AA-3',
        next: 'Sta1',
        effects: [indicate('A-P-ABORT indication'), CLOSE],
      });
    }
  });

  test('AA-8: A-ABORT with service-provider source, A-P-ABORT indication, start ARTIM, Sta13', () => {
    const abort = (reason: number) => ({ kind: 'send', pdu: 'A-ABORT', source: 2, reason });
    const effects = (reason: number) => [abort(reason), indicate('A-P-ABORT indication'), START];
    // A well-formed PDU in the wrong state: unexpected-PDU.
    assert.deepEqual(step('Sta6', 'Evt3'), { action: 'AA-8', next: 'Sta13', effects: effects(2) });
    assert.deepEqual(step('Sta5', 'Evt13').effects, effects(2));
    // Evt19: the driver knows why the PDU is bad; without it, reason-not-specified.
    assert.deepEqual(step('Sta6', 'Evt19').effects, effects(0));
    assert.deepEqual(step('Sta6', 'Evt19', { abortReason: 1 }).effects, effects(1));
    assert.deepEqual(step('Sta8', 'Evt19', { abortReason: 6 }).effects, effects(6));
  });

  test('AA-7: in Sta13 an A-ASSOCIATE-RQ or a bad PDU is answered with an A-ABORT and nothing else', () => {
    assert.deepEqual(step('Sta13', 'Evt6'), {
      action: 'AA-7',
      next: 'Sta13',
      effects: [{ kind: 'send', pdu: 'A-ABORT', source: 2, reason: 2 }],
    });
    assert.deepEqual(step('Sta13', 'Evt19', { abortReason: 1 }).effects, [
      { kind: 'send', pdu: 'A-ABORT', source: 2, reason: 1 },
    ]);
  });

  test('AA-1 sends A-ABORT (service-user source) and (re)starts ARTIM wherever the local user aborts', () => {
    for (const state of STATE_IDS) {
      if (cell(state, 'Evt15') !== 'AA-1') continue;
      assert.deepEqual(step(state, 'Evt15'), {
        action: 'AA-1',
        next: 'Sta13',
        effects: [{ kind: 'send', pdu: 'A-ABORT', source: 0, reason: 0 }, START],
      });
    }
  });

  test('a conditional action without its condition throws ERR_UL_FSM_MISSING_CONTEXT', () => {
    const cases: [State, Event, Action, keyof StepContext][] = [
      ['Sta2', 'Evt6', 'AE-6', 'acceptable'],
      ['Sta7', 'Evt12', 'AR-8', 'isRequestor'],
      ['Sta6', 'Evt16', 'AA-3', 'abortSource'],
    ];
    for (const [state, event, action, missing] of cases) {
      assert.throws(
        () => step(state, event, {}),
        (err: unknown) =>
          isFsmError('ERR_UL_FSM_MISSING_CONTEXT', state, event)(err) &&
          (err as FsmError).action === action &&
          (err as FsmError).missing === missing,
      );
      assert.throws(() => step(state, event, { [missing]: undefined }), FsmError);
    }
  });

  test('a local primitive in the wrong state throws ERR_UL_FSM_INVALID_EVENT, naming the cell', () => {
    assert.throws(
      () => step('Sta1', 'Evt9'),
      (err: unknown) =>
        isFsmError('ERR_UL_FSM_INVALID_EVENT', 'Sta1', 'Evt9')(err) &&
        /Evt9 \(P-DATA request primitive\) in Sta1 \(Idle\)/.test((err as Error).message),
    );
    assert.throws(() => step('Sta13', 'Evt15'), isFsmError('ERR_UL_FSM_INVALID_EVENT', 'Sta13', 'Evt15'));
    assert.throws(() => step('Sta6', 'Evt1'), isFsmError('ERR_UL_FSM_INVALID_EVENT', 'Sta6', 'Evt1'));
  });

  test('step is pure: same answer twice, context untouched, effects frozen', () => {
    const ctx: StepContext = Object.freeze({ acceptable: false });
    const a = step('Sta2', 'Evt6', ctx);
    const b = step('Sta2', 'Evt6', ctx);
    assert.deepEqual(a, b);
    assert.ok(Object.isFrozen(a.effects));
    assert.throws(() => (a.effects as Effect[]).push(CLOSE), TypeError);
    assert.deepEqual(step('Sta2', 'Evt6', ctx), b);
  });
});

/** Runs events from `start`, checking each (action, next state); returns the effects seen. */
function walk(start: State, path: readonly [Event, Action, State, StepContext?][]): Effect[][] {
  let state = start;
  const seen: Effect[][] = [];
  for (const [event, action, next, ctx] of path) {
    const r = step(state, event, ctx);
    assert.equal(r.action, action, `${state} + ${event}`);
    assert.equal(r.next, next, `${state} + ${event} -> ${action}`);
    seen.push([...r.effects]);
    state = r.next;
  }
  return seen;
}

describe('walks through the machine', () => {
  test('requestor: associate, release (Sta1 -> Sta4 -> Sta5 -> Sta6 -> Sta7 -> Sta1)', () => {
    const effects = walk('Sta1', [
      ['Evt1', 'AE-1', 'Sta4'],
      ['Evt2', 'AE-2', 'Sta5'],
      ['Evt3', 'AE-3', 'Sta6'],
      ['Evt9', 'DT-1', 'Sta6'],
      ['Evt10', 'DT-2', 'Sta6'],
      ['Evt11', 'AR-1', 'Sta7'],
      ['Evt10', 'AR-6', 'Sta7'],
      ['Evt13', 'AR-3', 'Sta1'],
    ]);
    assert.deepEqual(effects.flat(), [
      CONNECT,
      send('A-ASSOCIATE-RQ'),
      indicate('A-ASSOCIATE confirmation (accept)'),
      send('P-DATA-TF'),
      indicate('P-DATA indication'),
      send('A-RELEASE-RQ'),
      indicate('P-DATA indication'),
      indicate('A-RELEASE confirmation'),
      CLOSE,
    ]);
  });

  test('requestor rejected: Sta1 -> Sta4 -> Sta5 -> Sta1 (AE-4)', () => {
    walk('Sta1', [
      ['Evt1', 'AE-1', 'Sta4'],
      ['Evt2', 'AE-2', 'Sta5'],
      ['Evt4', 'AE-4', 'Sta1'],
    ]);
  });

  test('acceptor: Sta1 -> Sta2 -> Sta3 -> Sta6 -> Sta8 -> Sta13 -> Sta1', () => {
    const effects = walk('Sta1', [
      ['Evt5', 'AE-5', 'Sta2'],
      ['Evt6', 'AE-6', 'Sta3', { acceptable: true }],
      ['Evt7', 'AE-7', 'Sta6'],
      ['Evt10', 'DT-2', 'Sta6'],
      ['Evt12', 'AR-2', 'Sta8'],
      ['Evt9', 'AR-7', 'Sta8'],
      ['Evt14', 'AR-4', 'Sta13'],
      ['Evt17', 'AR-5', 'Sta1'],
    ]);
    assert.deepEqual(effects.flat(), [
      CONNECT_RESPONSE,
      START,
      STOP,
      indicate('A-ASSOCIATE indication'),
      send('A-ASSOCIATE-AC'),
      indicate('P-DATA indication'),
      indicate('A-RELEASE indication'),
      send('P-DATA-TF'),
      send('A-RELEASE-RP'),
      START,
      STOP,
    ]);
  });

  test('acceptor rejects: by the user (AE-8) or by the provider (AE-6), then waits for the close', () => {
    walk('Sta1', [
      ['Evt5', 'AE-5', 'Sta2'],
      ['Evt6', 'AE-6', 'Sta3', { acceptable: true }],
      ['Evt8', 'AE-8', 'Sta13'],
      ['Evt17', 'AR-5', 'Sta1'],
    ]);
    walk('Sta1', [
      ['Evt5', 'AE-5', 'Sta2'],
      ['Evt6', 'AE-6', 'Sta13', { acceptable: false }],
      ['Evt18', 'AA-2', 'Sta1'],
    ]);
  });

  test('acceptor: no A-ASSOCIATE-RQ before ARTIM expires (Sta2 -Evt18-> Sta1)', () => {
    walk('Sta1', [
      ['Evt5', 'AE-5', 'Sta2'],
      ['Evt18', 'AA-2', 'Sta1'],
    ]);
  });

  test('release collision, requestor side: Sta6 -> Sta7 -> Sta9 -> Sta11 -> Sta1', () => {
    const effects = walk('Sta6', [
      ['Evt11', 'AR-1', 'Sta7'],
      ['Evt12', 'AR-8', 'Sta9', { isRequestor: true }],
      ['Evt14', 'AR-9', 'Sta11'],
      ['Evt13', 'AR-3', 'Sta1'],
    ]);
    assert.deepEqual(effects.flat(), [
      send('A-RELEASE-RQ'),
      indicate('A-RELEASE indication (collision)'),
      send('A-RELEASE-RP'),
      indicate('A-RELEASE confirmation'),
      CLOSE,
    ]);
  });

  test('release collision, acceptor side: Sta6 -> Sta7 -> Sta10 -> Sta12 -> Sta13 -> Sta1', () => {
    const effects = walk('Sta6', [
      ['Evt11', 'AR-1', 'Sta7'],
      ['Evt12', 'AR-8', 'Sta10', { isRequestor: false }],
      ['Evt13', 'AR-10', 'Sta12'],
      ['Evt14', 'AR-4', 'Sta13'],
      ['Evt17', 'AR-5', 'Sta1'],
    ]);
    assert.deepEqual(effects.flat(), [
      send('A-RELEASE-RQ'),
      indicate('A-RELEASE indication (collision)'),
      indicate('A-RELEASE confirmation'),
      send('A-RELEASE-RP'),
      START,
      STOP,
    ]);
  });

  test('both sides of a collision, stepped together, end released', () => {
    // The requestor (R) and the acceptor (A) send A-RELEASE-RQ at once; each receives the other's.
    let r: State = 'Sta6';
    let a: State = 'Sta6';
    r = step(r, 'Evt11').next; // R sends A-RELEASE-RQ
    a = step(a, 'Evt11').next; // A sends A-RELEASE-RQ
    r = step(r, 'Evt12', { isRequestor: true }).next; // Sta9
    a = step(a, 'Evt12', { isRequestor: false }).next; // Sta10
    r = step(r, 'Evt14').next; // R answers: AR-9 sends A-RELEASE-RP, Sta11
    a = step(a, 'Evt13').next; // A receives it: AR-10, Sta12
    a = step(a, 'Evt14').next; // A answers: AR-4 sends A-RELEASE-RP, Sta13
    r = step(r, 'Evt13').next; // R receives it: AR-3 closes, Sta1
    a = step(a, 'Evt17').next; // A sees the close: AR-5, Sta1
    assert.deepEqual([r, a], ['Sta1', 'Sta1']);
  });

  test('aborts: local A-ABORT then close; peer A-ABORT; transport lost', () => {
    walk('Sta6', [
      ['Evt15', 'AA-1', 'Sta13'],
      ['Evt10', 'AA-6', 'Sta13'],
      ['Evt17', 'AR-5', 'Sta1'],
    ]);
    walk('Sta6', [['Evt16', 'AA-3', 'Sta1', { abortSource: 0 }]]);
    walk('Sta6', [['Evt17', 'AA-4', 'Sta1']]);
    walk('Sta1', [
      ['Evt1', 'AE-1', 'Sta4'],
      ['Evt15', 'AA-2', 'Sta1'],
    ]);
  });
});
