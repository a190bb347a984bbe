/**
 * Specific Character Set (0008,0005): PS3.3 C.12.1.1.2 (defined terms) and PS3.5 §6.1 (code extension
 * techniques, Annexes H–K for the Japanese, Korean and Chinese examples).
 *
 * Byte ↔ character tables come from iconv-lite. Where iconv-lite's tables differ from GNU libc iconv
 * (which DCMTK 3.6.7 uses on Debian and which is this module's reference), a short override table
 * below restores glibc's mapping; each was found by comparing every cell of both libraries.
 *
 * dicom-character-set (the other candidate decoder) is not used: it maps ISO_IR 100 to windows-1252
 * and ISO_IR 148 to windows-1254 (DCMTK: ISO-8859-1 / ISO-8859-9, which differ at 0x80–0x9F), decodes
 * the default repertoire as UTF-8, lacks ISO_IR 203, throws on unknown terms and escape sequences,
 * and cannot encode.
 */
import { createRequire } from 'node:module';
import { CodecError, type VR } from '../core/index.ts';

type Iconv = typeof import('iconv-lite');
let iconvModule: Iconv | undefined;

/**
 * iconv-lite, loaded at the first value that needs one of its tables: most data sets are in the
 * default repertoire, ISO_IR 100 or UTF-8 and never need it, and loading it costs ~7 ms of start-up.
 */
function iconv(): Iconv {
  iconvModule ??= createRequire(import.meta.url)('iconv-lite') as Iconv;
  return iconvModule;
}

export interface CharacterSet {
  /**
   * Normalized values of (0008,0005), in order: spelling fixed ('ISO-IR 100' → 'ISO_IR 100'), single-byte
   * terms turned into their 'ISO 2022 …' form when there is more than one value, '' put first when the
   * first value was a multi-byte code extension set, duplicates and misplaced stand-alone sets
   * (ISO_IR 192, GB18030, GBK) dropped. Empty for the default repertoire. Unknown values stay in place
   * (upper-cased) and are also listed in `unknownTerms`.
   */
  readonly terms: readonly string[];
  /** ISO_IR 192: the value is UTF-8 as a whole. */
  readonly isUtf8: boolean;
  /** Only the default repertoire (ISO 646, ASCII) is declared. */
  readonly isDefault: boolean;
  /** Values that are no defined term even after fixing their spelling (decoded as ISO 8859-1). */
  readonly unknownTerms: readonly string[];
}

export const DEFAULT_CHARACTER_SET: CharacterSet = Object.freeze({
  terms: Object.freeze([] as string[]),
  isUtf8: false,
  isDefault: true,
  unknownTerms: Object.freeze([] as string[]),
});

const ESC = 0x1b;
const REPLACEMENT = '\ufffd';

// ---------------------------------------------------------------------------------------------------
// Code elements (PS3.3 Tables C.12-3 and C.12-4): what an escape sequence designates into G0 or G1.
// ---------------------------------------------------------------------------------------------------

type ElementKind = 'ascii' | 'romaji' | 'katakana' | 'sb96' | 'jisx0208' | 'jisx0212' | 'ksx1001' | 'gb2312';

interface Element {
  readonly name: string;
  readonly kind: ElementKind;
  /** 0 = G0 (GL, bytes 0x21–0x7E), 1 = G1 (GR, bytes 0xA0–0xFF). */
  readonly slot: 0 | 1;
  readonly escape: readonly number[];
  /** For 'sb96': the characters of bytes 0x80–0xFF, U+FFFD where undefined. */
  readonly high?: readonly string[];
  /** For 'sb96': the inverse of `high`. */
  readonly highInverse?: ReadonlyMap<number, number>;
}

/** A single-byte G1 set; its tables (128 iconv-lite decodes) are built on first use, not at start-up. */
function singleByteElement(name: string, encoding: string, final: number): Element {
  let tables: { high: string[]; highInverse: Map<number, number> } | undefined;
  const build = (): { high: string[]; highInverse: Map<number, number> } => {
    const high: string[] = [];
    const highInverse = new Map<number, number>();
    for (let b = 0x80; b <= 0xff; b++) {
      const ch = iconv().decode(Buffer.from([b]), encoding);
      high.push(ch);
      if (ch !== REPLACEMENT) highInverse.set(ch.codePointAt(0)!, b);
    }
    return { high, highInverse };
  };
  return {
    name,
    kind: 'sb96',
    slot: 1,
    escape: [ESC, 0x2d, final],
    get high() {
      tables ??= build();
      return tables.high;
    },
    get highInverse() {
      tables ??= build();
      return tables.highInverse;
    },
  };
}

