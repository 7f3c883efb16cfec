/** The participant's side of a service: its resources and their Try. */
export { Participant, type ParticipantOptions, type RegisteredTry, type TryOptions, type TryResult } from './participant.js';
export { ResourceRegistry } from './resources.js';
