/** The modes txloop ships. */
import type { RegisteredResource } from '../resource.js';
import { ModeRegistry } from './registry.js';
import { msg } from './msg/index.js';
import { saga } from './saga/index.js';
import { tcc } from './tcc/index.js';

/** A registry of every built-in mode: services run them, readers (the CLI) understand their records. */
export function builtInModes(): ModeRegistry<RegisteredResource> {
  return new ModeRegistry<RegisteredResource>([tcc, saga, msg]);
}