const ASCII: Element = { name: 'ISO-IR 6', kind: 'ascii', slot: 0, escape: [ESC, 0x28, 0x42] };
const ROMAJI: Element = {
  name: 'ISO-IR 14 (JIS X 0201 Romaji)',
  kind: 'romaji',
  slot: 0,
  escape: [ESC, 0x28, 0x4a],
};
const KATAKANA: Element = {
  name: 'ISO-IR 13 (JIS X 0201 Katakana)',
  kind: 'katakana',
  slot: 1,
  escape: [ESC, 0x29, 0x49],
};
const JISX0208: Element = {
  name: 'ISO-IR 87 (JIS X 0208)',
  kind: 'jisx0208',
  slot: 0,
  escape: [ESC, 0x24, 0x42],
};
const JISX0212: Element = {
  name: 'ISO-IR 159 (JIS X 0212)',
  kind: 'jisx0212',
  slot: 0,
  escape: [ESC, 0x24, 0x28, 0x44],
};
const KSX1001: Element = {
  name: 'ISO-IR 149 (KS X 1001)',
  kind: 'ksx1001',
  slot: 1,
  escape: [ESC, 0x24, 0x29, 0x43],
};
const GB2312: Element = {
  name: 'ISO-IR 58 (GB 2312)',
  kind: 'gb2312',
  slot: 1,
  escape: [ESC, 0x24, 0x29, 0x41],
};

/** The single-byte sets of Tables C.12-2/C.12-3: IR number → G1 element (glibc names as used by DCMTK). */
const SINGLE_BYTE: ReadonlyMap<number, Element> = new Map([
  [100, singleByteElement('ISO-IR 100 (ISO 8859-1, Latin-1)', 'iso-8859-1', 0x41)],
  [101, singleByteElement('ISO-IR 101 (ISO 8859-2, Latin-2)', 'iso-8859-2', 0x42)],
  [109, singleByteElement('ISO-IR 109 (ISO 8859-3, Latin-3)', 'iso-8859-3', 0x43)],
  [110, singleByteElement('ISO-IR 110 (ISO 8859-4, Latin-4)', 'iso-8859-4', 0x44)],
  [144, singleByteElement('ISO-IR 144 (ISO 8859-5, Cyrillic)', 'iso-8859-5', 0x4c)],
  [127, singleByteElement('ISO-IR 127 (ISO 8859-6, Arabic)', 'iso-8859-6', 0x47)],
  [126, singleByteElement('ISO-IR 126 (ISO 8859-7, Greek)', 'iso-8859-7', 0x46)],
  [138, singleByteElement('ISO-IR 138 (ISO 8859-8, Hebrew)', 'iso-8859-8', 0x48)],
  [148, singleByteElement('ISO-IR 148 (ISO 8859-9, Latin-5)', 'iso-8859-9', 0x4d)],
  [203, singleByteElement('ISO-IR 203 (ISO 8859-15, Latin-9)', 'iso-8859-15', 0x62)],
  [166, singleByteElement('ISO-IR 166 (TIS 620, Thai)', 'tis620', 0x54)],
]);
const LATIN1 = SINGLE_BYTE.get(100)!;

/** Multi-byte sets usable only with code extensions (Table C.12-4), by IR number. */
const MULTI_BYTE: ReadonlyMap<number, Element> = new Map([
  [87, JISX0208],
  [159, JISX0212],
  [149, KSX1001],
  [58, GB2312],
]);

/** Every escape sequence the decoder recognizes, declared in (0008,0005) or not. */
const ESCAPES: readonly Element[] = [
  ASCII,
  ROMAJI,
  KATAKANA,
  ...SINGLE_BYTE.values(),
  JISX0208,
  // ESC $ @ designates JIS C 6226-1978, the predecessor of JIS X 0208; seen in the wild, read as JIS X 0208.
  { ...JISX0208, escape: [ESC, 0x24, 0x40] },
  JISX0212,
  KSX1001,
  GB2312,
];

const STAND_ALONE = new Set(['ISO_IR 192', 'GB18030', 'GBK']);

// ---------------------------------------------------------------------------------------------------
// Overrides of iconv-lite's tables so that characters match glibc iconv (what DCMTK decodes with).
// ---------------------------------------------------------------------------------------------------

/**
 * JIS X 0208 (and Shift_JIS): iconv-lite follows Microsoft's CP932 for six cells, glibc (and Python's
 * iso2022_jp, and the JIS0208.TXT mapping) the standard characters. Keyed by iconv-lite's character.
 */
const JIS_FIX: ReadonlyMap<string, string> = new Map([
  ['\uff5e', '\u301c'], // 0x2141 WAVE DASH
  ['\u2225', '\u2016'], // 0x2142 DOUBLE VERTICAL LINE
  ['\uff0d', '\u2212'], // 0x215D MINUS SIGN
  ['\uffe0', '\u00a2'], // 0x2171 CENT SIGN
  ['\uffe1', '\u00a3'], // 0x2172 POUND SIGN
  ['\uffe2', '\u00ac'], // 0x224C NOT SIGN
]);
const JIS_FIX_RE = /[\uff5e\u2225\uff0d\uffe0\uffe1\uffe2]/g;
/** The cells of those characters, for encoding (iconv-lite puts some of them in JIS X 0212). */
const JIS_FIX_CELLS: ReadonlyMap<number, number> = new Map([
  [0x301c, 0xa1c1],
  [0x2016, 0xa1c2],
  [0x2212, 0xa1dd],
  [0x00a2, 0xa1f1],
  [0x00a3, 0xa1f2],
  [0x00ac, 0xa2cc],
]);

