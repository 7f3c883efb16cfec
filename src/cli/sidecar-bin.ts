#!/usr/bin/env node
/** `txloop-sidecar …`: the same as `txloop sidecar …`. */
process.argv.splice(2, 0, 'sidecar');
await import('./main.js');
