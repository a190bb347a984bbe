/**
 * Generates src/dictionary/generated/{elements,uids,private}.ts from the data element, UID and
 * private data element tables that pydicom ships (the first two generated from PS3.6 by the pydicom
 * project, the private one from GDCM's private dictionary), using the Debian package python3-pydicom
 * run by the system interpreter.
 *
 *   npx tsx scripts/gen-dictionary.ts
 *
 * The output depends only on the installed pydicom tables and on SUPPLEMENTARY_TRANSFER_SYNTAXES
 * below: rows are sorted, numbers are written in fixed-width hex, nothing time-dependent is written.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { isPrivateTag, isVR, type VR } from '../src/core/index.ts';

const PYTHON = '/usr/bin/python3';
const EXPECTED_PREFIX = '/usr/lib/python3/dist-packages/pydicom/';
const OUT_DIR = new URL('../src/dictionary/generated/', import.meta.url);

/** Items and delimitation items (FFFE,E000/E00D/E0DD) have VR 'NONE' in pydicom: they are not data elements. */
const NO_VR = 'NONE';

interface SupplementaryUid {
  readonly uid: string;
  readonly name: string;
  readonly keyword: string;
  /** Where the UID is registered; written as a comment beside the generated row. */
  readonly cite: string;
}

/**
 * Transfer Syntaxes registered in PS3.6 Table A-1 by changes published after the DICOM edition
 * pydicom 2.3.1 was generated from. Names and keywords as in PS3.6 Table A-1. A row is used only
 * when pydicom lacks the UID, so a newer pydicom silently takes over.
 */