/** KS X 1001:2002 added 0x2268, which iconv-lite lacks (glibc's EUC-KR has it). */
const KSX1001_OVERRIDES: ReadonlyMap<number, string> = new Map([[0xa2e8, '\u327e']]); // CIRCLED HANGUL IEUNG U

/**
 * GB 18030-2022 moved these 2-byte cells from the Private Use Area to real characters; glibc 2.36 has
 * the new mapping, iconv-lite the 2005 one (and U+3000 for 0xA3A0).
 */
const GB18030_OVERRIDES: ReadonlyMap<number, string> = new Map([
  [0xa6d9, '\ufe10'],
  [0xa6da, '\ufe12'],
  [0xa6db, '\ufe11'],
  [0xa6dc, '\ufe13'],
  [0xa6dd, '\ufe14'],
  [0xa6de, '\ufe15'],
  [0xa6df, '\ufe16'],
  [0xa6ec, '\ufe17'],
  [0xa6ed, '\ufe18'],
  [0xa6f3, '\ufe19'],
  [0xfe59, '\u9fb4'],
  [0xfe61, '\u9fb5'],
  [0xfe66, '\u9fb6'],
  [0xfe67, '\u9fb7'],
  [0xfe6d, '\u9fb8'],
  [0xfe7e, '\u9fb9'],
  [0xfe90, '\u9fba'],
  [0xfea0, '\u9fbb'],
  [0xfe51, '\u{20087}'],
  [0xfe52, '\u{20089}'],
  [0xfe53, '\u{200cc}'],
  [0xfe6c, '\u{215d7}'],
  [0xfe76, '\u{2298f}'],
  [0xfe91, '\u{241fe}'],
  [0xa3a0, '\ue5e5'],
]);

/** GB 2312 as glibc maps it (the original GB2312.TXT), where GBK/GB 18030 differ. */
const GB2312_OVERRIDES: ReadonlyMap<number, string> = new Map([
  ...GB18030_OVERRIDES,
  [0xa1a4, '\u30fb'], // KATAKANA MIDDLE DOT (GBK: U+00B7)
  [0xa1aa, '\u2015'], // HORIZONTAL BAR (GBK: U+2014)
]);

function inverse(map: ReadonlyMap<number, string>): ReadonlyMap<number, number> {
  return new Map([...map].map(([cell, ch]) => [ch.codePointAt(0)!, cell]));
}
const KSX1001_OVERRIDES_INVERSE = inverse(KSX1001_OVERRIDES);
const GB18030_OVERRIDES_INVERSE = inverse(GB18030_OVERRIDES);
const GB2312_OVERRIDES_INVERSE = inverse(GB2312_OVERRIDES);

// ---------------------------------------------------------------------------------------------------
// Parsing (0008,0005)
// ---------------------------------------------------------------------------------------------------

const ISO_8859_PARTS: ReadonlyMap<number, number> = new Map([
  [1, 100],
  [2, 101],
  [3, 109],
  [4, 110],
  [5, 144],
  [6, 127],
  [7, 126],
  [8, 138],
  [9, 148],
  [15, 203],
]);

/** Fixes the spelling of one value; undefined when it is no defined term. */
function normalizeTerm(value: string, first: boolean, multi: boolean): string | undefined {
  const s = value.toUpperCase().replace(/\s+/g, ' ');
  if (s === '') return '';
  if (/^UTF[ _-]?8$/.test(s)) return 'ISO_IR 192';
  if (/^GB[ _-]?18030$/.test(s)) return 'GB18030';
  if (s === 'GBK') return 'GBK';
  // Not a defined term. Alone it labels EUC-CN bytes without escape sequences, which GBK (a superset)
  // decodes; among several values it can only mean the ISO 2022 form.
  if (/^(GB[ _-]?2312|EUC[ _-]?CN)$/.test(s)) return first ? 'GBK' : 'ISO 2022 IR 58';
  let m = /^ISO[ _-]?2022[ _-]?IR[ _-]?(\d+)$/.exec(s);
  if (m) {
    const n = Number(m[1]);
    return n === 6 || n === 13 || SINGLE_BYTE.has(n) || MULTI_BYTE.has(n) ? `ISO 2022 IR ${n}` : undefined;
  }
  m = /^ISO[ _-]?IR[ _-]?(\d+)$/.exec(s) ?? /^ISO[ _-]?8859[ _-]?(\d+)$/.exec(s);
  if (m) {
    let n = Number(m[1]);
    if (s.includes('8859')) {
      const ir = ISO_8859_PARTS.get(n);
      if (ir === undefined) return undefined;
      n = ir;
    }
    if (n === 6) return multi ? 'ISO 2022 IR 6' : '';
    if (n === 192) return 'ISO_IR 192';
    if (n === 13 || SINGLE_BYTE.has(n)) return multi ? `ISO 2022 IR ${n}` : `ISO_IR ${n}`;
    if (MULTI_BYTE.has(n)) return `ISO 2022 IR ${n}`;
    return undefined;
  }
  if (s === 'TIS-620' || s === 'TIS620') return multi ? 'ISO 2022 IR 166' : 'ISO_IR 166';
  return undefined;
}

