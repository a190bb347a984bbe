export {
  type AbortReason,
  type AbortSource,
  ACTION_IDS,
  ACTIONS,
  type Action,
  type ActionInput,
  type ActionSpec,
  type Effect,
  type Outcome,
  type Pdu,
  type Primitive,
  type StepContext,
} from './actions.ts';
export { FsmError, type FsmErrorCode } from './errors.ts';
export {
  EVENT_IDS,
  EVENT_ORIGIN,
  EVENTS,
  type Event,
  type EventOrigin,
  STATE_IDS,
  STATES,
  type State,
} from './states.ts';
export { type StepResult, step } from './step.ts';
export { TRANSITIONS, transition } from './table.ts';
