/** The local, watched copy of a service's prefix. */
export { Informer, type CachedKv, type InformerOptions } from './informer.js';
export { MemberIndex } from './member-index.js';