/**
 * Reads the raw value of Specific Character Set (0008,0005) (a backslash-separated string or its values).
 * Never throws: unknown values are recorded in `unknownTerms` and decoded as ISO 8859-1, which is
 * pydicom's fallback (`pydicom.charset.default_encoding = "iso8859"`, with a warning); DCMTK 3.6.7 has
 * none: dcm2json fails with "SpecificCharacterSet (0008,0005) value 'X' not supported".
 *
 * Leniency beyond PS3.3: case and spaces, 'ISO-IR'/'ISO_IR100'/'ISO IR' spellings, 'UTF-8', 'GB 18030',
 * 'ISO-8859-n', and 'GB2312' (alone: GBK; after the first value: ISO 2022 IR 58) are accepted; a single
 * 'ISO 2022 IR 100'-style value is read as Latin-1 with code extensions (DCMTK 3.6.7 rejects it); a
 * multi-byte set as first value gets the default repertoire put before it ('ISO 2022 IR 87' → '\ISO 2022
 * IR 87', as pydicom reads it; DCMTK rejects it); 'ISO_IR 100' among several values is read as
 * 'ISO 2022 IR 100' (DCMTK rejects it); a stand-alone set (ISO_IR 192, GB18030, GBK) first makes the
 * others ignored, elsewhere it is ignored (pydicom and dicom-character-set do the same); duplicates are
 * dropped (DCMTK warns and ignores them).
 */
export function parseCharacterSet(value: string | readonly string[] | undefined): CharacterSet {
  if (value === undefined) return DEFAULT_CHARACTER_SET;
  const raw = (typeof value === 'string' ? value : value.join('\\'))
    .split('\\')
    .map((v) => v.replace(/^[\s\0]+|[\s\0]+$/g, ''));
  const values = raw.filter((v, i) => i === 0 || v !== '');
  if (values.length === 0 || (values.length === 1 && values[0] === '')) return DEFAULT_CHARACTER_SET;
  const multi = values.length > 1;
  let terms: string[] = [];
  const unknownTerms: string[] = [];
  values.forEach((v, i) => {
    const term = normalizeTerm(v, i === 0, multi);
    if (term === undefined) {
      const shown = v.toUpperCase().replace(/\s+/g, ' ');
      if (!unknownTerms.includes(shown)) unknownTerms.push(shown);
      terms.push(shown);
    } else {
      terms.push(term);
    }
  });
  const first = terms[0]!;
  if (STAND_ALONE.has(first)) terms = [first];
  else terms = terms.filter((t) => !STAND_ALONE.has(t));
  if (isMultiByteExtension(first)) terms.unshift('');
  terms = terms.filter((t, i) => terms.indexOf(t) === i);
  if (terms.length === 1 && terms[0] === '') terms = [];
  const unknown = unknownTerms.filter((u) => terms.includes(u));
  return Object.freeze({
    terms: Object.freeze(terms),
    isUtf8: terms[0] === 'ISO_IR 192',
    isDefault: unknown.length === 0 && terms.every((t) => t === '' || t === 'ISO 2022 IR 6'),
    unknownTerms: Object.freeze(unknown),
  });
}

function isMultiByteExtension(term: string): boolean {
  const m = /^ISO 2022 IR (\d+)$/.exec(term);
  return m !== null && MULTI_BYTE.has(Number(m[1]));
}

// ---------------------------------------------------------------------------------------------------
// Plans: how a CharacterSet decodes and encodes
// ---------------------------------------------------------------------------------------------------

type Plan =
  | { readonly kind: 'whole'; readonly encoding: 'utf8' | 'gb18030' | 'gbk'; readonly label: string }
  | {
      readonly kind: 'iso2022';
      /** False for the sets without code extensions: escape bytes are then plain characters. */
      readonly escapes: boolean;
      readonly initialG0: Element;
      readonly initialG1: Element | undefined;
      /** Decodes bytes >= 0x80 while no G1 set is designated (lenient reading only). */
      readonly fallbackG1: Element;
      /** The elements of the declared terms, in order: the encoder's choices. */
      readonly listed: readonly Element[];
      readonly label: string;
    };

/** G0/G1 elements of one term (both spellings accepted); undefined for an unknown term. */
function termElements(term: string): { g0?: Element; g1?: Element } | undefined {
  if (term === '' || term === 'ISO 2022 IR 6' || term === 'ISO_IR 6') return { g0: ASCII };
  const m = /^ISO(?:_| 2022 )IR (\d+)$/.exec(term);
  if (!m) return undefined;
  const n = Number(m[1]);
  if (n === 13) return { g0: ROMAJI, g1: KATAKANA };
  const sb = SINGLE_BYTE.get(n);
  if (sb) return { g0: ASCII, g1: sb };
  const mb = MULTI_BYTE.get(n);
  if (mb) return mb.slot === 0 ? { g0: mb } : { g1: mb };
  return undefined;
}

const DEFAULT_PLAN: Plan = {
  kind: 'iso2022',
  escapes: false,
  initialG0: ASCII,
  initialG1: undefined,
  fallbackG1: LATIN1,
  listed: [ASCII],
  label: 'default repertoire (ISO 646)',
};

