/**
 * Media types of DICOMweb (PS3.18 8.7) and the HTTP header syntax around them: Content-Type
 * parsing, Accept parsing with q-values, and the choice of a representation among the server's
 * offers (PS3.18 8.7.3 "Acceptable Media Types", RFC 9110 12.5.1).
 *
 * Pure functions over strings: no Node API, usable by the server and the browser client alike.
 */
import { DicomError } from '../core/index.ts';

/** The media types PS3.18 names (Table 8.7.3-1 to -5, 8.7.4-1), lower case except video/H265. */
export const MediaType = {
  DICOM: 'application/dicom',
  DICOM_JSON: 'application/dicom+json',
  DICOM_XML: 'application/dicom+xml',
  JSON: 'application/json',
  OCTET_STREAM: 'application/octet-stream',
  MULTIPART_RELATED: 'multipart/related',
  ZIP: 'application/zip',
  PDF: 'application/pdf',
  JPEG: 'image/jpeg',
  JLS: 'image/jls',
  JP2: 'image/jp2',
  JPX: 'image/jpx',
  JPHC: 'image/jphc',
  DICOM_RLE: 'image/dicom-rle',
  PNG: 'image/png',
  GIF: 'image/gif',
  MPEG: 'video/mpeg',
  MP4: 'video/mp4',
  H265: 'video/H265',
  TEXT: 'text/plain',
  HTML: 'text/html',
  XML: 'text/xml',
} as const;

/** Explicit VR Little Endian: the default transfer syntax of application/dicom and uncompressed bulk data. */
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/**
 * The transfer syntax implied when a media type is asked for without a `transfer-syntax` parameter
 * (PS3.18 Table 8.7.3-3 for application/dicom and octet-stream, Table 8.7.3-5 column "D" for
 * compressed bulk data). Keys are lower case.
 */
export const DEFAULT_TRANSFER_SYNTAX: Readonly<Record<string, string>> = {
  'application/dicom': EXPLICIT_VR_LITTLE_ENDIAN,
  'application/octet-stream': EXPLICIT_VR_LITTLE_ENDIAN,
  'image/jpeg': '1.2.840.10008.1.2.4.70',
  'image/dicom-rle': '1.2.840.10008.1.2.5',
  'image/jls': '1.2.840.10008.1.2.4.80',
  'image/jp2': '1.2.840.10008.1.2.4.90',
  'image/jpx': '1.2.840.10008.1.2.4.92',
  'image/jphc': '1.2.840.10008.1.2.4.201',
  'video/mpeg': '1.2.840.10008.1.2.4.100',
  'video/mp4': '1.2.840.10008.1.2.4.102',
  'video/h265': '1.2.840.10008.1.2.4.107',
};

/** A parsed media type: `type` is `type/subtype` in lower case, parameter names lower case, values unquoted. */
export interface ParsedMediaType {
  readonly type: string;
  readonly params: Readonly<Record<string, string>>;
}

/** One media range of an Accept header, with its quality (0 to 1). */
export interface MediaRange extends ParsedMediaType {
  readonly q: number;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Splits a header value at `separator` outside quoted strings. Quoted strings keep their quotes;
 * the pieces are trimmed.
 */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === separator) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  return out;
}

