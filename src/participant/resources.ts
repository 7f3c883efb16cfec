/** The TCC resources a participant serves, by name, validated when they are registered. */
import { ValidationError } from '../errors.js';
import { rejectUnknownOptions } from '../options.js';
import type { ResourceOptions, TccResource } from '../resource.js';
import { validateResource } from '../store/index.js';
import { parseRetrySchedule } from './schedule.js';

export class ResourceRegistry {
  private readonly byName = new Map<string, TccResource>();
  private readonly schedules = new Map<string, readonly number[]>();

  register(name: string, handlers: TccResource<never, unknown>, options: ResourceOptions = {}): void {
    if (typeof options !== 'object' || options === null) throw new ValidationError('options', 'must be an object like { retry: [\'5m\', \'1h\'] }');
    rejectUnknownOptions(options, ['retry'], 'options.');
    const schedule = parseRetrySchedule(options.retry);
    validateResource(name, 'name');
    if (typeof handlers !== 'object' || handlers === null) throw new ValidationError('handlers', 'must be an object with try, confirm and cancel functions');
    for (const fn of ['try', 'confirm', 'cancel'] as const) {
      if (typeof handlers[fn] !== 'function') throw new ValidationError(`handlers.${fn}`, `resource ${name} needs a ${fn} function`);
    }
    if (this.byName.has(name)) throw new ValidationError('name', `resource ${name} is already registered`);
    this.byName.set(name, handlers as unknown as TccResource);
    if (schedule) this.schedules.set(name, schedule);
  }

  /** The resource's retry delays in ms (ResourceOptions.retry), or undefined: exponential backoff. */
  scheduleOf(name: string): readonly number[] | undefined {
    return this.schedules.get(name);
  }

  get(name: string): TccResource | undefined {
    return this.byName.get(name);
  }

  /** The handlers by name, as the control loop looks them up. */
  get handlers(): ReadonlyMap<string, TccResource> {
    return this.byName;
  }
}