const plans = new WeakMap<CharacterSet, Plan>();

function planFor(cs: CharacterSet): Plan {
  let plan = plans.get(cs);
  if (!plan) {
    plan = buildPlan(cs.terms);
    plans.set(cs, plan);
  }
  return plan;
}

function buildPlan(terms: readonly string[]): Plan {
  const label = terms.join('\\');
  // as parseCharacterSet does, for hand-made CharacterSets: a multi-byte set cannot be the initial one
  if (terms[0] !== undefined && isMultiByteExtension(terms[0])) terms = ['', ...terms];
  const first = terms[0];
  if (first === undefined || (terms.length === 1 && (first === '' || first === 'ISO_IR 6')))
    return DEFAULT_PLAN;
  if (first === 'ISO_IR 192') return { kind: 'whole', encoding: 'utf8', label };
  if (first === 'GB18030') return { kind: 'whole', encoding: 'gb18030', label };
  if (first === 'GBK') return { kind: 'whole', encoding: 'gbk', label };
  const escapes = terms.length > 1 || first.startsWith('ISO 2022 ');
  const listed: Element[] = [];
  const add = (e: Element | undefined) => {
    if (e && !listed.includes(e)) listed.push(e);
  };
  // An unknown first value reads as ISO 8859-1 (see decodeText); unknown later values add nothing.
  const firstElements = termElements(first) ?? { g0: ASCII, g1: LATIN1 };
  const initialG0 = firstElements.g0 ?? ASCII;
  const initialG1 = firstElements.g1;
  add(initialG0);
  add(initialG1);
  for (const term of terms.slice(1)) {
    const e = termElements(term);
    add(e?.g0);
    add(e?.g1);
  }
  const fallbackG1 = listed.find((e) => e.slot === 1) ?? LATIN1;
  return { kind: 'iso2022', escapes, initialG0, initialG1, fallbackG1, listed, label };
}

// ---------------------------------------------------------------------------------------------------
// Delimiters (PS3.5 §6.1.2.5.3)
// ---------------------------------------------------------------------------------------------------

/** VRs whose values use (0008,0005) (PS3.5 §6.1.2.3); all others use the default repertoire. */
const CHARSET_VRS: ReadonlySet<VR> = new Set<VR>(['SH', 'LO', 'ST', 'LT', 'UC', 'UT', 'PN']);
/** VRs with a single value, where a backslash is a character, not a value delimiter. */
const SINGLE_VALUED: ReadonlySet<VR> = new Set<VR>(['ST', 'LT', 'UT', 'UR']);

interface Delimiters {
  readonly backslash: boolean;
  readonly pn: boolean;
}

function delimitersOf(vr: VR): Delimiters {
  return { backslash: !SINGLE_VALUED.has(vr), pn: vr === 'PN' };
}

function isDelimiter(b: number, d: Delimiters): boolean {
  return (
    b === 0x09 ||
    b === 0x0a ||
    b === 0x0c ||
    b === 0x0d ||
    (b === 0x5c && d.backslash) ||
    ((b === 0x5e || b === 0x3d) && d.pn)
  );
}

// ---------------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------------

/** True when every byte is 7-bit and none is ESC: such a value reads the same in any ASCII-based set. */
export function isAsciiOnly(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b >= 0x80 || b === ESC) return false;
  }
  return true;
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/**
 * Decodes one element value (all of it: backslashes are kept for the caller to split, padding is not
 * stripped). For VRs that do not use (0008,0005) the default repertoire applies.
 *
 * Never throws; where DCMTK 3.6.7 fails the conversion this decodes as best it can:
 * - bytes >= 0x80 with no G1 set designated (default repertoire, or '\ISO 2022 IR 149' text without
 *   escape sequences) read in the first declared G1 set, else as ISO 8859-1 (pydicom's fallback);
 * - a first value that is an unknown term reads as ISO 8859-1 (see parseCharacterSet);
 * - escape sequences are honoured even for sets not declared in (0008,0005) (DCMTK refuses those);
 *   an unknown one is kept as U+001B and the bytes after it read in the current state;
 * - undefined bytes become U+FFFD.
 */
export function decodeText(bytes: Uint8Array, cs: CharacterSet, vr: VR): string {
  const plan = CHARSET_VRS.has(vr) ? planFor(cs) : DEFAULT_PLAN;
  if (plan.kind === 'whole') {
    if (plan.encoding === 'utf8')
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
    return decodeGb(bytes, plan.encoding);
  }
  if (plan.initialG0 === ASCII && isAsciiOnly(bytes)) return latin1(bytes);
  return decodeIso2022(bytes, plan, delimitersOf(vr));
}

type Iso2022Plan = Extract<Plan, { kind: 'iso2022' }>;

/** A run of multi-byte characters, decoded with one iconv-lite call. */
type RunKind = 'jisx0208' | 'jisx0212' | 'sjis' | 'ksx1001' | 'gb2312';

