/** The sidecar: a txloop service beside a service in any language, over localhost HTTP (api/openapi.yaml). */
export { startSidecar, type Sidecar, type SidecarOptions } from './sidecar.js';
export { loadResourcesFile, parseResources, type ResourcesFile, type ResourceSpec } from './resources-file.js';
export { problem, problemOf, type Problem } from './problems.js';
