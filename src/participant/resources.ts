/** The TCC resources a participant serves, by name, validated when they are registered. */
import { ValidationError } from '../errors.js';
import type { TccResource } from '../resource.js';
import { validateResource } from '../store/index.js';

export class ResourceRegistry {
  private readonly byName = new Map<string, TccResource>();

  register(name: string, handlers: TccResource<never, unknown>): void {
    validateResource(name, 'name');
    if (typeof handlers !== 'object' || handlers === null) throw new ValidationError('handlers', 'must be an object with try, confirm and cancel functions');
    for (const fn of ['try', 'confirm', 'cancel'] as const) {
      if (typeof handlers[fn] !== 'function') throw new ValidationError(`handlers.${fn}`, `resource ${name} needs a ${fn} function`);
    }
    if (this.byName.has(name)) throw new ValidationError('name', `resource ${name} is already registered`);
    this.byName.set(name, handlers as unknown as TccResource);
  }

  get(name: string): TccResource | undefined {
    return this.byName.get(name);
  }

  /** The handlers by name, as the control loop looks them up. */
  get handlers(): ReadonlyMap<string, TccResource> {
    return this.byName;
  }
}