function decodeIso2022(bytes: Uint8Array, plan: Iso2022Plan, delimiters: Delimiters): string {
  const out: string[] = [];
  let g0 = plan.initialG0;
  let g1 = plan.initialG1;
  let runKind: RunKind | undefined;
  let run: number[] = [];
  const flush = () => {
    if (runKind !== undefined && run.length > 0) out.push(decodeRun(runKind, run));
    run = [];
    runKind = undefined;
  };
  const pair = (kind: RunKind, a: number, b: number) => {
    if (runKind !== kind) flush();
    runKind = kind;
    run.push(a, b);
  };
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b === ESC && plan.escapes) {
      flush();
      const designated = matchEscape(bytes, i);
      if (designated) {
        if (designated.slot === 0) g0 = designated;
        else g1 = designated;
        i += designated.escape.length;
      } else {
        out.push('\x1b');
        i++;
      }
      continue;
    }
    if (b < 0x80) {
      if (g0.kind === 'jisx0208' || g0.kind === 'jisx0212') {
        // 94x94 sets take their bytes in pairs; '\', '^' and '=' can be either byte of a character,
        // so only an explicit switch back (PS3.5 §6.1.2.5.3) ends the run (as in DCMTK 3.6.8).
        const b2 = bytes[i + 1];
        if (b >= 0x21 && b <= 0x7e && b2 !== undefined && b2 >= 0x21 && b2 <= 0x7e) {
          pair(g0.kind, b, b2);
          i += 2;
          continue;
        }
      }
      flush();
      const delimiter = isDelimiter(b, delimiters);
      if (g0.kind === 'romaji' && (b === 0x5c || b === 0x7e)) {
        // JIS X 0201 Romaji has YEN SIGN and OVERLINE there (glibc's Shift_JIS, so DCMTK, agrees);
        // 0x5C stays the value delimiter where there is one, so the caller can split.
        out.push(b === 0x7e ? '\u203e' : delimiter ? '\\' : '\u00a5');
      } else {
        out.push(String.fromCharCode(b));
      }
      if (delimiter) {
        g0 = plan.initialG0;
        g1 = plan.initialG1;
      }
      i++;
      continue;
    }
    const e = g1 ?? plan.fallbackG1;
    const b2 = bytes[i + 1];
    switch (e.kind) {
      case 'katakana':
        if (b >= 0xa1 && b <= 0xdf) {
          flush();
          out.push(String.fromCharCode(0xff61 + b - 0xa1));
          i++;
          continue;
        }
        // Shift_JIS double-byte characters under ISO_IR 13: DCMTK reads ISO_IR 13 with glibc's Shift_JIS.
        if (((b >= 0x81 && b <= 0x9f) || (b >= 0xe0 && b <= 0xfc)) && b2 !== undefined && isSjisTrail(b2)) {
          pair('sjis', b, b2);
          i += 2;
          continue;
        }
        break;
      case 'ksx1001':
        // KS X 1001 pairs, and the CP949 (UHC) extension that Korean systems write without escapes.
        if (b <= 0xfe && b2 !== undefined && (b2 >= 0x81 ? b2 <= 0xfe : isAsciiLetter(b2))) {
          pair('ksx1001', b, b2);
          i += 2;
          continue;
        }
        break;
      case 'gb2312':
        // GB 2312 pairs, and GBK ones (written without escapes by some systems).
        if (b <= 0xfe && b2 !== undefined && b2 >= 0x40 && b2 <= 0xfe && b2 !== 0x7f) {
          pair('gb2312', b, b2);
          i += 2;
          continue;
        }
        break;
      default:
        flush();
        out.push(e.high?.[b - 0x80] ?? REPLACEMENT);
        i++;
        continue;
    }
    flush();
    out.push(REPLACEMENT);
    i++;
  }
  flush();
  return out.join('');
}

function isSjisTrail(b: number): boolean {
  return b >= 0x40 && b <= 0xfc && b !== 0x7f;
}

