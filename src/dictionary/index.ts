/**
 * The DICOM data dictionary (PS3.6 Table 6-1, 7-1, 8-1), the UID registry (PS3.6 Table A-1) and a
 * dictionary of vendors' private data elements by Private Creator.
 *
 * The tables live in ./generated/, written by scripts/gen-dictionary.ts from pydicom's generated
 * tables (Debian python3-pydicom). Each table's Maps are built at its first lookup, not when this module
 * is loaded: the tables are functions returning their rows, which V8 compiles only when called, so a
 * command that never looks up a private element (most) never pays for that table (see lazy()).
 */
import {
  type Tag as CoreTag,
  isGroupLength,
  isPrivateCreator,
  isPrivateTag,
  type VR,
} from '../core/index.ts';
import { elementRows, type RowVR, repeaterRows, Tag as TagTable } from './generated/elements.ts';
import { privateRows } from './generated/private.ts';
import { UID as UidTable, uidRows } from './generated/uids.ts';

export interface ElementEntry {
  /**
   * The tag. For a repeating-group entry (e.g. 60xx,3000) the lowest matching tag that no fixed entry
   * defines: 0x60003000 for Overlay Data, but 0x00280410 for (0028,04x0) Rows For Nth Order
   * Coefficients, as (0028,0400) is Transform Label. `lookupTag(e.tag) === e` for every entry.
   */
  readonly tag: number;
  /** 0xffffffff for fixed tags; the fixed nibbles for repeating ones, e.g. 0xff00ffff for 60xx3000. */
  readonly mask: number;
  /** The default VR: the first of `vrs`. */
  readonly vr: VR;
  /** Every VR the dictionary allows, e.g. ['OB', 'OW'] for Pixel Data. */
  readonly vrs: readonly VR[];
  readonly vm: string;
  readonly name: string;
  /** '' for the few retired elements the standard leaves unnamed. */
  readonly keyword: string;
  readonly retired: boolean;
}

/** A private data element of the dictionary pydicom ships (itself taken from GDCM's). */
export interface PrivateEntry {
  /** The Private Creator, as spelled in the dictionary (trailing padding never included). */
  readonly creator: string;
  /** The default VR: the first of `vrs`. Never 'UN': rows whose VR is unknown are not in the table. */
  readonly vr: VR;
  /** Every VR the dictionary allows, e.g. ['OB', 'OW']. */
  readonly vrs: readonly VR[];
  readonly vm: string;
  /** Free text, often 'Unknown'; not unique, and no keyword. */
  readonly name: string;
  readonly retired: boolean;
}

export interface UidEntry {
  readonly uid: string;
  readonly name: string;
  /** PS3.6 Table A-1 type: 'Transfer Syntax', 'SOP Class', 'Well-known frame of reference', ... */
  readonly type: string;
  readonly keyword: string;
  readonly retired: boolean;
}

/** Keyword -> tag number, e.g. `Tag.PatientName === 0x00100010`; also the tag type itself. */
export const Tag: typeof TagTable = TagTable;
export type Tag = CoreTag;

/** Keyword -> UID, e.g. `UID.ExplicitVRLittleEndian === '1.2.840.10008.1.2.1'`. */
export const UID: typeof UidTable = UidTable;

const FIXED_MASK = 0xffffffff;

function entry(
  tag: number,
  mask: number,
  rowVR: RowVR,
  vm: string,
  name: string,
  keyword: string,
  retired: boolean,
): ElementEntry {
  const vrs = toVRs(rowVR);
  return Object.freeze({ tag, mask, vr: vrs[0]!, vrs, vm, name, keyword, retired });
}

function toVRs(rowVR: RowVR): readonly VR[] {
  return Object.freeze(typeof rowVR === 'string' ? [rowVR] : [...rowVR]);
}

/** Builds a table's lookup structures at the first call, then returns them. */
function lazy<T>(build: () => T): () => T {
  let built: T | undefined;
  return () => {
    built ??= build();
    return built;
  };
}

interface ElementTables {
  readonly byTag: ReadonlyMap<number, ElementEntry>;
  readonly byKeyword: ReadonlyMap<string, ElementEntry>;
  /**
   * Repeating-group entries, one Map per distinct mask keyed by `tag & mask`. The generator checks
   * that no tag matches two patterns, so the order the masks are tried in does not change the result.
   */
  readonly repeaterMasks: readonly (readonly [number, ReadonlyMap<number, ElementEntry>])[];
}

