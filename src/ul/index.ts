export {
  Association,
  AssociationAbortedError,
  type AssociationInfo,
  AssociationRejectedError,
  type AssociationUser,
  type ProposedContext,
  type RequestOptions,
  TimeoutError,
  UL_DEFAULTS,
} from './association.ts';
export {
  type Effect,
  EVENTS,
  type Event,
  FsmError,
  STATES,
  type State,
  step,
  TRANSITIONS,
} from './fsm/index.ts';
export {
  type AcceptDecision,
  type AcceptedContext,
  type AcceptorPolicy,
  negotiateAsAcceptor,
  type RejectedContext,
} from './negotiation.ts';
export * from './pdu/index.ts';
export { type Listener, type ListenOptions, listen } from './server.ts';