function isAsciiLetter(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

function matchEscape(bytes: Uint8Array, at: number): Element | undefined {
  outer: for (const e of ESCAPES) {
    for (let k = 0; k < e.escape.length; k++) {
      if (bytes[at + k] !== e.escape[k]) continue outer;
    }
    return e;
  }
  return undefined;
}

function decodeRun(kind: RunKind, run: readonly number[]): string {
  switch (kind) {
    case 'jisx0208':
      return fixJis(iconv().decode(Buffer.from(run.map((b) => b | 0x80)), 'eucjp'));
    case 'jisx0212': {
      const euc: number[] = [];
      for (let k = 0; k < run.length; k += 2) euc.push(0x8f, run[k]! | 0x80, run[k + 1]! | 0x80);
      return iconv().decode(Buffer.from(euc), 'eucjp');
    }
    case 'sjis':
      return fixJis(iconv().decode(Buffer.from(run), 'shiftjis'));
    case 'ksx1001':
      return decodePairs(run, KSX1001_OVERRIDES, 'euckr');
    case 'gb2312':
      return decodePairs(run, GB2312_OVERRIDES, 'gbk');
  }
}

function fixJis(s: string): string {
  return s.replace(JIS_FIX_RE, (ch) => JIS_FIX.get(ch) ?? ch);
}

/** Decodes byte pairs, taking the characters of `overrides` from there and the others from iconv-lite. */
function decodePairs(
  run: readonly number[],
  overrides: ReadonlyMap<number, string>,
  encoding: string,
): string {
  let out = '';
  let start = 0;
  for (let k = 0; k < run.length; k += 2) {
    const o = overrides.get((run[k]! << 8) | run[k + 1]!);
    if (o !== undefined) {
      if (k > start) out += iconv().decode(Buffer.from(run.slice(start, k)), encoding);
      out += o;
      start = k + 2;
    }
  }
  if (run.length > start) out += iconv().decode(Buffer.from(run.slice(start)), encoding);
  return out;
}

/** GB18030 / GBK as a whole, with the GB 18030-2022 cells of glibc. */
function decodeGb(bytes: Uint8Array, encoding: 'gb18030' | 'gbk'): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = '';
  let start = 0;
  let i = 0;
  while (i < buf.length) {
    const b = buf[i]!;
    if (b < 0x81 || b > 0xfe || i + 1 >= buf.length) {
      i++;
      continue;
    }
    const b2 = buf[i + 1]!;
    if (b2 >= 0x30 && b2 <= 0x39) {
      i += 4;
      continue;
    }
    const o = GB18030_OVERRIDES.get((b << 8) | b2);
    if (o !== undefined) {
      if (i > start) out += iconv().decode(buf.subarray(start, i), encoding);
      out += o;
      start = i + 2;
    }
    i += 2;
  }
  if (buf.length > start) out += iconv().decode(buf.subarray(start), encoding);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------------

function unencodable(text: string, index: number, cp: number, label: string): CodecError {
  const hex = cp.toString(16).toUpperCase().padStart(4, '0');
  const shown = cp < 0x20 || (cp >= 0xd800 && cp <= 0xdfff) ? '' : ` '${String.fromCodePoint(cp)}'`;
  return new CodecError(
    'ERR_CODEC_CHARSET_UNENCODABLE',
    `Character U+${hex}${shown} at index ${index} of ${JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text)} cannot be encoded in Specific Character Set '${label || 'default repertoire'}'`,
  );
}

/**
 * Encodes one element value (the caller has joined multiple values with '\'). With code extensions,
 * each character goes to the G0/G1 set in use if it has it, else to the first declared set that has it
 * (fewest escape sequences); before each delimiter and at the end the initial sets are designated again
 * (PS3.5 §6.1.2.5.3), except a G1 that had none initially (Annex I). Characters whose bytes would not
 * decode back to the same character (e.g. U+FF5E in JIS X 0208, which reads as U+301C) count as
 * unencodable: decodeText(encodeText(s)) === s for every s that encodes.
 *
 * @throws CodecError ERR_CODEC_CHARSET_UNENCODABLE for a character no declared set can encode.
 */
export function encodeText(text: string, cs: CharacterSet, vr: VR): Buffer {
  const plan = CHARSET_VRS.has(vr) ? planFor(cs) : DEFAULT_PLAN;
  if (plan.kind === 'whole') return encodeWhole(text, plan.encoding, plan.label);
  if (plan.initialG0 === ASCII && isAsciiText(text)) return Buffer.from(text, 'latin1');
  return encodeIso2022(text, plan, delimitersOf(vr));
}

function isAsciiText(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80 || c === ESC) return false;
  }
  return true;
}

function encodeIso2022(text: string, plan: Iso2022Plan, delimiters: Delimiters): Buffer {
  const out: number[] = [];
  let g0 = plan.initialG0;
  let g1 = plan.initialG1;
  const switchBack = () => {
    if (g0 !== plan.initialG0) {
      out.push(...plan.initialG0.escape);
      g0 = plan.initialG0;
    }
    if (g1 !== plan.initialG1) {
      if (plan.initialG1) out.push(...plan.initialG1.escape);
      g1 = plan.initialG1;
    }
  };
  let index = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x80 && isDelimiter(cp, delimiters)) {
      switchBack();
      out.push(cp);
    } else {
      let bytes = encodeIn(g0, cp, delimiters, plan.escapes);
      if (!bytes && g1) bytes = encodeIn(g1, cp, delimiters, plan.escapes);
      if (!bytes && plan.escapes) {
        for (const e of plan.listed) {
          if (e === g0 || e === g1) continue;
          bytes = encodeIn(e, cp, delimiters, true);
          if (bytes) {
            out.push(...e.escape);
            if (e.slot === 0) g0 = e;
            else g1 = e;
            break;
          }
        }
      }
      if (!bytes) throw unencodable(text, index, cp, plan.label);
      out.push(...bytes);
    }
    index += ch.length;
  }
  switchBack();
  return Buffer.from(out);
}

/** The bytes of one character in one code element, or undefined when the element lacks it. */
function encodeIn(
  e: Element,
  cp: number,
  delimiters: Delimiters,
  escapes: boolean,
): readonly number[] | undefined {
  switch (e.kind) {
    case 'ascii':
      return cp < 0x80 && !(escapes && cp === ESC) ? [cp] : undefined;
    case 'romaji':
      if (cp === 0x203e) return [0x7e];
      if (cp === 0xa5) return delimiters.backslash ? undefined : [0x5c];
      return cp < 0x80 && cp !== 0x5c && cp !== 0x7e && !(escapes && cp === ESC) ? [cp] : undefined;
    case 'katakana':
      return cp >= 0xff61 && cp <= 0xff9f ? [cp - 0xff61 + 0xa1] : undefined;
    case 'sb96': {
      const b = e.highInverse?.get(cp);
      return b === undefined ? undefined : [b];
    }
    default:
      return encodeMultiByte(e.kind, cp);
  }
}

