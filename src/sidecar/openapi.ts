/**
 * The sidecar's HTTP contract, api/openapi.yaml, as the server uses it: every route's request
 * schemas (body, path, query) with their `$ref`s resolved, so fastify validates requests against
 * the same document the Go client follows; and the document itself, served at /openapi.json.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

type Schema = Record<string, unknown>;

export interface RouteSchemas {
  body?: Schema;
  params?: Schema;
  querystring?: Schema;
}

export interface OpenApi {
  /** The document, as JSON. */
  readonly document: Record<string, unknown>;
  /** The request schemas of the operation `operationId`. */
  route(operationId: string): RouteSchemas;
}

const FILE = new URL('../../api/openapi.yaml', import.meta.url);

export function loadOpenApi(): OpenApi {
  const document = parseYaml(readFileSync(FILE, 'utf8')) as Record<string, unknown>;
  const resolve = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(resolve);
    if (typeof node !== 'object' || node === null) return node;
    const ref = (node as { $ref?: unknown }).$ref;
    if (typeof ref === 'string') {
      const target = ref
        .replace(/^#\//, '')
        .split('/')
        .reduce<unknown>((at, part) => (at as Record<string, unknown> | undefined)?.[part], document);
      if (target === undefined) throw new Error(`api/openapi.yaml: unresolved $ref ${ref}`);
      return resolve(target);
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, resolve(v)]));
  };
  const operations = new Map<string, RouteSchemas>();
  for (const item of Object.values((document.paths ?? {}) as Record<string, Record<string, unknown>>)) {
    const shared = (item.parameters ?? []) as unknown[];
    for (const [method, raw] of Object.entries(item)) {
      if (!['get', 'post', 'put', 'delete'].includes(method)) continue;
      const op = raw as { operationId?: string; parameters?: unknown[]; requestBody?: { content?: Record<string, { schema?: unknown }> } };
      if (!op.operationId) continue;
      const params = [...shared, ...(op.parameters ?? [])].map(resolve) as { name: string; in: string; required?: boolean; schema: Schema }[];
      const schemas: RouteSchemas = {};
      const group = (where: string): Schema | undefined => {
        const ps = params.filter((p) => p.in === where);
        if (ps.length === 0) return undefined;
        return { type: 'object', properties: Object.fromEntries(ps.map((p) => [p.name, p.schema])), required: ps.filter((p) => p.required).map((p) => p.name) };
      };
      const path = group('path');
      const query = group('query');
      if (path) schemas.params = path;
      if (query) schemas.querystring = query;
      const content = op.requestBody?.content;
      const body = content?.['application/json']?.schema ?? content?.['application/tcc+json']?.schema;
      if (body) schemas.body = resolve(body) as Schema;
      operations.set(op.operationId, schemas);
    }
  }
  return {
    document,
    route(operationId) {
      const s = operations.get(operationId);
      if (!s) throw new Error(`api/openapi.yaml has no operation ${operationId}`);
      return s;
    },
  };
}
