// PS3.8 §9.2.2: the actions of the DICOM Upper Layer protocol machine (Tables 9-6 to 9-9), each as
// the effects a driver carries out and the next state. Pure data: nothing here touches a socket.
import type { Event, State } from './states.ts';

/** Every action, in the standard's order. */
export const ACTION_IDS = [
  'AE-1',
  'AE-2',
  'AE-3',
  'AE-4',
  'AE-5',
  'AE-6',
  'AE-7',
  'AE-8',
  'DT-1',
  'DT-2',
  'AR-1',
  'AR-2',
  'AR-3',
  'AR-4',
  'AR-5',
  'AR-6',
  'AR-7',
  'AR-8',
  'AR-9',
  'AR-10',
  'AA-1',
  'AA-2',
  'AA-3',
  'AA-4',
  'AA-5',
  'AA-6',
  'AA-7',
  'AA-8',
] as const;

/** An action of PS3.8 §9.2.2: association establishment (AE), data transfer (DT), release (AR), abort (AA). */
export type Action = (typeof ACTION_IDS)[number];

/** The PDU types of PS3.8 §9.3. */
export type Pdu =
  | 'A-ASSOCIATE-RQ'
  | 'A-ASSOCIATE-AC'
  | 'A-ASSOCIATE-RJ'
  | 'P-DATA-TF'
  | 'A-RELEASE-RQ'
  | 'A-RELEASE-RP'
  | 'A-ABORT';

/**
 * Source field of an A-ABORT PDU (PS3.8 §9.3.8): 0 DICOM UL service-user (initiated abort),
 * 1 reserved, 2 DICOM UL service-provider (initiated abort).
 */
export type AbortSource = 0 | 1 | 2;

/**
 * Reason/Diag. field of an A-ABORT PDU with service-provider source (PS3.8 §9.3.8):
 * 0 reason-not-specified, 1 unrecognized-PDU, 2 unexpected-PDU, 4 unrecognized-PDU parameter,
 * 5 unexpected-PDU parameter, 6 invalid-PDU-parameter value (3 is reserved). With service-user
 * source it is 0 (not significant).
 */
export type AbortReason = 0 | 1 | 2 | 4 | 5 | 6;

/** The primitives the Upper Layer issues to its local service-user (PS3.8 §7). */
export type Primitive =
  | 'A-ASSOCIATE indication'
  | 'A-ASSOCIATE confirmation (accept)'
  | 'A-ASSOCIATE confirmation (reject)'
  | 'P-DATA indication'
  | 'A-RELEASE indication'
  | 'A-RELEASE indication (collision)'
  | 'A-RELEASE confirmation'
  | 'A-ABORT indication'
  | 'A-P-ABORT indication';

/**
 * One thing a driver does when it carries out an action, in the order given:
 * - `connect`: issue a TRANSPORT CONNECT request to the local transport service (open a TCP connection);
 *   it answers later with Evt2 (confirmation) or Evt17 (closed).
 * - `connect-response`: issue the transport connection response primitive, i.e. accept the incoming
 *   connection (with node:net it is already accepted, so nothing to do).
 * - `send`: encode and write a PDU. The payload of A-ASSOCIATE-RQ/AC/RJ, P-DATA-TF and A-RELEASE-RP comes
 *   from the primitive the driver is handling; an A-ABORT carries its Source and Reason/Diag. here.
 * - `indicate`: issue a primitive to the local service-user.
 * - `start-artim`: start the ARTIM timer, restarting it if it is already running.
 * - `stop-artim`: stop the ARTIM timer if it is running.
 * - `close`: close the transport connection.
 */
export type Effect =
  | { readonly kind: 'connect' }
  | { readonly kind: 'connect-response' }
  | { readonly kind: 'send'; readonly pdu: Exclude<Pdu, 'A-ABORT'> }
  | { readonly kind: 'send'; readonly pdu: 'A-ABORT'; readonly source: 0 | 2; readonly reason: AbortReason }
  | { readonly kind: 'indicate'; readonly primitive: Primitive }
  | { readonly kind: 'start-artim' }
  | { readonly kind: 'stop-artim' }
  | { readonly kind: 'close' };

