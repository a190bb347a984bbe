import { CodecError, isStringVR, paddingByte, type Tag, type VR } from '../core/index.ts';
import { lookupTag } from '../dictionary/index.ts';
import { type CharacterSet, DEFAULT_CHARACTER_SET, parseCharacterSet } from './charset.ts';
import { decodeString, decodeValues, encodeValues, splitStrings, type Value } from './values.ts';

/** Where a large value lives when it was not kept in memory: an offset and length in a source. */
export interface BulkRef {
  /** Absolute offset of the value's first byte in the source (the file or stream it was read from). */
  readonly offset: number;
  readonly length: number;
  /** Reads the value's bytes; throws ERR_CODEC_BULK_UNAVAILABLE when the source cannot be read again. */
  read(): Promise<Buffer>;
}

interface ElementBase {
  readonly tag: Tag;
  readonly vr: VR;
}

/** A value held as the bytes it was encoded with (in the data set's byte order); decoded on access. */
export interface ValueElement extends ElementBase {
  readonly kind: 'value';
  readonly bytes: Buffer;
}

/** A large value left where it was read (PS3.18 bulk data), in the data set's byte order. */
export interface BulkElement extends ElementBase {
  readonly kind: 'bulk';
  readonly bulk: BulkRef;
}

export interface SequenceElement extends ElementBase {
  readonly kind: 'sequence';
  readonly items: Dataset[];
  /** Written with undefined length (as read, or by choice). */
  undefinedLength: boolean;
}

/** One item of encapsulated Pixel Data (PS3.5 §A.4): the bytes, or a reference to them. */
export interface Fragment {
  readonly length: number;
  /** Absolute offset of the fragment's value, when it was read from a source. */
  readonly offset?: number;
  readonly bytes?: Buffer;
  readonly bulk?: BulkRef;
  /**
   * The value's first bytes (up to FRAGMENT_HEAD_BYTES), kept when the value itself is a reference:
   * enough to see where a frame starts (a JPEG SOI, a JPEG 2000 SOC or box) without reading it.
   */
  readonly head?: Buffer;
}

/** Bytes of a referenced fragment kept as its `head`. */
export const FRAGMENT_HEAD_BYTES = 12;

/** Encapsulated Pixel Data: the Basic Offset Table item, then the fragments. */
export interface EncapsulatedElement extends ElementBase {
  readonly kind: 'encapsulated';
  readonly offsetTable: Fragment;
  readonly fragments: Fragment[];
}

export type Element = ValueElement | BulkElement | SequenceElement | EncapsulatedElement;

