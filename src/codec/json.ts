import {
  binaryWordSize,
  CodecError,
  isVR,
  parseTag,
  swapBytes,
  type Tag,
  tagToHex,
  type VR,
} from '../core/index.ts';
import { type BulkRef, Dataset, type Element, type Fragment } from './dataset.ts';
import { decodeValues, type PersonName, type Value } from './values.ts';

/** One attribute of the DICOM JSON model (PS3.18 §F.2.2). */
export interface JsonAttribute {
  vr: VR;
  Value?: JsonValue[];
  InlineBinary?: string;
  BulkDataURI?: string;
}

export type JsonValue = string | number | PersonName | JsonDataset | null;
export type JsonDataset = { [tag: string]: JsonAttribute };

/** Tags of the path from the top-level data set to an element (sequence tags and item indexes). */
export type ElementPath = readonly (Tag | number)[];

export interface ToJsonOptions {
  /**
   * Returns the BulkDataURI for a bulk value, or undefined to inline it. Called for bulk references and
   * for in-memory binary values longer than `bulkThreshold`.
   */
  readonly bulkDataUri?: (element: Element, path: ElementPath) => string | undefined;
  /** In-memory binary values longer than this are offered to `bulkDataUri`. Default: always offered. */
  readonly bulkThreshold?: number;
}

const SpecificCharacterSet = 0x00080005;

/**
 * The DICOM JSON of a data set (PS3.18 Annex F): numbers for IS/DS and binary numeric VRs, PN as
 * component groups, AT as 8 hex digits, binary values as little-endian base64 InlineBinary, or a
 * BulkDataURI from the caller's builder. Iterative over nesting (an explicit stack).
 */
export function datasetToJson(ds: Dataset, options: ToJsonOptions = {}): JsonDataset {
  const root: JsonDataset = {};
  type Job = { ds: Dataset; out: JsonDataset; path: ElementPath };
  const stack: Job[] = [{ ds, out: root, path: [] }];
  while (stack.length) {
    const job = stack.pop()!;
    for (const el of job.ds) {
      // Group lengths (gggg,0000) are an encoding detail, not part of the JSON model (DCMTK's dcm2json
      // leaves them out too).
      if ((el.tag & 0xffff) === 0) continue;
      const key = tagToHex(el.tag);
      if (el.kind === 'sequence') {
        const path = [...job.path, el.tag];
        const attr: JsonAttribute = { vr: 'SQ' };
        if (el.items.length) {
          attr.Value = el.items.map((item, i) => {
            const out: JsonDataset = {};
            stack.push({ ds: item, out, path: [...path, i] });
            return out;
          });
        }
        job.out[key] = attr;
        continue;
      }
      job.out[key] = attribute(el, job.ds, job.path, options);
    }
  }
  return root;
}

/** `parent`: the path of the data set holding `el` (the element's own path is `[...parent, el.tag]`). */
function attribute(
  el: Exclude<Element, { kind: 'sequence' }>,
  ds: Dataset,
  parent: ElementPath,
  options: ToJsonOptions,
): JsonAttribute {
  const vr = el.vr;
  if (el.kind === 'bulk' || el.kind === 'encapsulated' || isBinaryVR(vr)) {
    const length =
      el.kind === 'value' ? el.bytes.length : el.kind === 'bulk' ? el.bulk.length : Number.POSITIVE_INFINITY;
    if (options.bulkDataUri && (el.kind !== 'value' || length > (options.bulkThreshold ?? -1))) {
      const uri = options.bulkDataUri(el, [...parent, el.tag]);
      if (uri !== undefined) return { vr, BulkDataURI: uri };
    }
    if (el.kind === 'bulk') {
      throw new CodecError(
        'ERR_CODEC_BULK_NOT_LOADED',
        'a bulk value is not in memory and no BulkDataURI was given for it',
        { tag: el.tag },
      );
    }
    if (el.kind === 'encapsulated')
      return { vr, InlineBinary: encapsulatedBytes(el.offsetTable, el.fragments, el.tag).toString('base64') };
    if (el.bytes.length === 0) return { vr };
    // PS3.18 §F.2.7: InlineBinary is the little-endian encoding.
    const size = binaryWordSize(vr);
    const bytes = !ds.littleEndian && size > 1 ? swapBytes(el.bytes, size) : el.bytes;
    return { vr, InlineBinary: bytes.toString('base64') };
  }
  if (el.bytes.length === 0) return { vr };
  const values = decodeValues(vr, el.bytes, ds.littleEndian, ds.characterSet);
  if (values.length === 0) return { vr };
  // `values` is a fresh array (decodeValues): converted in place.
  const out = values as JsonValue[];
  for (let i = 0; i < values.length; i++) out[i] = jsonValue(values[i]!, vr);
  return { vr, Value: out };
}

function jsonValue(v: Value, vr: VR): JsonValue {
  if (v === null) return null;
  if (vr === 'AT' && typeof v === 'number') return tagToHex(v);
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return v;
}

function isBinaryVR(vr: VR): boolean {
  return (
    vr === 'OB' || vr === 'OD' || vr === 'OF' || vr === 'OL' || vr === 'OV' || vr === 'OW' || vr === 'UN'
  );
}