/**
 * The conditions some actions depend on, supplied by the caller of `step` (the driver knows them; the
 * table does not).
 */
export interface StepContext {
  /** AE-6: whether the A-ASSOCIATE-RQ is acceptable by the service-provider (e.g. protocol version bit 0 set). */
  readonly acceptable?: boolean | undefined;
  /** AR-8: whether this side is the association-requestor (Sta9) rather than the acceptor (Sta10). */
  readonly isRequestor?: boolean | undefined;
  /**
   * AA-3: the Source field of the received A-ABORT PDU, as decoded: 0 is a service-user initiated
   * abort, any other value (2, or the reserved 1) a service-provider initiated one.
   */
  readonly abortSource?: AbortSource | number | undefined;
  /**
   * AA-7, AA-8: the Reason/Diag. of the A-ABORT PDU sent with service-provider source. Defaults to
   * 2 (unexpected-PDU) for a well-formed PDU in the wrong state and 0 (reason-not-specified) for Evt19,
   * where the driver knows better (1 unrecognized-PDU, 6 invalid-PDU-parameter value, ...).
   */
  readonly abortReason?: AbortReason | undefined;
}

/** What an action does: its effects, in order, and the state the machine moves to. */
export interface Outcome {
  readonly next: State;
  readonly effects: readonly Effect[];
}

/** What an action is run with. */
export interface ActionInput {
  readonly event: Event;
  readonly ctx: StepContext;
  /** The context value `key`; throws `FsmError` `ERR_UL_FSM_MISSING_CONTEXT` when it was not given. */
  readonly need: <K extends keyof StepContext>(key: K) => Exclude<StepContext[K], undefined>;
}

export interface ActionSpec {
  /** The standard's definition of the action (PS3.8 Tables 9-6 to 9-9). */
  readonly definition: string;
  /** Every state the action can lead to: one, or two for the conditional AE-6 and AR-8. */
  readonly next: readonly State[];
  /** The effects and the next state, given the event and the step context. Pure. */
  readonly run: (input: ActionInput) => Outcome;
}

const outcome = (next: State, ...effects: Effect[]): Outcome =>
  Object.freeze({ next, effects: Object.freeze(effects) });

/** An action with one next state and fixed effects. */
function fixed(definition: string, next: State, ...effects: Effect[]): ActionSpec {
  const result = outcome(next, ...effects);
  return { definition, next: [next], run: () => result };
}

const CONNECT: Effect = { kind: 'connect' };
const CONNECT_RESPONSE: Effect = { kind: 'connect-response' };
const START_ARTIM: Effect = { kind: 'start-artim' };
const STOP_ARTIM: Effect = { kind: 'stop-artim' };
const CLOSE: Effect = { kind: 'close' };
const send = (pdu: Exclude<Pdu, 'A-ABORT'>): Effect => ({ kind: 'send', pdu });
const indicate = (primitive: Primitive): Effect => ({ kind: 'indicate', primitive });

/** An A-ABORT PDU with service-provider source (AA-7, AA-8). */
function providerAbort({ event, ctx }: ActionInput): Effect {
  const reason = ctx.abortReason ?? (event === 'Evt19' ? 0 : 2);
  return { kind: 'send', pdu: 'A-ABORT', source: 2, reason };
}

