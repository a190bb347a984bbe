import {
  CodecError,
  isSingleValuedText,
  isStringVR,
  paddingByte,
  type Tag,
  usesCharacterSet,
  type VR,
} from '../core/index.ts';
import { type CharacterSet, decodeText, encodeText } from './charset.ts';

/** A Person Name value split into its component groups (PS3.5 §6.2.1). */
export interface PersonName {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}

/** One decoded value: null stands for an empty value inside a multi-valued element. */
export type Value = string | number | bigint | PersonName | null;

/** The text of a string VR value, with the right character set (PS3.5 §6.1.2.3). */
export function decodeString(bytes: Uint8Array, vr: VR, cs: CharacterSet): string {
  if (usesCharacterSet(vr)) return decodeText(bytes, cs, vr);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

/**
 * Splits and trims a string value into its values (PS3.5 §6.2): backslash-delimited except LT, ST,
 * UT and UR; trailing spaces (and NUL for UI) removed; leading spaces too except for text VRs.
 */
export function splitStrings(text: string, vr: VR): string[] {
  if (isSingleValuedText(vr)) return text.length === 0 ? [] : [trimEnd(text, vr)];
  if (text.length === 0) return [];
  // Most values are single: no split (a runtime call) and no closure.
  if (!text.includes('\\')) return [trimValue(text, vr)];
  return text.split('\\').map((v) => trimValue(v, vr));
}

function trimEnd(s: string, vr: VR): string {
  let end = s.length;
  while (end > 0) {
    const c = s.charCodeAt(end - 1);
    if (c === 0x20 || (c === 0 && (vr === 'UI' || vr === 'UR' || vr === 'UT' || vr === 'LT' || vr === 'ST')))
      end--;
    else if (c === 0) end--;
    else break;
  }
  return s.slice(0, end);
}

function trimValue(s: string, vr: VR): string {
  const t = trimEnd(s, vr);
  if (
    vr === 'UC' ||
    vr === 'PN' ||
    vr === 'LO' ||
    vr === 'SH' ||
    vr === 'AE' ||
    vr === 'CS' ||
    vr === 'DS' ||
    vr === 'IS' ||
    vr === 'DA' ||
    vr === 'TM' ||
    vr === 'DT' ||
    vr === 'AS'
  ) {
    let i = 0;
    while (i < t.length && t.charCodeAt(i) === 0x20) i++;
    return t.slice(i);
  }
  return t;
}

/** Decodes a whole element value into its values, per VR. Binary OB/OW-like VRs are not decoded here. */
export function decodeValues(vr: VR, bytes: Uint8Array, littleEndian: boolean, cs: CharacterSet): Value[] {
  if (isStringVR(vr)) {
    const parts = splitStrings(decodeString(bytes, vr, cs), vr);
    switch (vr) {
      case 'DS':
      case 'IS':
        return allEmpty(parts) ? [] : parts.map((p) => (p === '' ? null : parseNumber(p, vr)));
      case 'PN': {
        const names = parts.map((p) => parsePersonName(p));
        return names.every(isEmptyName) ? [] : names.map((n) => (isEmptyName(n) ? null : n));
      }
      default: {
        if (allEmpty(parts)) return [];
        // `parts` is ours: empty values become null in place.
        const out: Value[] = parts;
        for (let i = 0; i < out.length; i++) if (out[i] === '') out[i] = null;
        return out;
      }
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out: Value[] = [];
  const le = littleEndian;
  switch (vr) {
    case 'US':
      for (let i = 0; i + 2 <= bytes.length; i += 2) out.push(view.getUint16(i, le));
      return out;
    case 'SS':
      for (let i = 0; i + 2 <= bytes.length; i += 2) out.push(view.getInt16(i, le));
      return out;
    case 'UL':
      for (let i = 0; i + 4 <= bytes.length; i += 4) out.push(view.getUint32(i, le));
      return out;
    case 'SL':
      for (let i = 0; i + 4 <= bytes.length; i += 4) out.push(view.getInt32(i, le));
      return out;
    case 'FL':
      for (let i = 0; i + 4 <= bytes.length; i += 4) out.push(shortestFloat32(view.getFloat32(i, le)));
      return out;
    case 'FD':
      for (let i = 0; i + 8 <= bytes.length; i += 8) out.push(view.getFloat64(i, le));
      return out;
    case 'SV':
      for (let i = 0; i + 8 <= bytes.length; i += 8) out.push(view.getBigInt64(i, le));
      return out;
    case 'UV':
      for (let i = 0; i + 8 <= bytes.length; i += 8) out.push(view.getBigUint64(i, le));
      return out;
    case 'AT':
      for (let i = 0; i + 4 <= bytes.length; i += 4)
        out.push((view.getUint16(i, le) * 0x10000 + view.getUint16(i + 2, le)) >>> 0);
      return out;
    default:
      throw new CodecError('ERR_CODEC_NOT_DECODABLE', `values of VR ${vr} are bytes, not decodable values`);
  }
}

/** The shortest decimal that reads back as the same 32-bit float (so FL 9.7 is 9.7, not 9.699999809...). */
function shortestFloat32(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  for (let p = 1; p < 9; p++) {
    const x = Number(v.toPrecision(p));
    if (Math.fround(x) === v) return x;
  }
  return Number(v.toPrecision(9));
}

function allEmpty(parts: readonly string[]): boolean {
  return parts.every((p) => p === '');
}

const IS_PATTERN = /^[+-]?[0-9]+$/;
const DS_PATTERN = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;

/**
 * An IS or DS value as a number when it is a valid one (PS3.5 Table 6.2-1: IS within 32 bits); an
 * invalid value is kept as its text rather than lost or thrown on, as DCMTK's JSON writer does.
 */
function parseNumber(text: string, vr: VR): number | string {
  if (vr === 'IS') {
    if (!IS_PATTERN.test(text)) return text;
    const n = Number(text);
    return n >= -2147483648 && n <= 2147483647 ? n : text;
  }
  if (!DS_PATTERN.test(text)) return text;
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
}

function isEmptyName(pn: PersonName): boolean {
  return pn.Alphabetic === undefined && pn.Ideographic === undefined && pn.Phonetic === undefined;
}

/**
 * Splits a PN value into its component groups (PS3.5 §6.2.1). Trailing empty components and their
 * `^` delimiters are dropped, as the standard allows, so `DOE^JOHN^^^` reads as `DOE^JOHN`.
 */
export function parsePersonName(text: string): PersonName {
  const [alphabetic, ideographic, phonetic] = text.split('=').map((g) => g.replace(/\^+$/, ''));
  const pn: PersonName = {};
  if (alphabetic) pn.Alphabetic = alphabetic;
  if (ideographic) pn.Ideographic = ideographic;
  if (phonetic) pn.Phonetic = phonetic;
  return pn;
}

export function formatPersonName(pn: PersonName): string {
  const groups = [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''];
  while (groups.length > 1 && groups[groups.length - 1] === '') groups.pop();
  return groups.join('=');
}

/** Encodes values of a VR into bytes padded to even length (PS3.5 §7.1.1). */
export function encodeValues(
  vr: VR,
  values: readonly Value[],
  littleEndian: boolean,
  cs: CharacterSet,
  t?: Tag,
): Buffer {
  if (isStringVR(vr)) {
    const parts = values.map((v) => formatValue(v, vr, t));
    const text = isSingleValuedText(vr) ? (parts[0] ?? '') : parts.join('\\');
    const bytes = usesCharacterSet(vr) ? encodeText(text, cs, vr) : Buffer.from(text, 'latin1');
    return padEven(bytes, vr);
  }
  const size = fixedSize(vr);
  if (size === 0)
    throw new CodecError('ERR_CODEC_NOT_ENCODABLE', `values of VR ${vr} must be given as bytes`, { tag: t });
  const buf = Buffer.alloc(size * values.length);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const le = littleEndian;
  values.forEach((v, i) => {
    const at = i * size;
    if (vr === 'SV' || vr === 'UV') {
      const b = typeof v === 'bigint' ? v : BigInt(asNumber(v, vr, t));
      if (vr === 'SV') view.setBigInt64(at, b, le);
      else view.setBigUint64(at, b, le);
      return;
    }
    const n = asNumber(v, vr, t);
    switch (vr) {
      case 'US':
        view.setUint16(at, n, le);
        break;
      case 'SS':
        view.setInt16(at, n, le);
        break;
      case 'UL':
        view.setUint32(at, n, le);
        break;
      case 'SL':
        view.setInt32(at, n, le);
        break;
      case 'FL':
        view.setFloat32(at, n, le);
        break;
      case 'FD':
        view.setFloat64(at, n, le);
        break;
      case 'AT':
        view.setUint16(at, n >>> 16, le);
        view.setUint16(at + 2, n & 0xffff, le);
        break;
    }
  });
  return buf;
}

function fixedSize(vr: VR): number {
  switch (vr) {
    case 'US':
    case 'SS':
      return 2;
    case 'UL':
    case 'SL':
    case 'FL':
    case 'AT':
      return 4;
    case 'FD':
    case 'SV':
    case 'UV':
      return 8;
    default:
      return 0;
  }
}

function asNumber(v: Value, vr: VR, t: Tag | undefined): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
  throw new CodecError('ERR_CODEC_NOT_ENCODABLE', `${JSON.stringify(v)} is not a number for VR ${vr}`, {
    tag: t,
  });
}

function formatValue(v: Value, vr: VR, t: Tag | undefined): string {
  if (v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') {
    if (vr === 'DS') return formatDS(Number(v));
    return String(v);
  }
  if (vr === 'PN') return formatPersonName(v);
  throw new CodecError('ERR_CODEC_NOT_ENCODABLE', `a Person Name object is not a value of VR ${vr}`, {
    tag: t,
  });
}

/** DS values are at most 16 characters (PS3.5 Table 6.2-1). */
export function formatDS(n: number): string {
  let s = String(n);
  if (s.length <= 16) return s;
  for (let digits = 15; digits > 0; digits--) {
    s = n.toPrecision(digits).replace(/\.?0+(e|$)/, '$1');
    if (s.length <= 16) return s;
  }
  return s;
}

function padEven(bytes: Buffer, vr: VR): Buffer {
  if (bytes.length % 2 === 0) return bytes;
  const out = Buffer.alloc(bytes.length + 1, paddingByte(vr));
  bytes.copy(out);
  return out;
}
