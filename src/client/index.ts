/** The initiator's side of a service. */
export { Initiator, type InitiatorOptions } from './initiator.js';
export { GlobalTransaction, type Decider } from './transaction.js';
export { toView, type TransactionView, type BranchView } from './views.js';
export type { BeginOptions, CallOptions, DecideCallOptions, ListOptions, WaitOptions } from './options.js';
export { Messages, PreparedMessage, DEFAULT_CHECK_AFTER_MS, type MessagesOptions, type MessageDecider, type MessageDestination, type PrepareMessageOptions, type DeliveryView, type MessageView } from './messages.js';
