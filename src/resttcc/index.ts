/**
 * REST-TCC (Atomikos' protocol over HTTP, docs/rest-tcc.md): a coordinator over a TxloopService
 * whose participant links become branches of a txloop transaction, its routes for the sidecar,
 * and SDK helpers for Node participants (serving a resource as links) and initiators (collecting
 * links, asking a coordinator to confirm or cancel them).
 */
export { RestTccCoordinator, linkOutcomes, confirmOutcome, type RestTccCoordinatorOptions, type RestTccCallOptions, type ConfirmOutcome, type ConfirmResult, type CancelResult } from './coordinator.js';
export { LINK_RESOURCE } from './link-resource.js';
export { TCC_JSON, TCC_ACCEPT, MAX_LINKS, parseLink, parseLinks, parseLinkAnswer, type ParticipantLink, type ParsedLink } from './links.js';
export { RestTccTooLate, RestTccHeuristic, RestTccPending, RestTccTryFailed, RestTccCoordinatorError, type LinkOutcome } from './errors.js';
export { RestTccParticipant, MemoryReservations, type RestTccParticipantOptions, type Reservation, type ReservationState, type ReservationStore, type RestTccTryRequest } from './participant.js';
export { RestTccClient, RestTccTransaction, type RestTccClientOptions, type RestTccRequestOptions } from './client.js';
export { restTccRoutes, restTccPlugin, type RestTccRoutesOptions } from './routes.js';