const SpecificCharacterSet = 0x00080005;
const BINARY_VRS: ReadonlySet<VR> = new Set<VR>(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
const PixelRepresentation = 0x00280103;

export interface DatasetOptions {
  /** Byte order of the raw values this data set holds. */
  readonly littleEndian?: boolean;
  /** The enclosing data set, whose Specific Character Set applies unless this one has its own. */
  readonly parent?: Dataset | undefined;
}

/**
 * A data set: elements in tag order, each kept as encoded bytes and decoded on first access
 * (fo-dicom's habit), large values as references. Items of sequences are Datasets too.
 */
export class Dataset implements Iterable<Element> {
  readonly littleEndian: boolean;
  parent: Dataset | undefined;
  /** For an item: whether it was (or is to be) written with undefined length. */
  undefinedLength = false;
  private readonly map = new Map<Tag, Element>();
  private sorted = true;
  private lastTag = -1;
  private cs: CharacterSet | undefined;

  constructor(options: DatasetOptions = {}) {
    this.littleEndian = options.littleEndian ?? true;
    this.parent = options.parent;
  }

  get size(): number {
    return this.map.size;
  }

  has(t: Tag): boolean {
    return this.map.has(t);
  }

  get(t: Tag): Element | undefined {
    return this.map.get(t);
  }

  /** Adds or replaces an element. */
  set(element: Element): void {
    if (element.tag === SpecificCharacterSet) this.cs = undefined;
    if (element.tag < this.lastTag && !this.map.has(element.tag)) this.sorted = false;
    else if (element.tag > this.lastTag) this.lastTag = element.tag;
    this.map.set(element.tag, element);
  }

  delete(t: Tag): boolean {
    if (t === SpecificCharacterSet) this.cs = undefined;
    return this.map.delete(t);
  }

  /** Elements in ascending tag order (PS3.5 §7.1). */
  [Symbol.iterator](): Iterator<Element> {
    if (!this.sorted) {
      const entries = [...this.map.entries()].sort((a, b) => a[0] - b[0]);
      this.map.clear();
      for (const [k, v] of entries) this.map.set(k, v);
      this.sorted = true;
      this.lastTag = entries.length ? entries[entries.length - 1]![0] : -1;
    }
    return this.map.values();
  }

  /** The Specific Character Set in force: this data set's own (0008,0005), else its parent's. */
  get characterSet(): CharacterSet {
    if (this.cs) return this.cs;
    const el = this.map.get(SpecificCharacterSet);
    if (el?.kind === 'value') {
      this.cs = parseCharacterSet(splitStrings(el.bytes.toString('latin1'), 'CS'));
    } else {
      this.cs = this.parent ? this.parent.characterSet : DEFAULT_CHARACTER_SET;
    }
    return this.cs;
  }

  /** The VR of an element, or undefined when absent. */
  vr(t: Tag): VR | undefined {
    return this.map.get(t)?.vr;
  }

  /** The raw bytes of an in-memory value. */
  bytes(t: Tag): Buffer | undefined {
    const el = this.map.get(t);
    return el?.kind === 'value' ? el.bytes : undefined;
  }

  /** All values of an element, decoded per its VR (strings, numbers, bigints, person names, null for empty). */
  values(t: Tag): Value[] {
    const d = this.decodable(t);
    if (!d) return [];
    try {
      return decodeValues(d.vr, d.bytes, d.littleEndian, this.characterSet);
    } catch (err) {
      if (err instanceof CodecError && err.tag === undefined) {
        throw new CodecError(err.code, err.message, { tag: t }, { cause: err });
      }
      throw err;
    }
  }

  /**
   * The VR and bytes to decode an element with. A public element that arrived as UN (an explicit VR
   * writer that did not know it) is decoded with its dictionary VR, in little endian (PS3.5 §6.2.2).
   */
  private decodable(t: Tag): { vr: VR; bytes: Buffer; littleEndian: boolean } | undefined {
    const el = this.map.get(t);
    if (!el) return undefined;
    if (el.kind !== 'value') {
      throw new CodecError('ERR_CODEC_NOT_DECODABLE', `element is a ${el.kind}, not a value`, { tag: t });
    }
    let vr = el.vr;
    let littleEndian = this.littleEndian;
    if (vr === 'UN') {
      const known = lookupTag(t)?.vr;
      if (known && !BINARY_VRS.has(known) && known !== 'SQ') {
        vr = known;
        littleEndian = true;
      }
    }
    if (BINARY_VRS.has(vr)) {
      throw new CodecError('ERR_CODEC_NOT_DECODABLE', `values of VR ${vr} are bytes; use bytes()`, {
        tag: t,
      });
    }
    return { vr, bytes: el.bytes, littleEndian };
  }

  /** The first value as a string (person names in their encoded form), or undefined. */
  string(t: Tag): string | undefined {
    return this.strings(t)[0];
  }

  /** The values as strings, each trimmed per VR; person names keep their `=` groups. */
  strings(t: Tag): string[] {
    const el = this.map.get(t);
    if (el?.kind !== 'value') return [];
    if (isStringVR(el.vr)) return splitStrings(decodeString(el.bytes, el.vr, this.characterSet), el.vr);
    return this.values(t).map((v) => (v === null ? '' : String(v)));
  }

  /** The first value as a number (binary numeric VRs, IS and DS), or undefined. */
  number(t: Tag): number | undefined {
    return this.numbers(t)[0];
  }

  numbers(t: Tag): number[] {
    return this.values(t)
      .filter((v) => v !== null)
      .map((v) => {
        const n = typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : Number(v);
        if (Number.isNaN(n))
          throw new CodecError('ERR_CODEC_BAD_NUMBER', `value "${String(v)}" is not a number`, { tag: t });
        return n;
      });
  }

  /** Items of a sequence (empty when absent). */
  items(t: Tag): Dataset[] {
    const el = this.map.get(t);
    return el?.kind === 'sequence' ? el.items : [];
  }

  /**
   * Sets values, encoding them now with this data set's character set and byte order. The VR defaults
   * to the dictionary's (US for "US or SS" unless Pixel Representation is 1).
   */
  setValues(t: Tag, values: readonly Value[], vr?: VR): void {
    const v = vr ?? defaultVR(t, this);
    if (t === SpecificCharacterSet) this.cs = undefined;
    this.set({
      kind: 'value',
      tag: t,
      vr: v,
      bytes: encodeValues(v, values, this.littleEndian, this.characterSet, t),
    });
  }

  setString(t: Tag, value: string, vr?: VR): void {
    this.setValues(t, [value], vr);
  }

  /** Sets a value from its encoded bytes (in this data set's byte order), padded to even length (PS3.5 §7.1.1). */
  setBytes(t: Tag, vr: VR, bytes: Buffer): void {
    const even = bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from([paddingByte(vr)])]);
    this.set({ kind: 'value', tag: t, vr, bytes: even });
  }

  setSequence(t: Tag, items: Dataset[], undefinedLength = true): void {
    for (const item of items) item.parent = this;
    this.set({ kind: 'sequence', tag: t, vr: 'SQ', items, undefinedLength });
  }
}

function defaultVR(t: Tag, ds: Dataset): VR {
  const entry = lookupTag(t);
  if (!entry)
    throw new CodecError('ERR_CODEC_UNKNOWN_VR', 'no VR given and the tag is not in the dictionary', {
      tag: t,
    });
  if (entry.vrs.includes('SS') && entry.vrs.includes('US')) {
    return ds.number(PixelRepresentation) === 1 ? 'SS' : 'US';
  }
  return entry.vr;
}

/**
 * Reads every bulk reference of a data set (and its items) into memory, so that it can be encoded
 * synchronously. Meant for small data sets or when the caller knows the values fit.
 */
export async function loadBulk(ds: Dataset): Promise<void> {
  const stack: Dataset[] = [ds];
  while (stack.length) {
    const d = stack.pop()!;
    for (const el of d) {
      if (el.kind === 'bulk') d.set({ kind: 'value', tag: el.tag, vr: el.vr, bytes: await el.bulk.read() });
      else if (el.kind === 'sequence') stack.push(...el.items);
      else if (el.kind === 'encapsulated') {
        const load = async (f: Fragment): Promise<Fragment> =>
          f.bulk
            ? {
                length: f.length,
                ...(f.offset === undefined ? {} : { offset: f.offset }),
                bytes: await f.bulk.read(),
              }
            : f;
        const fragments: Fragment[] = [];
        for (const f of el.fragments) fragments.push(await load(f));
        d.set({ ...el, offsetTable: await load(el.offsetTable), fragments });
      }
    }
  }
}