const elements = lazy((): ElementTables => {
  const byTag = new Map<number, ElementEntry>();
  const byKeyword = new Map<string, ElementEntry>();
  for (const [tag, vr, vm, name, keyword, retired] of elementRows()) {
    const e = entry(tag, FIXED_MASK, vr, vm, name, keyword, retired === 1);
    byTag.set(tag, e);
    if (keyword !== '') byKeyword.set(keyword, e);
  }
  const repeaterMaps = new Map<number, Map<number, ElementEntry>>();
  for (const [tag, mask, vr, vm, name, keyword, retired] of repeaterRows()) {
    const e = entry(tag, mask, vr, vm, name, keyword, retired === 1);
    let m = repeaterMaps.get(mask);
    if (m === undefined) {
      m = new Map();
      repeaterMaps.set(mask, m);
    }
    m.set((tag & mask) >>> 0, e);
    if (keyword !== '') byKeyword.set(keyword, e);
  }
  return { byTag, byKeyword, repeaterMasks: [...repeaterMaps] };
});

/**
 * Finds the dictionary entry for a tag: the fixed tags, then (for non-private tags) the repeating
 * groups such as (60xx,3000); a fixed tag wins over a pattern, so (7FE0,0010) is Pixel Data, not the
 * retired (7Fxx,0010) Variable Pixel Data. Tags not in the tables get a synthetic entry when their meaning is
 * structural: Group Length (gggg,0000), UL, retired (PS3.5 §7.2), and Private Creator
 * (gggg,0010-00FF) in a private group, LO (PS3.5 §7.8.1). Other private tags: undefined.
 */
export function lookupTag(t: Tag): ElementEntry | undefined {
  t >>>= 0;
  const { byTag, repeaterMasks } = elements();
  const fixed = byTag.get(t);
  if (fixed !== undefined) return fixed;
  if (isPrivateTag(t)) {
    // Repeating groups are even (PS3.5 §7.6), so odd groups never match (60xx,3000) and the like.
    if (isGroupLength(t)) return groupLength(t);
    if (isPrivateCreator(t)) return privateCreator(t);
    return undefined;
  }
  for (const [mask, m] of repeaterMasks) {
    const e = m.get((t & mask) >>> 0);
    if (e !== undefined) return e;
  }
  if (isGroupLength(t)) return groupLength(t);
  return undefined;
}

function groupLength(t: number): ElementEntry {
  return entry(t, FIXED_MASK, 'UL', '1', 'Group Length', 'GroupLength', true);
}

function privateCreator(t: number): ElementEntry {
  return entry(t, FIXED_MASK, 'LO', '1', 'Private Creator', 'PrivateCreator', false);
}

/** The entry for a PS3.6 keyword (synthetic entries such as 'GroupLength' are not found). */
export function lookupKeyword(keyword: string): ElementEntry | undefined {
  return elements().byKeyword.get(keyword);
}

/** The default VR of `lookupTag(t)`. */
export function vrOf(t: Tag): VR | undefined {
  return lookupTag(t)?.vr;
}

/** Row masks of generated/private.ts: (gggg,xxee), and (ggxx,xxee) as PAPYRUS 3.0 (60xx,xx10) has. */
const PRIVATE_BLOCK_MASK = 0xffff00ff;
const PRIVATE_GROUP_MASK = 0xff0000ff;
/** Sets the (ggxx,xxee) keys apart from the (gggg,xxee) ones, which are below 2^24. */
const GROUP_WILDCARD = 0x1000000;

/** (gggg,xxee) -> gggg·256 + ee */
function blockKey(group: number, ee: number): number {
  return group * 0x100 + ee;
}

/** (ggxx,xxee) -> 2^24 + gg·256 + ee */
function groupWildcardKey(group: number, ee: number): number {
  return GROUP_WILDCARD + (group >>> 8) * 0x100 + ee;
}

