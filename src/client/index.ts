/** The initiator's side of a service. */
export { Initiator, type InitiatorOptions } from './initiator.js';
export { GlobalTransaction, type Decider } from './transaction.js';
export { toView, type TransactionView, type BranchView, type SagaStepView } from './views.js';
export type { BeginOptions, CallOptions, DecideCallOptions, ListOptions, WaitOptions } from './options.js';
export { submitSaga, type SagaOptions, type SagaStepOptions, type SubmittedSaga, type SagaSubmitter } from './saga.js';
export { Messages, PreparedMessage, DEFAULT_CHECK_AFTER_MS, type MessagesOptions, type MessageDecider, type MessageDestination, type PrepareMessageOptions, type DeliveryView, type MessageView } from './messages.js';
