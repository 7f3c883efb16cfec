/** The Kubernetes status mirror (`txloop mirror`): see mirror.ts, and docs/kubernetes.md for what it shows and why. */
export { Mirror, MIRROR_APP, MIRROR_DEFAULTS, type MirrorOptions } from './mirror.js';
export { serveMirror, type MirrorServer } from './http.js';
export { podNamespace } from './api.js';