/** Private Creator -> entries by blockKey() / groupWildcardKey(). */
const privateByCreator = lazy((): ReadonlyMap<string, ReadonlyMap<number, PrivateEntry>> => {
  const byCreator = new Map<string, Map<number, PrivateEntry>>();
  for (const [creator, rows] of privateRows()) {
    const m = new Map<number, PrivateEntry>();
    for (const [tag, vr, vm, name, retired, mask = PRIVATE_BLOCK_MASK] of rows) {
      const vrs = toVRs(vr);
      const e: PrivateEntry = Object.freeze({ creator, vr: vrs[0]!, vrs, vm, name, retired: retired === 1 });
      const group = tag >>> 16;
      const ee = tag & 0xff;
      if (mask === PRIVATE_BLOCK_MASK) m.set(blockKey(group, ee), e);
      else if (mask === PRIVATE_GROUP_MASK) m.set(groupWildcardKey(group, ee), e);
      else
        throw new Error(
          `dictionary: private row ${creator} ${tag.toString(16)} has mask ${mask.toString(16)}`,
        );
    }
    byCreator.set(creator, m);
  }
  return byCreator;
});

/** Drops the trailing spaces (LO padding, PS3.5 §6.2) and NULs (a common mistake) off a creator. */
function trimCreator(creator: string): string {
  let end = creator.length;
  while (end > 0) {
    const c = creator.charCodeAt(end - 1);
    if (c !== 0x20 && c !== 0) break;
    end--;
  }
  return end === creator.length ? creator : creator.slice(0, end);
}

/**
 * The entry of a private element (gggg,xxee) whose block xx was reserved by `creator` (PS3.5 §7.8.1):
 * looked up by creator (trailing spaces and NULs trimmed), group and element byte ee. O(1).
 *
 * The caller finds the creator: the value of (gggg,00xx) for the element's block byte xx. Creators
 * otherwise match exactly (case and inner spaces count). The block byte is not compared, so (0009,1001)
 * with 'GEMS_IDEN_01' at (0009,0010) and (0009,1101) with it at (0009,0011) give the same entry. A row
 * for group gggg wins over one for its (ggxx) group range. Undefined for an unknown creator or element,
 * and for tags that are not private data elements: non-private groups (see isPrivateTag) and
 * (gggg,0000-00FF), which hold group lengths and the creators themselves.
 */
export function lookupPrivate(creator: string, t: Tag): PrivateEntry | undefined {
  t >>>= 0;
  if (!isPrivateTag(t) || (t & 0xff00) === 0) return undefined;
  const m = privateByCreator().get(trimCreator(creator));
  if (m === undefined) return undefined;
  const group = t >>> 16;
  const ee = t & 0xff;
  return m.get(blockKey(group, ee)) ?? m.get(groupWildcardKey(group, ee));
}

/**
 * Storage SOP Classes (PS3.4 Annex B) by name: 'CT Image Storage', 'Digital X-Ray Image Storage - For
 * Presentation', and the retired print-era 'Hardcopy Grayscale Image Storage SOP Class'; not 'Storage
 * Commitment ...' nor 'Media Storage Directory Storage' (the DICOMDIR).
 */
function isStorageName(name: string): boolean {
  if (name.startsWith('Storage Commitment') || name === 'Media Storage Directory Storage') return false;
  return name.endsWith('Storage') || name.includes('Storage -') || name.endsWith('Storage SOP Class');
}

interface UidTables {
  readonly byUid: ReadonlyMap<string, UidEntry>;
  readonly transferSyntaxes: readonly UidEntry[];
  readonly storageSopClasses: ReadonlySet<string>;
}

const uids = lazy((): UidTables => {
  const byUid = new Map<string, UidEntry>();
  for (const [uid, name, type, keyword, retired] of uidRows()) {
    byUid.set(uid, Object.freeze({ uid, name, type, keyword, retired: retired === 1 }));
  }
  const all = [...byUid.values()];
  return {
    byUid,
    transferSyntaxes: Object.freeze(all.filter((u) => u.type === 'Transfer Syntax')),
    storageSopClasses: new Set(
      all.filter((u) => u.type === 'SOP Class' && isStorageName(u.name)).map((u) => u.uid),
    ),
  };
});

export function lookupUid(uid: string): UidEntry | undefined {
  return uids().byUid.get(uid);
}

export function uidName(uid: string): string | undefined {
  return uids().byUid.get(uid)?.name;
}

/** Every registered Transfer Syntax, retired ones included, in UID order. */
export function transferSyntaxUids(): readonly UidEntry[] {
  return uids().transferSyntaxes;
}

export function isStorageSopClass(uid: string): boolean {
  return uids().storageSopClasses.has(uid);
}
