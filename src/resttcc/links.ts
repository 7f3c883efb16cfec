/**
 * REST-TCC participant links (Atomikos' protocol, docs/rest-tcc.md): what a participant's Try
 * answers, `{ "participantLink": { "uri", "expires" } }`, and what a coordinator's confirm and
 * cancel take, `{ "participantLinks": [...] }`. Parsed and validated here, with the field named.
 */
import { ValidationError } from '../errors.js';

/** The media type of a coordinator request's body; `application/json` is accepted too. */
export const TCC_JSON = 'application/tcc+json';
/** Sent as `Accept` with every PUT (confirm) and DELETE (cancel) to a participant. */
export const TCC_ACCEPT = 'application/tcc';
/** At most this many links in one confirm or cancel (api/openapi.yaml): one txloop transaction holds them. */
export const MAX_LINKS = 40;

/** A link as the wire carries it: where to confirm (PUT) or cancel (DELETE), and until when. */
export interface ParticipantLink {
  uri: string;
  /** RFC 3339, e.g. `2014-01-11T10:15:54Z` or `2014-01-11T10:15:54+01:00`. */
  expires: string;
}

/** A validated link: its URL and its expiry in epoch ms. */
export interface ParsedLink extends ParticipantLink {
  url: URL;
  expiresAt: number;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** Epoch ms of an RFC 3339 date-time, or a ValidationError naming `field`. */
export function parseExpires(value: unknown, field: string): number {
  const at = typeof value === 'string' && RFC3339.test(value) ? Date.parse(value.replace(' ', 'T')) : NaN;
  if (!Number.isFinite(at)) throw new ValidationError(field, `must be an RFC 3339 date-time with its offset, e.g. "2014-01-11T10:15:54Z", got ${JSON.stringify(value)}`);
  return at;
}

/** One link, validated: an absolute http(s) URI of at most 2000 characters and an RFC 3339 expiry. */
export function parseLink(value: unknown, field = 'participantLink'): ParsedLink {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(field, 'must be an object { uri, expires }');
  const { uri, expires } = value as Record<string, unknown>;
  let url: URL | undefined;
  if (typeof uri === 'string' && uri.length <= 2000) {
    try {
      url = new URL(uri);
    } catch {
      url = undefined;
    }
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new ValidationError(`${field}.uri`, `must be an absolute http(s) URI of at most 2000 characters, got ${JSON.stringify(uri)?.slice(0, 200)}`);
  return { uri: uri as string, expires: expires as string, url, expiresAt: parseExpires(expires, `${field}.expires`) };
}

/** The links of a coordinator request (`{ participantLinks: [...] }`, or the array itself): 1 to MAX_LINKS, no URI twice. */
export function parseLinks(value: unknown): ParsedLink[] {
  const list = Array.isArray(value) ? value : typeof value === 'object' && value !== null ? (value as Record<string, unknown>).participantLinks : undefined;
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_LINKS) {
    throw new ValidationError('participantLinks', `must be an array of 1 to ${MAX_LINKS} links { uri, expires }${Array.isArray(list) ? `, got ${list.length}` : ''}`);
  }
  const links = list.map((l, i) => parseLink(l, `participantLinks[${i}]`));
  const seen = new Set<string>();
  links.forEach((l, i) => {
    if (seen.has(l.url.href)) throw new ValidationError(`participantLinks[${i}].uri`, `${l.uri} is given twice`);
    seen.add(l.url.href);
  });
  return links;
}

/** The link a participant's Try answered (`{ participantLink: { uri, expires } }`). */
export function parseLinkAnswer(body: unknown): ParsedLink {
  if (typeof body !== 'object' || body === null || !('participantLink' in body)) throw new ValidationError('participantLink', 'the Try answer must be { "participantLink": { "uri", "expires" } }');
  return parseLink((body as { participantLink: unknown }).participantLink);
}

/** Who settles a link's branch when its participant does: `participant:<host>`. */
export function participantOf(url: URL): string {
  return `participant:${url.host}`;
}