const SUPPLEMENTARY_TRANSFER_SYNTAXES: readonly SupplementaryUid[] = [
  // PS3.6 Table A-1; Supplement 225 (Fragmentable MPEG video Transfer Syntaxes, DICOM 2022d)
  {
    uid: '1.2.840.10008.1.2.4.100.1',
    name: 'Fragmentable MPEG2 Main Profile / Main Level',
    keyword: 'MPEG2MPMLF',
    cite: 'PS3.6 Table A-1; Sup 225',
  },
  // PS3.6 Table A-1; Supplement 225 (Fragmentable MPEG video Transfer Syntaxes, DICOM 2022d)
  {
    uid: '1.2.840.10008.1.2.4.101.1',
    name: 'Fragmentable MPEG2 Main Profile / High Level',
    keyword: 'MPEG2MPHLF',
    cite: 'PS3.6 Table A-1; Sup 225',
  },
  // PS3.6 Table A-1; Supplement 225 (Fragmentable MPEG video Transfer Syntaxes, DICOM 2022d)
  {
    uid: '1.2.840.10008.1.2.4.102.1',
    name: 'Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1',
    keyword: 'MPEG4HP41F',
    cite: 'PS3.6 Table A-1; Sup 225',
  },
  // PS3.6 Table A-1; Supplement 225 (Fragmentable MPEG video Transfer Syntaxes, DICOM 2022d)
  {
    uid: '1.2.840.10008.1.2.4.103.1',
    name: 'Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1',
    keyword: 'MPEG4HP41BDF',
    cite: 'PS3.6 Table A-1; Sup 225',
  },
  // PS3.6 Table A-1; Supplement 225 (Fragmentable MPEG video Transfer Syntaxes, DICOM 2022d)
  {
    uid: '1.2.840.10008.1.2.4.104.1',
    name: 'Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video',
    keyword: 'MPEG4HP422DF',
    cite: 'PS3.6 Table A-1; Sup 225',
  },
  // PS3.6 Table A-1; Supplement 225 (Fragmentable MPEG video Transfer Syntaxes, DICOM 2022d)
  {
    uid: '1.2.840.10008.1.2.4.105.1',
    name: 'Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video',
    keyword: 'MPEG4HP423DF',
    cite: 'PS3.6 Table A-1; Sup 225',
  },
  // PS3.6 Table A-1; Supplement 225 (Fragmentable MPEG video Transfer Syntaxes, DICOM 2022d)
  {
    uid: '1.2.840.10008.1.2.4.106.1',
    name: 'Fragmentable MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2',
    keyword: 'MPEG4HP42STEREOF',
    cite: 'PS3.6 Table A-1; Sup 225',
  },
  // PS3.6 Table A-1; Supplement 232 (JPEG XL Transfer Syntaxes)
  {
    uid: '1.2.840.10008.1.2.4.110',
    name: 'JPEG XL Lossless',
    keyword: 'JPEGXLLossless',
    cite: 'PS3.6 Table A-1; Sup 232',
  },
  // PS3.6 Table A-1; Supplement 232 (JPEG XL Transfer Syntaxes)
  {
    uid: '1.2.840.10008.1.2.4.111',
    name: 'JPEG XL JPEG Recompression',
    keyword: 'JPEGXLJPEGRecompression',
    cite: 'PS3.6 Table A-1; Sup 232',
  },
  // PS3.6 Table A-1; Supplement 232 (JPEG XL Transfer Syntaxes)
  { uid: '1.2.840.10008.1.2.4.112', name: 'JPEG XL', keyword: 'JPEGXL', cite: 'PS3.6 Table A-1; Sup 232' },
  // PS3.6 Table A-1; Supplement 235 (HTJ2K Transfer Syntaxes)
  {
    uid: '1.2.840.10008.1.2.4.201',
    name: 'High-Throughput JPEG 2000 Image Compression (Lossless Only)',
    keyword: 'HTJ2KLossless',
    cite: 'PS3.6 Table A-1; Sup 235',
  },
  // PS3.6 Table A-1; Supplement 235 (HTJ2K Transfer Syntaxes)
  {
    uid: '1.2.840.10008.1.2.4.202',
    name: 'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)',
    keyword: 'HTJ2KLosslessRPCL',
    cite: 'PS3.6 Table A-1; Sup 235',
  },
  // PS3.6 Table A-1; Supplement 235 (HTJ2K Transfer Syntaxes)
  {
    uid: '1.2.840.10008.1.2.4.203',
    name: 'High-Throughput JPEG 2000 Image Compression',
    keyword: 'HTJ2K',
    cite: 'PS3.6 Table A-1; Sup 235',
  },
  // PS3.6 Table A-1; Supplement 235 (HTJ2K Transfer Syntaxes)
  {
    uid: '1.2.840.10008.1.2.4.204',
    name: 'JPIP HTJ2K Referenced',
    keyword: 'JPIPHTJ2KReferenced',
    cite: 'PS3.6 Table A-1; Sup 235',
  },
  // PS3.6 Table A-1; Supplement 235 (HTJ2K Transfer Syntaxes)
  {
    uid: '1.2.840.10008.1.2.4.205',
    name: 'JPIP HTJ2K Referenced Deflate',
    keyword: 'JPIPHTJ2KReferencedDeflate',
    cite: 'PS3.6 Table A-1; Sup 235',
  },
  // PS3.6 Table A-1; Supplement 244 (Deflated Image Frame Compression, DICOM 2025a)
  {
    uid: '1.2.840.10008.1.2.8.1',
    name: 'Deflated Image Frame Compression',
    keyword: 'DeflatedImageFrameCompression',
    cite: 'PS3.6 Table A-1; Sup 244',
  },
];

/** Dumps the four tables as JSON; shapes are checked on the TypeScript side. */
const PY_DUMP = `
import json, sys
import pydicom
from pydicom._dicom_dict import DicomDictionary, RepeatersDictionary
from pydicom._uid_dict import UID_dictionary
from pydicom._private_dict import private_dictionaries
json.dump({
    "version": pydicom.__version__,
    "file": pydicom.__file__,
    "elements": [[k, *v] for k, v in DicomDictionary.items()],
    "repeaters": [[k, *v] for k, v in RepeatersDictionary.items()],
    "uids": [[k, *v] for k, v in UID_dictionary.items()],
    "private": [[c, k, *v] for c, d in private_dictionaries.items() for k, v in d.items()],
}, sys.stdout)
`;

interface Dump {
  version: string;
  file: string;
  elements: unknown[][];
  repeaters: unknown[][];
  uids: unknown[][];
  /** [creator, pattern, VR, VM, name, retired] */
  private: unknown[][];
}