function unquote(value: string): string | undefined {
  if (!value.startsWith('"')) return value;
  if (value.length < 2 || !value.endsWith('"')) return undefined;
  return value.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** Parses `type/subtype; a=b; c="d e"`; undefined when it is not of that form. */
function parseOne(text: string): ParsedMediaType | undefined {
  const [head = '', ...rest] = splitOutsideQuotes(text, ';');
  const slash = head.indexOf('/');
  if (slash <= 0 || !TOKEN.test(head.slice(0, slash)) || !TOKEN.test(head.slice(slash + 1))) return undefined;
  const params: Record<string, string> = {};
  for (const piece of rest) {
    if (piece === '') continue; // `a/b;` and `a/b; ; c=d` are tolerated
    const eq = piece.indexOf('=');
    if (eq <= 0) return undefined;
    const name = piece.slice(0, eq).trim().toLowerCase();
    // Unquoted values are taken up to the next `;` even when they hold `/` (not a token character):
    // `type=application/dicom` is what many DICOMweb clients send.
    const value = unquote(piece.slice(eq + 1).trim());
    if (!TOKEN.test(name) || value === undefined) return undefined;
    params[name] = value;
  }
  return { type: head.toLowerCase(), params };
}

/**
 * Parses a Content-Type header: `multipart/related; type="application/dicom"; boundary="abc def"`
 * gives `{ type: 'multipart/related', params: { type: 'application/dicom', boundary: 'abc def' } }`.
 * Throws ERR_DICOMWEB_BAD_MEDIA_TYPE when the header is not a media type.
 */
export function parseContentType(header: string): ParsedMediaType {
  const parsed = parseOne(header.trim());
  if (!parsed) {
    throw new DicomError(
      'ERR_DICOMWEB_BAD_MEDIA_TYPE',
      `"${header}" is not a media type (type/subtype; name=value)`,
    );
  }
  return parsed;
}

/** A parameter value as written in a header: as is when a token, else quoted. */
function formatParam(value: string): string {
  return TOKEN.test(value) ? value : `"${value.replace(/(["\\])/g, '\\$1')}"`;
}

/** `type; name=value; ...`, values quoted where needed (the inverse of parseContentType). */
export function formatMediaType(type: string, params: Readonly<Record<string, string>> = {}): string {
  return [type, ...Object.entries(params).map(([k, v]) => `${k}=${formatParam(v)}`)].join('; ');
}

/** The Content-Type of a multipart/related body of `type` parts: `multipart/related; type="..."; boundary=...`. */
export function multipartContentType(type: string, boundary: string): string {
  return formatMediaType(MediaType.MULTIPART_RELATED, { type, boundary });
}

/**
 * Parses an Accept header into media ranges, best first (by q, then by specificity, then by
 * order). An absent or empty header is `*\/*`. Malformed ranges and invalid q-values are left out
 * (RFC 9110 lets a server ignore what it cannot parse), so a header of only malformed ranges
 * accepts nothing.
 */
export function parseAccept(header: string | null | undefined): MediaRange[] {
  if (header === undefined || header === null || header.trim() === '')
    return [{ type: '*/*', params: {}, q: 1 }];
  const ranges: { range: MediaRange; order: number }[] = [];
  splitOutsideQuotes(header, ',').forEach((text, order) => {
    if (text === '') return;
    const parsed = parseOne(text);
    if (!parsed) return;
    const { q: qText, ...params } = parsed.params;
    let q = 1;
    if (qText !== undefined) {
      if (!/^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(qText)) return;
      q = Number(qText);
    }
    ranges.push({ range: { type: parsed.type, params, q }, order });
  });
  return ranges
    .sort((a, b) => b.range.q - a.range.q || specificity(b.range) - specificity(a.range) || a.order - b.order)
    .map((r) => r.range);
}

function specificity(range: ParsedMediaType): number {
  if (range.type === '*/*') return 0;
  if (range.type.endsWith('/*')) return 1;
  return (
    2 + (range.params.type !== undefined ? 1 : 0) + (range.params['transfer-syntax'] !== undefined ? 1 : 0)
  );
}

/** A representation the server can produce for the target resource. */
export interface MediaTypeOffer {
  /** `type/subtype`, e.g. `multipart/related` or `application/dicom+json`. */
  readonly type: string;
  /** For multipart/related: `{ type: 'application/dicom' }` (the media type of the parts). */
  readonly params?: Readonly<Record<string, string>>;
  /**
   * Transfer syntaxes the server can produce in this representation, in its order of preference.
   * `'*'` stands for "as stored" (what `transfer-syntax=*` asks for). Absent for media types without
   * a transfer syntax (JSON, XML).
   */
  readonly transferSyntaxes?: readonly string[];
}

export type Negotiation =
  | {
      readonly ok: true;
      readonly offer: MediaTypeOffer;
      /** The media type to answer with (without boundary): `multipart/related; type="application/dicom"`. */
      readonly mediaType: string;
      /** The transfer syntax to produce: a UID, `'*'` (as stored), or undefined for media types without one. */
      readonly transferSyntax: string | undefined;
      readonly q: number;
    }
  | {
      readonly ok: false;
      readonly status: 406;
      /** For the 406 response body. */
      readonly message: string;
      /** The representations that could have been asked for. */
      readonly supported: readonly string[];
    };

/** The media type of the representation's content: the `type` parameter of a multipart offer, else its type. */
function contentTypeOf(type: string, params: Readonly<Record<string, string>>): string | undefined {
  return type === MediaType.MULTIPART_RELATED ? params.type?.toLowerCase() : type;
}

function typeMatches(pattern: string, type: string): boolean {
  if (pattern === '*/*') return true;
  if (pattern.endsWith('/*')) return type.startsWith(pattern.slice(0, -1));
  return pattern === type.toLowerCase();
}

/**
 * The transfer syntax a range asks of an offer, or null when the offer cannot produce it.
 * PS3.18 8.7.3.5: without a `transfer-syntax` parameter a media type implies its default transfer
 * syntax (Explicit VR Little Endian for application/dicom); `*` lets the server choose.
 */
function transferSyntaxFor(range: MediaRange, offer: MediaTypeOffer, contentType: string | undefined) {
  const offered = offer.transferSyntaxes;
  if (offered === undefined || offered.length === 0) return undefined;
  const asked = range.params['transfer-syntax'];
  if (asked === '*') return offered[0];
  if (asked !== undefined) return offered.includes(asked) ? asked : null;
  const implied = contentType === undefined ? undefined : DEFAULT_TRANSFER_SYNTAX[contentType];
  if (implied !== undefined && offered.includes(implied)) return implied;
  // A wild-card range (`*/*`, `multipart/related` without type) constrains nothing: the server's choice.
  const wild =
    range.type.endsWith('/*') || (range.type === MediaType.MULTIPART_RELATED && !range.params.type);
  return wild ? offered[0] : null;
}

/**
 * Chooses the representation to answer with: for each offer the most specific matching range gives
 * its quality (RFC 9110 12.5.1); the offer of highest quality wins, ties going to the earlier offer
 * (the server's preference). A range matches an offer when the types match (wild cards allowed), the
 * `type` parameter of multipart/related (when given) names the offer's part type, and the transfer
 * syntax asked (explicitly or by default) is one the offer produces. Nothing acceptable: a 406 answer.
 */
export function negotiate(accept: string | null | undefined, offers: readonly MediaTypeOffer[]): Negotiation {
  const ranges = parseAccept(accept);
  let best: Extract<Negotiation, { ok: true }> | undefined;
  for (const offer of offers) {
    const params = offer.params ?? {};
    const contentType = contentTypeOf(offer.type, params);
    let chosen: { range: MediaRange; ts: string | undefined } | undefined;
    for (const range of ranges) {
      if (!typeMatches(range.type, offer.type)) continue;
      const wantedPart = range.params.type?.toLowerCase();
      if (
        offer.type === MediaType.MULTIPART_RELATED &&
        wantedPart !== undefined &&
        wantedPart !== contentType
      )
        continue;
      const ts = transferSyntaxFor(range, offer, contentType);
      if (ts === null) continue;
      if (
        !chosen ||
        specificity(range) > specificity(chosen.range) ||
        (specificity(range) === specificity(chosen.range) && range.q > chosen.range.q)
      )
        chosen = { range, ts };
    }
    if (!chosen || chosen.range.q <= 0) continue;
    if (!best || chosen.range.q > best.q) {
      best = {
        ok: true,
        offer,
        mediaType: formatMediaType(offer.type, params),
        transferSyntax: chosen.ts,
        q: chosen.range.q,
      };
    }
  }
  if (best) return best;
  const supported = offers.map((o) =>
    formatMediaType(o.type, {
      ...(o.params ?? {}),
      ...(o.transferSyntaxes?.length ? { 'transfer-syntax': o.transferSyntaxes.join(',') } : {}),
    }),
  );
  return {
    ok: false,
    status: 406,
    message: `none of the media types accepted (${accept ?? '*/*'}) can be produced; available: ${supported.join(', ')}`,
    supported,
  };
}