const multiByteCache = new Map<string, readonly number[] | null>();

function encodeMultiByte(
  kind: 'jisx0208' | 'jisx0212' | 'ksx1001' | 'gb2312',
  cp: number,
): readonly number[] | undefined {
  const key = `${kind}:${cp}`;
  let bytes = multiByteCache.get(key);
  if (bytes === undefined) {
    bytes = computeMultiByte(kind, cp);
    multiByteCache.set(key, bytes);
  }
  return bytes ?? undefined;
}

function computeMultiByte(
  kind: 'jisx0208' | 'jisx0212' | 'ksx1001' | 'gb2312',
  cp: number,
): readonly number[] | null {
  if (cp < 0x80 || (cp >= 0xd800 && cp <= 0xdfff)) return null;
  const ch = String.fromCodePoint(cp);
  const inRange = (b: number | undefined, lo = 0xa1, hi = 0xfe): b is number =>
    b !== undefined && b >= lo && b <= hi;
  switch (kind) {
    case 'jisx0208': {
      const cell = JIS_FIX_CELLS.get(cp);
      const euc = cell === undefined ? iconv().encode(ch, 'eucjp') : Buffer.from([cell >> 8, cell & 0xff]);
      const [a, b] = euc;
      // rows 1-8 and 16-84 only: rows 13 and 89-92 are NEC/IBM vendor additions, not JIS X 0208
      if (euc.length !== 2 || !inRange(b) || !(inRange(a, 0xa1, 0xa8) || inRange(a, 0xb0, 0xf4))) return null;
      const bytes = [a & 0x7f, b & 0x7f];
      return decodeRun('jisx0208', bytes) === ch ? bytes : null;
    }
    case 'jisx0212': {
      const euc = iconv().encode(ch, 'eucjp');
      const [p, a, b] = euc;
      if (euc.length !== 3 || p !== 0x8f || !inRange(a) || !inRange(b)) return null;
      const bytes = [a & 0x7f, b & 0x7f];
      return decodeRun('jisx0212', bytes) === ch ? bytes : null;
    }
    case 'ksx1001': {
      const cell = KSX1001_OVERRIDES_INVERSE.get(cp);
      const euc = cell === undefined ? iconv().encode(ch, 'euckr') : Buffer.from([cell >> 8, cell & 0xff]);
      const [a, b] = euc;
      if (euc.length !== 2 || !inRange(a) || !inRange(b)) return null;
      const bytes = [a, b];
      return decodeRun('ksx1001', bytes) === ch ? bytes : null;
    }
    case 'gb2312': {
      if (cp >= 0xe000 && cp <= 0xf8ff) return null; // GBK's user-defined cells
      const cell = GB2312_OVERRIDES_INVERSE.get(cp);
      const euc = cell === undefined ? iconv().encode(ch, 'gbk') : Buffer.from([cell >> 8, cell & 0xff]);
      const [a, b] = euc;
      // rows 1-9 and 16-87, less the GBK additions in rows 2, 6 and 8
      if (euc.length !== 2 || !inRange(b) || !(inRange(a, 0xa1, 0xa9) || inRange(a, 0xb0, 0xf7))) return null;
      const cellNo = (a << 8) | b;
      if (
        (cellNo >= 0xa2a1 && cellNo <= 0xa2aa) ||
        (cellNo >= 0xa6e0 && cellNo <= 0xa6f5) ||
        (cellNo >= 0xa8bb && cellNo <= 0xa8c0)
      ) {
        return null;
      }
      const bytes = [a, b];
      return decodeRun('gb2312', bytes) === ch ? bytes : null;
    }
  }
}

const GB_OVERRIDE_CHARS_RE = new RegExp(`[${[...GB18030_OVERRIDES.values()].join('')}]`, 'u');

function encodeWhole(text: string, encoding: 'utf8' | 'gb18030' | 'gbk', label: string): Buffer {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = text.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) i++;
      else throw unencodable(text, i, c, label);
    }
  }
  if (encoding === 'utf8') return Buffer.from(text, 'utf8');
  if (!GB_OVERRIDE_CHARS_RE.test(text)) {
    const whole = iconv().encode(text, encoding);
    if (decodeGb(whole, encoding) === text) return whole;
  }
  // Slow path: character by character, to apply the overrides and to find the unencodable one.
  const parts: Buffer[] = [];
  let index = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    const cell = GB18030_OVERRIDES_INVERSE.get(cp);
    const bytes = cell === undefined ? iconv().encode(ch, encoding) : Buffer.from([cell >> 8, cell & 0xff]);
    if (decodeGb(bytes, encoding) !== ch) throw unencodable(text, index, cp, label);
    parts.push(bytes);
    index += ch.length;
  }
  return Buffer.concat(parts);
}