interface ElementOut {
  tag: number;
  mask: number;
  vrs: VR[];
  vm: string;
  name: string;
  keyword: string;
  retired: boolean;
}

interface UidOut {
  uid: string;
  name: string;
  type: string;
  keyword: string;
  retired: boolean;
  cite?: string;
}

interface PrivateOut {
  creator: string;
  /** The element as found when its creator is at (gggg,0010): (gggg,10ee); group 0xgg01 for a (ggxx) pattern. */
  tag: number;
  /** PRIVATE_BLOCK_MASK or PRIVATE_GROUP_MASK */
  mask: number;
  vrs: VR[];
  vm: string;
  name: string;
  retired: boolean;
}

/** (gggg,xxee): any block xx of group gggg. */
const PRIVATE_BLOCK_MASK = 0xffff00ff;
/** (ggxx,xxee): any block of any (private) group whose high byte is gg, e.g. PAPYRUS 3.0 (60xx,xx10). */
const PRIVATE_GROUP_MASK = 0xff0000ff;

/**
 * Why private dictionary rows are left out. Leaving them out changes no VR pydicom 2.3.1 would give a
 * private data element (gggg,bbee), bb >= 0x10: its get_private_entry() only tries the keys 'ggggbbee'
 * (exact), 'ggggxxee' and 'ggxxxxee', so the last three kinds below never match such an element, and
 * a 'UN' row gives the VR a private element gets anyway when no row matches.
 */
const PRIVATE_SKIP = {
  noVR: "VR 'UN' or empty: the dictionary does not know the VR",
  exact: 'a fixed tag (gggg,00ee): block 00 is not a private block, so it names no private data element',
  elementWildcard: "'xx' in the element byte (gggg,10xx): not a block-relative element",
  notPrivateGroup: 'not a private group: even, or 0001-0007 / FFFF, which PS3.5 §7.1 excludes (isPrivateTag)',
} as const;
type PrivateSkip = keyof typeof PRIVATE_SKIP;

function fail(message: string): never {
  throw new Error(`gen-dictionary: ${message}`);
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') fail(`${what}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function retiredFlag(v: unknown, what: string): boolean {
  if (v === '') return false;
  if (v === 'Retired') return true;
  return fail(`${what}: unexpected retired flag ${JSON.stringify(v)}`);
}

/** 'US or SS or OW' -> ['US', 'SS', 'OW']; the first is the default VR. */
function parseVRs(text: string, what: string): VR[] {
  const vrs = text.split(' or ').map((s) => s.trim());
  for (const vr of vrs)
    if (!isVR(vr)) fail(`${what}: unknown VR ${JSON.stringify(vr)} in ${JSON.stringify(text)}`);
  return vrs as VR[];
}

/**
 * A private dictionary VR: 'US', 'US or SS', 'OB_OW' (pydicom's private tables write alternatives
 * both ways). 'UN' is dropped from the list, as it only says the VR is unknown; [] if nothing is left.
 */
