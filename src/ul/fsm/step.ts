import { ACTIONS, type Action, type ActionInput, type Effect, type StepContext } from './actions.ts';
import { FsmError } from './errors.ts';
import type { Event, State } from './states.ts';
import { transition } from './table.ts';

/** The result of one step: the action of Table 9-10, the state it leads to, and its effects in order. */
export interface StepResult {
  readonly action: Action;
  readonly next: State;
  readonly effects: readonly Effect[];
}

/**
 * One transition of the DICOM Upper Layer protocol machine (PS3.8 §9.2): looks up the action for
 * `event` in `state` (Table 9-10) and runs it (§9.2.2). Pure: the caller carries out the effects and
 * keeps the next state.
 *
 * Protocol errors by the peer are cells of the table (AA-1, AA-8, ...), so they come back as actions.
 * An empty cell is a local error (a service-user primitive in the wrong state, or an impossible
 * transport or timer event) and throws `FsmError` `ERR_UL_FSM_INVALID_EVENT`; a conditional action
 * run without its condition in `ctx` throws `FsmError` `ERR_UL_FSM_MISSING_CONTEXT`.
 */
export function step(state: State, event: Event, ctx: StepContext = {}): StepResult {
  const action = transition(state, event);
  if (action === undefined) throw new FsmError('ERR_UL_FSM_INVALID_EVENT', state, event);
  const input: ActionInput = {
    event,
    ctx,
    need: (key) => {
      const value = ctx[key];
      if (value === undefined) {
        throw new FsmError('ERR_UL_FSM_MISSING_CONTEXT', state, event, { action, missing: key });
      }
      return value as Exclude<StepContext[typeof key], undefined>;
    },
  };
  const { next, effects } = ACTIONS[action].run(input);
  return { action, next, effects };
}