/** The actions of PS3.8 §9.2.2, each documented with the standard's definition. */
export const ACTIONS = {
  // Table 9-6. Association Establishment Related Actions

  /** Issue TRANSPORT CONNECT request primitive to local transport service. Next state is Sta4. */
  'AE-1': fixed('Issue TRANSPORT CONNECT request primitive to local transport service', 'Sta4', CONNECT),
  /** Send A-ASSOCIATE-RQ-PDU. Next state is Sta5. */
  'AE-2': fixed('Send A-ASSOCIATE-RQ-PDU', 'Sta5', send('A-ASSOCIATE-RQ')),
  /** Issue A-ASSOCIATE confirmation (accept) primitive. Next state is Sta6. */
  'AE-3': fixed(
    'Issue A-ASSOCIATE confirmation (accept) primitive',
    'Sta6',
    indicate('A-ASSOCIATE confirmation (accept)'),
  ),
  /** Issue A-ASSOCIATE confirmation (reject) primitive and close transport connection. Next state is Sta1. */
  'AE-4': fixed(
    'Issue A-ASSOCIATE confirmation (reject) primitive and close transport connection',
    'Sta1',
    indicate('A-ASSOCIATE confirmation (reject)'),
    CLOSE,
  ),
  /** Issue Transport connection response primitive; start ARTIM timer. Next state is Sta2. */
  'AE-5': fixed(
    'Issue Transport connection response primitive; start ARTIM timer',
    'Sta2',
    CONNECT_RESPONSE,
    START_ARTIM,
  ),
  /**
   * Stop ARTIM timer and if A-ASSOCIATE-RQ acceptable by service-provider: issue A-ASSOCIATE
   * indication primitive, next state is Sta3; otherwise: issue A-ASSOCIATE-RJ-PDU and start ARTIM
   * timer, next state is Sta13. Needs `ctx.acceptable`.
   */
  'AE-6': {
    definition:
      'Stop ARTIM timer and if A-ASSOCIATE-RQ acceptable by service-provider: issue A-ASSOCIATE indication ' +
      'primitive (next state is Sta3); otherwise: issue A-ASSOCIATE-RJ-PDU and start ARTIM timer ' +
      '(next state is Sta13)',
    next: ['Sta3', 'Sta13'],
    run: ({ need }) =>
      need('acceptable')
        ? outcome('Sta3', STOP_ARTIM, indicate('A-ASSOCIATE indication'))
        : outcome('Sta13', STOP_ARTIM, send('A-ASSOCIATE-RJ'), START_ARTIM),
  },
  /** Send A-ASSOCIATE-AC PDU. Next state is Sta6. */
  'AE-7': fixed('Send A-ASSOCIATE-AC PDU', 'Sta6', send('A-ASSOCIATE-AC')),
  /** Send A-ASSOCIATE-RJ PDU and start ARTIM timer. Next state is Sta13. */
  'AE-8': fixed(
    'Send A-ASSOCIATE-RJ PDU and start ARTIM timer',
    'Sta13',
    send('A-ASSOCIATE-RJ'),
    START_ARTIM,
  ),

  // Table 9-7. Data Transfer Related Actions

  /** Send P-DATA-TF PDU. Next state is Sta6. */
  'DT-1': fixed('Send P-DATA-TF PDU', 'Sta6', send('P-DATA-TF')),
  /** Send P-DATA indication primitive. Next state is Sta6. */
  'DT-2': fixed('Send P-DATA indication primitive', 'Sta6', indicate('P-DATA indication')),

  // Table 9-8. Association Release Related Actions

  /** Send A-RELEASE-RQ PDU. Next state is Sta7. */
  'AR-1': fixed('Send A-RELEASE-RQ PDU', 'Sta7', send('A-RELEASE-RQ')),
  /** Issue A-RELEASE indication primitive. Next state is Sta8. */
  'AR-2': fixed('Issue A-RELEASE indication primitive', 'Sta8', indicate('A-RELEASE indication')),
  /** Issue A-RELEASE confirmation primitive, and close transport connection. Next state is Sta1. */
  'AR-3': fixed(
    'Issue A-RELEASE confirmation primitive, and close transport connection',
    'Sta1',
    indicate('A-RELEASE confirmation'),
    CLOSE,
  ),
  /** Issue A-RELEASE-RP PDU and start ARTIM timer. Next state is Sta13. */
  'AR-4': fixed('Issue A-RELEASE-RP PDU and start ARTIM timer', 'Sta13', send('A-RELEASE-RP'), START_ARTIM),
  /** Stop ARTIM timer. Next state is Sta1. */
  'AR-5': fixed('Stop ARTIM timer', 'Sta1', STOP_ARTIM),
  /** Issue P-DATA indication. Next state is Sta7. */
  'AR-6': fixed('Issue P-DATA indication', 'Sta7', indicate('P-DATA indication')),
  /** Issue P-DATA-TF PDU. Next state is Sta8. */
  'AR-7': fixed('Issue P-DATA-TF PDU', 'Sta8', send('P-DATA-TF')),
  /**
   * Issue A-RELEASE indication (release collision): if association-requestor, next state is Sta9;
   * if not, next state is Sta10. Needs `ctx.isRequestor`.
   */
  'AR-8': {
    definition:
      'Issue A-RELEASE indication (release collision): if association-requestor, next state is Sta9; ' +
      'if not, next state is Sta10',
    next: ['Sta9', 'Sta10'],
    run: ({ need }) =>
      outcome(need('isRequestor') ? 'Sta9' : 'Sta10', indicate('A-RELEASE indication (collision)')),
  },
  /** Send A-RELEASE-RP PDU. Next state is Sta11. */
  'AR-9': fixed('Send A-RELEASE-RP PDU', 'Sta11', send('A-RELEASE-RP')),
  /** Issue A-RELEASE confirmation primitive. Next state is Sta12. */
  'AR-10': fixed('Issue A-RELEASE confirmation primitive', 'Sta12', indicate('A-RELEASE confirmation')),

  // Table 9-9. Association Abort Related Actions

  /**
   * Send A-ABORT PDU (service-user source) and start (or restart if already started) ARTIM timer.
   * Next state is Sta13. The PDU has Source 0 and Reason/Diag. 0.
   */
  'AA-1': fixed(
    'Send A-ABORT PDU (service-user source) and start (or restart if already started) ARTIM timer',
    'Sta13',
    { kind: 'send', pdu: 'A-ABORT', source: 0, reason: 0 },
    START_ARTIM,
  ),
  /** Stop ARTIM timer if running. Close transport connection. Next state is Sta1. */
  'AA-2': fixed('Stop ARTIM timer if running. Close transport connection', 'Sta1', STOP_ARTIM, CLOSE),
  /**
   * If (service-user initiated abort): issue A-ABORT indication and close transport connection;
   * otherwise (service-provider initiated abort): issue A-P-ABORT indication and close transport
   * connection. Next state is Sta1. Needs `ctx.abortSource`, the Source of the received A-ABORT PDU.
   */
  'AA-3': {
    definition:
      'If (service-user initiated abort): issue A-ABORT indication and close transport connection; ' +
      'otherwise (service-provider initiated abort): issue A-P-ABORT indication and close transport connection',
    next: ['Sta1'],
    run: ({ need }) =>
      outcome(
        'Sta1',
        indicate(need('abortSource') === 0 ? 'A-ABORT indication' : 'A-P-ABORT indication'),
        CLOSE,
      ),
  },
  /** Issue A-P-ABORT indication primitive. Next state is Sta1. */
  'AA-4': fixed('Issue A-P-ABORT indication primitive', 'Sta1', indicate('A-P-ABORT indication')),
  /** Stop ARTIM timer. Next state is Sta1. */
  'AA-5': fixed('Stop ARTIM timer', 'Sta1', STOP_ARTIM),
  /** Ignore PDU. Next state is Sta13. */
  'AA-6': fixed('Ignore PDU', 'Sta13'),
  /**
   * Send A-ABORT PDU. Next state is Sta13. The association no longer exists, so the PDU has
   * service-provider source; Reason/Diag. from `ctx.abortReason` (see {@link StepContext}).
   */
  'AA-7': {
    definition: 'Send A-ABORT PDU',
    next: ['Sta13'],
    run: (input) => outcome('Sta13', providerAbort(input)),
  },
  /**
   * Send A-ABORT PDU (service-provider source), issue an A-P-ABORT indication, and start ARTIM timer.
   * Next state is Sta13. Reason/Diag. from `ctx.abortReason` (see {@link StepContext}).
   */
  'AA-8': {
    definition:
      'Send A-ABORT PDU (service-provider source), issue an A-P-ABORT indication, and start ARTIM timer',
    next: ['Sta13'],
    run: (input) => outcome('Sta13', providerAbort(input), indicate('A-P-ABORT indication'), START_ARTIM),
  },
} as const satisfies Record<Action, ActionSpec>;
