/**
 * A DICOM attribute tag as one unsigned 32-bit number: group in the high 16 bits, element in the
 * low 16 bits (PS3.5 §7.1.1). Never a hex string in the internal model.
 */
export type Tag = number;

/** Builds a tag from its group and element numbers. */
export function tag(group: number, element: number): Tag {
  return ((group & 0xffff) * 0x10000 + (element & 0xffff)) >>> 0;
}

export function tagGroup(t: Tag): number {
  return t >>> 16;
}

export function tagElement(t: Tag): number {
  return t & 0xffff;
}

/** `(0010,0010)` — the way DCMTK and the standard print a tag. */
export function formatTag(t: Tag): string {
  return `(${hex4(t >>> 16)},${hex4(t & 0xffff)})`;
}

/** `00100010` — the form used as a key by the DICOM JSON model (PS3.18 §F.2.1.1). */
export function tagToHex(t: Tag): string {
  let hex = hexByTag.get(t);
  if (hex === undefined) {
    hex = (t >>> 0).toString(16).toUpperCase().padStart(8, '0');
    if (hexByTag.size < HEX_CACHE_SIZE) hexByTag.set(t, hex);
  }
  return hex;
}

/**
 * The hex strings of the tags seen so far (a data set's tags recur in every instance): one lookup
 * instead of three string allocations, and the same string each time, which V8 has already
 * internalized when it is used as a property name (DICOM JSON keys).
 */
const hexByTag = new Map<number, string>();
const HEX_CACHE_SIZE = 65_536;

/** Parses `00100010`, `0010,0010` or `(0010,0010)`; returns undefined for anything else. */
export function parseTag(text: string): Tag | undefined {
  const m = /^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$/.exec(text.trim());
  if (!m) return undefined;
  return tag(Number.parseInt(m[1]!, 16), Number.parseInt(m[2]!, 16));
}

/** Private data elements have an odd group number (PS3.5 §7.8.1); groups 1, 3, 5, 7 and FFFF are not private. */
export function isPrivateTag(t: Tag): boolean {
  const g = t >>> 16;
  return (g & 1) === 1 && g > 8 && g !== 0xffff;
}

/** (gggg,0010-00FF) in a private group reserve a block of elements (PS3.5 §7.8.1). */
export function isPrivateCreator(t: Tag): boolean {
  const e = t & 0xffff;
  return isPrivateTag(t) && e >= 0x10 && e <= 0xff;
}

/** Group length elements (gggg,0000). */
export function isGroupLength(t: Tag): boolean {
  return (t & 0xffff) === 0;
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/** Item, Item Delimitation and Sequence Delimitation tags (PS3.5 §7.5). */
export const ItemTag = 0xfffee000;
export const ItemDelimitationTag = 0xfffee00d;
export const SequenceDelimitationTag = 0xfffee0dd;
/** Pixel Data (7FE0,0010), Float and Double Float Pixel Data. */
export const PixelDataTag = 0x7fe00010;
export const FloatPixelDataTag = 0x7fe00008;
export const DoubleFloatPixelDataTag = 0x7fe00009;
/** The value of a length field that means "undefined length" (PS3.5 §7.1.1). */
export const UndefinedLength = 0xffffffff;
