/** Transaction modes: the seam (mode.ts), the registry that dispatches to them, TCC, sagas and 2-phase messages. */
export type { TransactionMode, DecisionRequest, GlobalInCache, BranchInCache } from './mode.js';
export { ModeRegistry } from './registry.js';
export { decide } from './decide.js';
export { alreadyDecided } from './decided.js';
export * as tccRules from './tcc/index.js';
export { tcc } from './tcc/index.js';
export { builtInModes } from './built-in.js';
export * as sagaRules from './saga/index.js';
export { saga } from './saga/index.js';
export * as msgRules from './msg/index.js';
export { msg } from './msg/index.js';
