/**
 * The mirror's edge to the Kubernetes API (@kubernetes/client-node 1.x: every call takes one object
 * and returns the body): server-side apply of an object and of its status, deletes, guarded JSON
 * patches, and list+watch caches of the txloop kinds in one namespace. Each write is counted, so
 * the mirror can report apiserver writes per etcd change; each call is bounded by a timeout, so a
 * hung apiserver costs a retry, not a worker.
 */
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { raceAbort } from '../signals.js';
import { FIELD_MANAGER, GROUP, KIND, PLURAL, VERSION } from './objects.js';

export type KindName = keyof typeof PLURAL;

/** A txloop custom object as the apiserver returns it (the fields the mirror reads). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    managedFields?: { manager?: string; operation?: string; fieldsV1?: Record<string, unknown> }[];
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export type WriteVerb = 'apply' | 'status' | 'patch' | 'delete';

export interface KubeApiOptions {
  /** A kubeconfig file; else KUBECONFIG, ~/.kube/config, or the pod's service account. */
  kubeconfig?: string;
  namespace: string;
  /** Each call's bound. @default 10_000 */
  timeoutMs?: number;
  /** Told of each write that succeeded. */
  onWrite?(kind: KindName, verb: WriteVerb): void;
}

const POD_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The namespace of the pod this runs in, when it runs in one. */
export function podNamespace(): string | undefined {
  try {
    return readFileSync(POD_NAMESPACE_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export function loadKubeConfig(path?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path !== undefined) kc.loadFromFile(path);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error(path !== undefined ? `kubeconfig ${path} names no current cluster` : 'no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account');
  return kc;
}

/** The HTTP status of a failed call (0 when there was no answer). */
export function statusOf(err: unknown): number {
  return err instanceof k8s.ApiException ? err.code : 0;
}

/** What the apiserver said of a failed call: its Status object's message, else the body itself. */
export function apiMessage(err: { body?: unknown }): string {
  try {
    const body = JSON.parse(String(err.body)) as { message?: string };
    if (body.message) return body.message;
  } catch {
    // not a Status object
  }
  return String(err.body).slice(0, 300);
}

/** A failed call in one line: the status and the apiserver's own message when there was an answer. */
export function messageOf(err: unknown): string {
  if (err instanceof k8s.ApiException) return `${err.code}: ${apiMessage(err)}`;
  return err instanceof Error ? err.message : String(err);
}

const apply = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply);
const jsonPatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch);

export class KubeApi {
  readonly namespace: string;
  readonly config: k8s.KubeConfig;
  private readonly co: k8s.CustomObjectsApi;
  private readonly timeoutMs: number;

  constructor(private readonly o: KubeApiOptions) {
    this.config = loadKubeConfig(o.kubeconfig);
    this.namespace = o.namespace;
    this.co = this.config.makeApiClient(k8s.CustomObjectsApi);
    this.timeoutMs = o.timeoutMs ?? 10_000;
  }

  /** The server this talks to, for logs. */
  get server(): string {
    return this.config.getCurrentCluster()?.server ?? '';
  }

  private target(kind: KindName, name: string) {
    return { group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL[kind], name };
  }

  private bounded<T>(what: string, call: Promise<T>): Promise<T> {
    return raceAbort(call, AbortSignal.timeout(this.timeoutMs), () => new Error(`${what}: no answer from the apiserver within ${this.timeoutMs}ms`));
  }

  private wrote(kind: KindName, verb: WriteVerb): void {
    this.o.onWrite?.(kind, verb);
  }

  /** Creates or updates the object's metadata and spec fields the mirror owns (server-side apply). */
  async applyObject(kind: KindName, name: string, labels: Record<string, string>, spec: Record<string, unknown>): Promise<KubeObject> {
    const body = { apiVersion: `${GROUP}/${VERSION}`, kind: KIND[kind], metadata: { name, namespace: this.namespace, labels }, spec };
    const out = (await this.bounded(`apply ${kind} ${name}`, this.co.patchNamespacedCustomObject({ ...this.target(kind, name), body, fieldManager: FIELD_MANAGER, force: true }, apply))) as KubeObject;
    this.wrote(kind, 'apply');
    return out;
  }

  /**
   * Sets the status the mirror owns (server-side apply on the status subresource), only over the
   * object version it computed it from (`resourceVersion`: else 409, and the reconcile runs again):
   * a deposed leader waking up with an old view cannot overwrite its successor's writes.
   */
  async applyStatus(kind: KindName, name: string, status: unknown, resourceVersion: string | undefined): Promise<KubeObject> {
    const body = { apiVersion: `${GROUP}/${VERSION}`, kind: KIND[kind], metadata: { name, namespace: this.namespace, ...(resourceVersion ? { resourceVersion } : {}) }, status };
    const out = (await this.bounded(`status of ${kind} ${name}`, this.co.patchNamespacedCustomObjectStatus({ ...this.target(kind, name), body, fieldManager: FIELD_MANAGER, force: true }, apply))) as KubeObject;
    this.wrote(kind, 'status');
    return out;
  }

  /** A JSON patch (RFC 6902), so a `test` op can guard it. */
  async patch(kind: KindName, name: string, ops: unknown[]): Promise<KubeObject> {
    const out = (await this.bounded(`patch ${kind} ${name}`, this.co.patchNamespacedCustomObject({ ...this.target(kind, name), body: ops, fieldManager: FIELD_MANAGER }, jsonPatch))) as KubeObject;
    this.wrote(kind, 'patch');
    return out;
  }

  /** Deletes the object if it is still the version seen (else 409 is thrown: look again); gone already is fine. */
  async delete(kind: KindName, name: string, seen: KubeObject['metadata']): Promise<void> {
    const preconditions = { ...(seen.uid ? { uid: seen.uid } : {}), ...(seen.resourceVersion ? { resourceVersion: seen.resourceVersion } : {}) };
    try {
      await this.bounded(`delete ${kind} ${name}`, this.co.deleteNamespacedCustomObject({ ...this.target(kind, name), body: { preconditions } }));
      this.wrote(kind, 'delete');
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  /**
   * A list+watch cache of one kind in the namespace (not started); `onListed` is told of each list
   * that succeeded. One no longer `wanted` when its list comes back fails instead of opening a watch
   * (client-node's stop() does not stop a list in flight).
   */
  listWatch(kind: KindName, wanted: () => boolean, onListed?: () => void): k8s.ListWatch<KubeObject & k8s.KubernetesObject> {
    const path = `/apis/${GROUP}/${VERSION}/namespaces/${this.namespace}/${PLURAL[kind]}`;
    const list = async (): Promise<k8s.KubernetesListObject<KubeObject & k8s.KubernetesObject>> => {
      const out = (await this.bounded(`list ${kind}`, this.co.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL[kind] }))) as k8s.KubernetesListObject<KubeObject & k8s.KubernetesObject>;
      if (!wanted()) throw new Error(`list of ${kind} no longer wanted (replaced or stopped)`);
      // Told after the list's objects are in the cache: ListWatch adds them right after this resolves.
      setImmediate(() => onListed?.());
      return out;
    };
    return new k8s.ListWatch(path, new k8s.Watch(this.config), list, false);
  }
}