function parsePrivateVRs(text: string, what: string): VR[] {
  if (text.trim() === '') return [];
  const vrs = text.split(/ or |_|\//).map((s) => s.trim());
  for (const vr of vrs)
    if (!isVR(vr)) fail(`${what}: unknown VR ${JSON.stringify(vr)} in ${JSON.stringify(text)}`);
  return (vrs as VR[]).filter((vr) => vr !== 'UN');
}

/** The lowest private group whose high byte is `high`: 0x6001 for 60xx. */
function lowestPrivateGroup(high: number, pattern: string): number {
  for (let g = high << 8; g <= ((high << 8) | 0xff); g++) if (isPrivateTag(g << 16)) return g;
  return fail(`private pattern ${pattern}: no private group matches`);
}

/**
 * Parses a private dictionary key: 'ggggxxee' -> (gggg,10ee) with PRIVATE_BLOCK_MASK, 'ggxxxxee' ->
 * (gg01,10ee) with PRIVATE_GROUP_MASK; a skip reason for the forms that name no block-relative
 * private element; fails on anything else, so that a new form in a newer pydicom is looked at.
 */
function parsePrivatePattern(pattern: string, what: string): [number, number] | PrivateSkip {
  let m = /^([0-9a-f]{4})xx([0-9a-f]{2})$/i.exec(pattern);
  if (m) {
    const group = Number.parseInt(m[1]!, 16);
    if (!isPrivateTag(group << 16)) return 'notPrivateGroup';
    return [((group << 16) | 0x1000 | Number.parseInt(m[2]!, 16)) >>> 0, PRIVATE_BLOCK_MASK];
  }
  m = /^([0-9a-f]{2})xxxx([0-9a-f]{2})$/i.exec(pattern);
  if (m) {
    const group = lowestPrivateGroup(Number.parseInt(m[1]!, 16), pattern);
    return [((group << 16) | 0x1000 | Number.parseInt(m[2]!, 16)) >>> 0, PRIVATE_GROUP_MASK];
  }
  if (/^[0-9a-f]{4}00[0-9a-f]{2}$/i.test(pattern)) return 'exact';
  if (/^[0-9a-f]{6}xx$/i.test(pattern)) return 'elementWildcard';
  // e.g. a fixed tag in a real block (gggg,10ee): lookup by block-relative byte could not express it
  return fail(`${what}: unsupported private tag pattern ${JSON.stringify(pattern)}`);
}

/** '60xx3000' -> [0x60003000, 0xff00ffff]: each x is a wildcard nibble. */
function parseMask(pattern: string): [number, number] {
  if (!/^[0-9A-Fa-fx]{8}$/.test(pattern)) fail(`bad repeater mask ${JSON.stringify(pattern)}`);
  const base = Number.parseInt(pattern.replace(/x/g, '0'), 16);
  const mask = Number.parseInt(pattern.replace(/[0-9A-Fa-f]/g, 'f').replace(/x/g, '0'), 16);
  return [base >>> 0, mask >>> 0];
}

/**
 * The tag written for a repeating-group entry: the lowest tag matching the pattern that is neither a
 * fixed entry nor private. pydicom's patterns overlap fixed tags: 002804x0 (Rows For Nth Order
 * Coefficients) covers (0028,0400) Transform Label, which PS3.6 defines separately, and 7Fxx0010
 * (Variable Pixel Data) covers (7FE0,0010) Pixel Data. A fixed tag always wins at lookup, so the
 * entry's own tag must be one the lookup actually resolves to it.
 */
function representative(base: number, mask: number, fixed: ReadonlySet<number>, pattern: string): number {
  const wild: number[] = [];
  for (let nibble = 0; nibble < 8; nibble++) if (((mask >>> (nibble * 4)) & 0xf) === 0) wild.push(nibble);
  for (let k = 0; k < 1 << (4 * wild.length); k++) {
    let t = base;
    wild.forEach((nibble, i) => {
      t = (t | (((k >>> (4 * i)) & 0xf) << (nibble * 4))) >>> 0;
    });
    if (!fixed.has(t) && !isPrivateTag(t)) return t;
  }
  return fail(`repeater ${pattern}: every matching tag is taken`);
}

function checkKeyword(keyword: string, what: string): void {
  if (keyword !== '' && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(keyword)) fail(`${what}: odd keyword ${keyword}`);
}

function loadPydicom(): Dump {
  const out = execFileSync(PYTHON, ['-I', '-c', PY_DUMP], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const dump = JSON.parse(out) as Dump;
  if (!dump.file.startsWith(EXPECTED_PREFIX)) {
    fail(`pydicom was loaded from ${dump.file}, not from the Debian package under ${EXPECTED_PREFIX}`);
  }
  return dump;
}

function buildElements(dump: Dump): { elements: ElementOut[]; skipped: string[] } {
  const elements: ElementOut[] = [];
  const skipped: string[] = [];
  const row = (r: unknown[], tag: number, mask: number, what: string): void => {
    if (r.length !== 6) fail(`${what}: expected (VR, VM, Name, Retired, Keyword), got ${JSON.stringify(r)}`);
    const vrText = str(r[1], what);
    const keyword = str(r[5], what);
    checkKeyword(keyword, what);
    if (vrText === NO_VR) {
      if (tag >>> 16 !== 0xfffe) fail(`${what}: VR NONE outside group FFFE`);
      skipped.push(keyword);
      return;
    }
    elements.push({
      tag,
      mask,
      vrs: parseVRs(vrText, what),
      vm: str(r[2], what),
      name: str(r[3], what),
      keyword,
      retired: retiredFlag(r[4], what),
    });
  };
  for (const r of dump.elements) {
    const tag = r[0];
    if (typeof tag !== 'number' || !Number.isInteger(tag) || tag < 0 || tag > 0xffffffff)
      fail(`bad tag ${tag}`);
    row(r, tag, 0xffffffff, `element ${tag.toString(16)}`);
  }
  const fixed = new Set<number>();
  for (const e of elements) {
    if (fixed.has(e.tag)) fail(`duplicate tag ${e.tag.toString(16)}`);
    fixed.add(e.tag);
  }
  for (const r of dump.repeaters) {
    const pattern = str(r[0], 'repeater mask');
    const [base, mask] = parseMask(pattern);
    row(r, representative(base, mask, fixed, pattern), mask, `repeater ${pattern}`);
  }
  elements.sort((a, b) => a.tag - b.tag || b.mask - a.mask);

  const keywords = new Set<string>();
  for (const e of elements) {
    if (e.keyword === '') continue;
    if (keywords.has(e.keyword)) fail(`duplicate keyword ${e.keyword}`);
    keywords.add(e.keyword);
  }
  // Lookup tries the repeater masks one after another: no tag may match two patterns.
  const repeaters = elements.filter((e) => e.mask !== 0xffffffff);
  for (let i = 0; i < repeaters.length; i++) {
    for (let j = i + 1; j < repeaters.length; j++) {
      const a = repeaters[i]!;
      const b = repeaters[j]!;
      const common = (a.mask & b.mask) >>> 0;
      if ((a.tag & common) >>> 0 === (b.tag & common) >>> 0)
        fail(`repeaters ${a.keyword} and ${b.keyword} overlap`);
    }
  }
  return { elements, skipped };
}

function compareUids(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const d = pa[i]! - pb[i]!;
    if (d !== 0) return d;
  }
  return pa.length - pb.length;
}

function buildUids(dump: Dump): { uids: UidOut[]; added: string[] } {
  const uids: UidOut[] = [];
  for (const r of dump.uids) {
    const uid = str(r[0], 'uid');
    const what = `uid ${uid}`;
    if (r.length !== 6)
      fail(`${what}: expected (Name, Type, Info, Retired, Keyword), got ${JSON.stringify(r)}`);
    if (!/^[0-9]+(\.[0-9]+)*$/.test(uid)) fail(`${what}: not a UID`);
    const keyword = str(r[5], what);
    checkKeyword(keyword, what);
    uids.push({
      uid,
      name: str(r[1], what),
      type: str(r[2], what),
      keyword,
      retired: retiredFlag(r[4], what),
    });
  }
  const known = new Set(uids.map((u) => u.uid));
  const added: string[] = [];
  for (const s of SUPPLEMENTARY_TRANSFER_SYNTAXES) {
    if (known.has(s.uid)) continue;
    uids.push({
      uid: s.uid,
      name: s.name,
      type: 'Transfer Syntax',
      keyword: s.keyword,
      retired: false,
      cite: s.cite,
    });
    added.push(s.uid);
  }
  uids.sort((a, b) => compareUids(a.uid, b.uid));
  const keywords = new Set<string>();
  for (const u of uids) {
    if (u.keyword === '') continue;
    if (keywords.has(u.keyword)) fail(`duplicate UID keyword ${u.keyword}`);
    keywords.add(u.keyword);
  }
  return { uids, added };
}

/** Code-unit order, the same in every locale. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function buildPrivate(dump: Dump): { entries: PrivateOut[]; skipped: Record<PrivateSkip, number> } {
  const entries: PrivateOut[] = [];
  const skipped: Record<PrivateSkip, number> = { noVR: 0, exact: 0, elementWildcard: 0, notPrivateGroup: 0 };
  const seen = new Set<string>();
  for (const r of dump.private) {
    const creator = str(r[0], 'private creator');
    const pattern = str(r[1], `private ${creator}`);
    const what = `private ${JSON.stringify(creator)} ${pattern}`;
    if (r.length !== 6) fail(`${what}: expected (VR, VM, Name, Retired), got ${JSON.stringify(r)}`);
    // lookupPrivate() trims trailing spaces and NULs off the creator it is given
    if (creator === '' || /[ \0]$/.test(creator)) fail(`${what}: empty creator or trailing padding`);
    const parsed = parsePrivatePattern(pattern, what);
    const vrs = parsePrivateVRs(str(r[2], what), what);
    const vm = str(r[3], what);
    const name = str(r[4], what);
    const retired = retiredFlag(r[5], what);
    if (typeof parsed === 'string') {
      skipped[parsed]++;
      continue;
    }
    if (vrs.length === 0) {
      skipped.noVR++;
      continue;
    }
    const [tag, mask] = parsed;
    const key = `${creator}\0${tag}\0${mask}`;
    if (seen.has(key)) fail(`${what}: duplicate entry`);
    seen.add(key);
    entries.push({ creator, tag, mask, vrs, vm, name, retired });
  }
  entries.sort((a, b) => compareStrings(a.creator, b.creator) || a.tag - b.tag || b.mask - a.mask);
  return { entries, skipped };
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

/** A single-quoted TypeScript string literal; anything outside printable ASCII is escaped. */
function q(s: string): string {
  const body = s.replace(/[\\']|[^\x20-\x7e]/g, (c) => {
    if (c === '\\' || c === "'") return `\\${c}`;
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return `'${body}'`;
}

/**
 * A JSON string for a row of the JSON tables; anything outside printable ASCII is escaped, and the
 * characters a String.raw template literal cannot hold (a backtick, `${`) are refused.
 */
function j(s: string): string {
  if (s.includes('`') || s.includes('${')) fail(`cannot put ${JSON.stringify(s)} in a template literal`);
  return JSON.stringify(s).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** A tag or mask in the JSON tables: 8 hex digits, as PS3.6 writes them (JSON has no hex numbers). */
function jhex(n: number): string {
  return `"${(n >>> 0).toString(16).padStart(8, '0')}"`;
}

function jvr(vrs: readonly VR[]): string {
  return vrs.length === 1 ? j(vrs[0]!) : `[${vrs.map(j).join(',')}]`;
}

function key(keyword: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(keyword) ? keyword : q(keyword);
}

/*
 * ROWS_AS_FUNCTIONS: the tables are written as functions returning their rows, not as constants: a
 * constant's array literal is compiled and built when the module loads, about 20 ms of every command's
 * start-up for tables most commands never look at (tessera store looks at none). The two large ones
 * (elements, private: 1 MB of source) hold their rows as JSON in a String.raw template literal, one row
 * per line, parsed at the first call: V8 still pre-parses a function's body until its first call
 * (~13 ms for those rows as array literals), but scans a string at once. Tags and masks are 8 hex
 * digits (JSON has no hex numbers), turned into numbers as the rows are parsed. src/dictionary builds
 * its Maps from the rows at the first lookup.
 */

function header(version: string, modules: string): string {
  return `// generated: do not edit. Source: pydicom ${version} (Debian python3-pydicom) ${modules}, by scripts/gen-dictionary.ts\n`;
}

function renderElements(
  version: string,
  elements: readonly ElementOut[],
  skipped: readonly string[],
): string {
  const fixed = elements.filter((e) => e.mask === 0xffffffff);
  const repeating = elements.filter((e) => e.mask !== 0xffffffff);
  const out: string[] = [header(version, 'pydicom._dicom_dict (DicomDictionary, RepeatersDictionary)')];
  out.push(`import type { VR } from '../../core/index.ts';

/**
 * A VR, or the VRs allowed for the element, the first being the default (PS3.6 Table 6-1 writes e.g. 'US or SS').
 * Omitted (no VR): ${skipped.join(', ')} (group FFFE).
 */
export type RowVR = VR | readonly VR[];
/** [tag, vr, vm, name, keyword, retired]; keyword '' for the few unnamed retired elements. */
export type ElementRow = readonly [tag: number, vr: RowVR, vm: string, name: string, keyword: string, retired: 0 | 1];
/** [tag (lowest matching tag not defined by a fixed row), mask of the fixed nibbles, vr, vm, name, keyword, retired] */
export type RepeaterRow = readonly [
  tag: number,
  mask: number,
  vr: RowVR,
  vm: string,
  name: string,
  keyword: string,
  retired: 0 | 1,
];

/** The fixed-tag rows (see ROWS_AS_FUNCTIONS in scripts/gen-dictionary.ts). */
export const elementRows = (): readonly ElementRow[] =>
  (JSON.parse(ELEMENT_ROWS) as HexRow[]).map(
    ([tag, ...rest]) => [Number.parseInt(tag, 16), ...rest] as unknown as ElementRow,
  );

/** The repeating-group rows. */
export const repeaterRows = (): readonly RepeaterRow[] =>
  (JSON.parse(REPEATER_ROWS) as HexRow[]).map(
    ([tag, mask, ...rest]) =>
      [Number.parseInt(tag, 16), Number.parseInt(mask as string, 16), ...rest] as unknown as RepeaterRow,
  );

/** A row of the JSON tables: its tag (and mask) as 8 hex digits. */
export type HexRow = readonly [string, ...unknown[]];

const ELEMENT_ROWS = String.raw\`[
`);
  out.push(
    fixed
      .map(
        (e) => `[${jhex(e.tag)},${jvr(e.vrs)},${j(e.vm)},${j(e.name)},${j(e.keyword)},${e.retired ? 1 : 0}]`,
      )
      .join(',\n'),
  );
  out.push('\n]`;\n\nconst REPEATER_ROWS = String.raw`[\n');
  out.push(
    repeating
      .map(
        (e) =>
          `[${jhex(e.tag)},${jhex(e.mask)},${jvr(e.vrs)},${j(e.vm)},${j(e.name)},${j(e.keyword)},${e.retired ? 1 : 0}]`,
      )
      .join(',\n'),
  );
  out.push(
    '\n]`;\n\n/** Keyword -> tag; a repeating-group keyword gives its repeaterRows tag (OverlayData: 0x60003000). */\n',
  );
  out.push('export const Tag = {\n');
  for (const e of elements) if (e.keyword !== '') out.push(`  ${key(e.keyword)}: ${hex(e.tag)},\n`);
  out.push('} as const;\n');
  return out.join('');
}

function renderUids(version: string, uids: readonly UidOut[]): string {
  const out: string[] = [header(version, 'pydicom._uid_dict (UID_dictionary)')];
  out.push(`// Rows marked "supplementary" are Transfer Syntaxes missing from that pydicom version, added from the
// table SUPPLEMENTARY_TRANSFER_SYNTAXES in scripts/gen-dictionary.ts.

/** [uid, name, type, keyword, retired] */
export type UidRow = readonly [uid: string, name: string, type: string, keyword: string, retired: 0 | 1];

/** The rows (a function: see ROWS_AS_FUNCTIONS in scripts/gen-dictionary.ts). */
export const uidRows = (): readonly UidRow[] => [
`);
  for (const u of uids) {
    const comment = u.cite === undefined ? '' : ` // supplementary: ${u.cite}`;
    out.push(
      `  [${q(u.uid)}, ${q(u.name)}, ${q(u.type)}, ${q(u.keyword)}, ${u.retired ? 1 : 0}],${comment}\n`,
    );
  }
  out.push('];\n\n/** Keyword -> UID. */\nexport const UID = {\n');
  for (const u of uids) if (u.keyword !== '') out.push(`  ${key(u.keyword)}: ${q(u.uid)},\n`);
  out.push('} as const;\n');
  return out.join('');
}

function renderPrivate(
  version: string,
  entries: readonly PrivateOut[],
  skipped: Readonly<Record<PrivateSkip, number>>,
  total: number,
): string {
  const out: string[] = [header(version, 'pydicom._private_dict (private_dictionaries)')];
  const omitted = (Object.keys(PRIVATE_SKIP) as PrivateSkip[])
    .map((k) => ` *   ${skipped[k]} rows: ${PRIVATE_SKIP[k]}\n`)
    .join('');
  out.push(`import type { HexRow, RowVR } from './elements.ts';

/**
 * Private data elements by Private Creator (PS3.5 §7.8.1). ${entries.length} of pydicom's ${total} rows; omitted:
${omitted} */

/**
 * [tag, vr, vm, name, retired, mask]. The tag is the element as found when its creator is at
 * (gggg,0010), i.e. (gggg,10ee). mask is omitted for (gggg,xxee) rows, which match element byte ee in
 * any block of group gggg (0x${PRIVATE_BLOCK_MASK.toString(16)}); it is 0x${PRIVATE_GROUP_MASK.toString(16)} for (ggxx,xxee) rows, which match any group
 * gg00-ggFF as well (the tag then shows the lowest private one, gg01).
 */
export type PrivateRow = readonly [tag: number, vr: RowVR, vm: string, name: string, retired: 0 | 1, mask?: number];
/** [creator, rows] */
export type PrivateCreatorRows = readonly [creator: string, rows: readonly PrivateRow[]];

/** The rows (see ROWS_AS_FUNCTIONS in scripts/gen-dictionary.ts). */
export const privateRows = (): readonly PrivateCreatorRows[] =>
  (JSON.parse(PRIVATE_ROWS) as [string, HexRow[]][]).map(([creator, rows]) => [
    creator,
    rows.map(([tag, ...rest]) => {
      const row = [Number.parseInt(tag, 16), ...rest];
      if (row.length > 5) row[5] = Number.parseInt(row[5] as string, 16);
      return row as unknown as PrivateRow;
    }),
  ]);

/** [creator, [[tag, vr, vm, name, retired, mask?], ...]], tags and masks as 8 hex digits. */
const PRIVATE_ROWS = String.raw\`[
`);
  const groups: string[] = [];
  let creator: string | undefined;
  let rows: string[] = [];
  const flush = (): void => {
    if (creator !== undefined) groups.push(`[${j(creator)},[\n${rows.join(',\n')}\n]]`);
  };
  for (const e of entries) {
    if (e.creator !== creator) {
      flush();
      creator = e.creator;
      rows = [];
    }
    const mask = e.mask === PRIVATE_BLOCK_MASK ? '' : `,${jhex(e.mask)}`;
    rows.push(`[${jhex(e.tag)},${jvr(e.vrs)},${j(e.vm)},${j(e.name)},${e.retired ? 1 : 0}${mask}]`);
  }
  flush();
  out.push(groups.join(',\n'));
  out.push('\n]`;\n');
  return out.join('');
}

function main(): void {
  const dump = loadPydicom();
  const { elements, skipped } = buildElements(dump);
  const { uids, added } = buildUids(dump);
  const priv = buildPrivate(dump);
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(new URL('elements.ts', OUT_DIR), renderElements(dump.version, elements, skipped));
  writeFileSync(new URL('uids.ts', OUT_DIR), renderUids(dump.version, uids));
  writeFileSync(
    new URL('private.ts', OUT_DIR),
    renderPrivate(dump.version, priv.entries, priv.skipped, dump.private.length),
  );
  const repeaters = elements.filter((e) => e.mask !== 0xffffffff).length;
  const creators = new Set(priv.entries.map((e) => e.creator)).size;
  const privSkipped = (Object.keys(priv.skipped) as PrivateSkip[]).map((k) => `${priv.skipped[k]} ${k}`);
  console.log(
    `pydicom ${dump.version} (${dump.file}): ${elements.length - repeaters} elements + ${repeaters} repeaters ` +
      `(skipped ${skipped.length} item/delimitation tags), ${uids.length} UIDs (${added.length} supplementary), ` +
      `${priv.entries.length} private elements of ${creators} creators ` +
      `(of ${dump.private.length}; skipped ${privSkipped.join(', ')})`,
  );
}

main();
