/**
 * The resources a participant serves, by name, validated when they are registered: TCC resources,
 * saga steps and message consumers share one namespace, so a branch always finds one kind.
 */
import { ValidationError } from '../errors.js';
import { rejectUnknownOptions } from '../options.js';
import type { RegisteredResource, ResourceOptions, TccResource } from '../resource.js';
import { validateResource } from '../store/index.js';
import { parseRetrySchedule } from './schedule.js';

const FUNCTIONS = { tcc: ['try', 'confirm', 'cancel'], saga: ['action', 'compensate'], msg: ['deliver'] } as const;
const KIND_NAMES = { tcc: 'resource', saga: 'saga step', msg: 'message consumer' } as const;
const SHAPES = { tcc: 'try, confirm and cancel functions', saga: 'action and compensate functions', msg: 'a deliver function' } as const;

export class ResourceRegistry {
  private readonly byName = new Map<string, RegisteredResource>();
  private readonly schedules = new Map<string, readonly number[]>();

  register(name: string, handlers: object, options: ResourceOptions = {}, kind: RegisteredResource['kind'] = 'tcc'): void {
    if (typeof options !== 'object' || options === null) throw new ValidationError('options', 'must be an object like { retry: [\'5m\', \'1h\'] }');
    rejectUnknownOptions(options, ['retry'], 'options.');
    const schedule = parseRetrySchedule(options.retry);
    validateResource(name, 'name');
    if (typeof handlers !== 'object' || handlers === null) throw new ValidationError('handlers', `must be an object with ${SHAPES[kind]}`);
    for (const fn of FUNCTIONS[kind]) {
      if (typeof (handlers as Record<string, unknown>)[fn] !== 'function') throw new ValidationError(`handlers.${fn}`, `${KIND_NAMES[kind]} ${name} needs a ${fn} function`);
    }
    const existing = this.byName.get(name);
    if (existing) throw new ValidationError('name', `${KIND_NAMES[kind]} ${name} is already registered${existing.kind === kind ? '' : ` as a ${KIND_NAMES[existing.kind]}`}`);
    this.byName.set(name, { kind, handlers } as RegisteredResource);
    if (schedule) this.schedules.set(name, schedule);
  }

  /** The resource's retry delays in ms (ResourceOptions.retry), or undefined: exponential backoff. */
  scheduleOf(name: string): readonly number[] | undefined {
    return this.schedules.get(name);
  }

  /** The TCC resource `name`, undefined when none (or `name` is another kind). */
  get(name: string): TccResource | undefined {
    const r = this.byName.get(name);
    return r?.kind === 'tcc' ? r.handlers : undefined;
  }

  /** The resources by name, as the control loop looks them up. */
  get handlers(): ReadonlyMap<string, RegisteredResource> {
    return this.byName;
  }
}