/** The encapsulated value as encoded: items of fragments and the sequence delimiter (PS3.5 §A.4). */
function encapsulatedBytes(offsetTable: Fragment, fragments: readonly Fragment[], t: Tag): Buffer {
  const parts: Buffer[] = [];
  for (const f of [offsetTable, ...fragments]) {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(0xe000fffe, 0);
    head.writeUInt32LE(f.length, 4);
    if (!f.bytes && f.length > 0) {
      throw new CodecError(
        'ERR_CODEC_BULK_NOT_LOADED',
        'a fragment is not in memory and no BulkDataURI was given',
        { tag: t },
      );
    }
    parts.push(head, f.bytes ?? Buffer.alloc(0));
  }
  parts.push(Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]));
  return Buffer.concat(parts);
}

export interface FromJsonOptions {
  /** Fetches the bytes behind a BulkDataURI; without it such values read back as an error. */
  readonly bulkDataResolver?: (uri: string) => Promise<Buffer>;
}

/**
 * A data set from DICOM JSON (PS3.18 Annex F), encoded as explicit VR little endian values. Strings
 * are encoded with the JSON's own Specific Character Set; when it has none and a value is not ASCII,
 * ISO_IR 192 (UTF-8) is declared, since JSON text is Unicode.
 */
export function datasetFromJson(json: unknown, options: FromJsonOptions = {}): Dataset {
  const root = new Dataset({ littleEndian: true });
  if (!isObject(json)) throw new CodecError('ERR_CODEC_JSON', 'a DICOM JSON data set must be an object');
  if (!('00080005' in json) && /[^ -~]/.test(JSON.stringify(json))) {
    root.setValues(SpecificCharacterSet, ['ISO_IR 192'], 'CS');
  }
  const stack: { json: Record<string, unknown>; ds: Dataset }[] = [{ json, ds: root }];
  while (stack.length) {
    const { json: obj, ds } = stack.pop()!;
    // Specific Character Set first: it decides how the other strings are encoded.
    const keys = Object.keys(obj).sort((a, b) => (a === '00080005' ? -1 : b === '00080005' ? 1 : 0));
    for (const key of keys) {
      const t = parseTag(key);
      if (t === undefined || key.length !== 8)
        throw new CodecError('ERR_CODEC_JSON', `"${key}" is not a tag of 8 hex digits`);
      const attr = obj[key];
      if (!isObject(attr) || typeof attr.vr !== 'string' || !isVR(attr.vr)) {
        throw new CodecError('ERR_CODEC_JSON', `attribute ${key} has no valid "vr"`, { tag: t });
      }
      const vr = attr.vr;
      if (vr === 'SQ') {
        const items = Array.isArray(attr.Value) ? attr.Value : [];
        const datasets = items.map((item) => {
          if (!isObject(item))
            throw new CodecError('ERR_CODEC_JSON', `an item of ${key} is not an object`, { tag: t });
          const child = new Dataset({ littleEndian: true, parent: ds });
          stack.push({ json: item, ds: child });
          return child;
        });
        ds.setSequence(t, datasets, true);
        continue;
      }
      if (typeof attr.InlineBinary === 'string') {
        ds.setBytes(t, vr, Buffer.from(attr.InlineBinary, 'base64'));
        continue;
      }
      if (typeof attr.BulkDataURI === 'string') {
        ds.set({ kind: 'bulk', tag: t, vr, bulk: uriRef(attr.BulkDataURI, t, options) });
        continue;
      }
      const values = Array.isArray(attr.Value) ? attr.Value : [];
      if (values.length === 0) {
        ds.setBytes(t, vr, Buffer.alloc(0));
        continue;
      }
      ds.setValues(
        t,
        values.map((v) => fromJsonValue(v, vr, t)),
        vr,
      );
    }
  }
  return root;
}

function fromJsonValue(v: unknown, vr: VR, t: Tag): Value {
  if (v === null) return null;
  if (vr === 'AT') {
    const at = typeof v === 'string' ? parseTag(v) : undefined;
    if (at === undefined)
      throw new CodecError('ERR_CODEC_JSON', `AT value ${JSON.stringify(v)} is not 8 hex digits`, { tag: t });
    return at;
  }
  if (vr === 'PN') {
    if (isObject(v)) return v as PersonName;
    if (typeof v === 'string') return { Alphabetic: v };
  }
  if (typeof v === 'string' || typeof v === 'number') return v;
  throw new CodecError('ERR_CODEC_JSON', `value ${JSON.stringify(v)} does not fit VR ${vr}`, { tag: t });
}

function uriRef(uri: string, t: Tag, options: FromJsonOptions): BulkRef {
  const resolver = options.bulkDataResolver;
  return {
    offset: 0,
    length: -1,
    read: resolver
      ? () => resolver(uri)
      : () =>
          Promise.reject(
            new CodecError('ERR_CODEC_BULK_UNAVAILABLE', `no resolver for BulkDataURI ${uri}`, { tag: t }),
          ),
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
