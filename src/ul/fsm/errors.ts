import type { Action, StepContext } from './actions.ts';
import { EVENTS, type Event, STATES, type State } from './states.ts';

/**
 * Stable codes of {@link FsmError}:
 * - `ERR_UL_FSM_INVALID_EVENT`: the (state, event) cell of PS3.8 Table 9-10 is empty, e.g. a P-DATA
 *   request (Evt9) in Sta1. Every PDU received on an open transport connection has an entry (mostly
 *   AA-x), so this is a local error: a service-user primitive issued in the wrong state, or a driver
 *   that reports a transport or timer event that cannot happen.
 * - `ERR_UL_FSM_MISSING_CONTEXT`: the action of the cell depends on a condition that the caller did
 *   not pass in the step context (AE-6 `acceptable`, AR-8 `isRequestor`, AA-3 `abortSource`).
 */
export type FsmErrorCode = 'ERR_UL_FSM_INVALID_EVENT' | 'ERR_UL_FSM_MISSING_CONTEXT';

/** A local misuse of the Upper Layer state machine (PS3.8 §9.2); never caused by the peer. */
export class FsmError extends Error {
  readonly code: FsmErrorCode;
  readonly state: State;
  readonly event: Event;
  /** For `ERR_UL_FSM_MISSING_CONTEXT`: the action, and the step context field it needs. */
  readonly action: Action | undefined;
  readonly missing: keyof StepContext | undefined;

  constructor(
    code: FsmErrorCode,
    state: State,
    event: Event,
    need?: { readonly action: Action; readonly missing: keyof StepContext },
  ) {
    const cell = `${event} (${EVENTS[event]}) in ${state} (${STATES[state]})`;
    super(
      need === undefined
        ? `PS3.8 Table 9-10 has no action for ${cell}`
        : `${need.action} needs ctx.${need.missing} to handle ${cell}`,
    );
    this.name = 'FsmError';
    this.code = code;
    this.state = state;
    this.event = event;
    this.action = need?.action;
    this.missing = need?.missing;
  }
}
