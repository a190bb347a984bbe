import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { CodecError, type VR } from '../core/index.ts';
import {
  type CharacterSet,
  DEFAULT_CHARACTER_SET,
  decodeText,
  encodeText,
  isAsciiOnly,
  parseCharacterSet,
} from './charset.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const CHARSET_DIR = new URL('../../../shared/data/dicom/charset/', import.meta.url);

/** DCMTK 3.6.7's `dcm2json` output stored next to the corpus file, or undefined when the corpus is absent. */
function dcmtkJson(name: string): Record<string, { Value?: unknown[] }> | undefined {
  const url = new URL(`${name}.dcmtk.json`, CHARSET_DIR);
  return existsSync(url) ? JSON.parse(readFileSync(url, 'utf8')) : undefined;
}

/** PatientName from DCMTK's JSON, component groups joined with '=' as in the encoded value. */
function dcmtkPatientName(name: string): string | undefined {
  const json = dcmtkJson(name);
  if (!json) return undefined;
  const pn = json['00100010']?.Value?.[0] as { Alphabetic?: string; Ideographic?: string; Phonetic?: string };
  return [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''].join('=').replace(/=+$/, '');
}

/** What a reader does after decodeText: drop the trailing padding (and, for PN, empty trailing groups). */
const unpad = (s: string) => s.replace(/[ =]+$/, '');

function assertUnencodable(fn: () => unknown) {
  assert.throws(
    fn,
    (err: unknown) => err instanceof CodecError && err.code === 'ERR_CODEC_CHARSET_UNENCODABLE',
  );
}

// ---------------------------------------------------------------------------------------------------
// PS3.5 Annexes H, I, J, K. Byte sequences are the PatientName (0010,0010) values of David Clunie's
// character set test files, which reproduce the examples of the standard (orthanc-tests
// Database/Encodings/DavidClunie/SCSH31, SCSH32, SCSI2, SCSX1, SCSX2, copied in
// ../shared/data/dicom/charset/clunie-*.dcm) and of fo-dicom's chrGB2312.dcm (chrGB2312-iso2022-ir58-fo.dcm),
// read with `dcmdump +W` / a byte dump, trailing space padding removed.
// ---------------------------------------------------------------------------------------------------

// PS3.5 H.3.1 (SCSH31): "Yamada^Tarou=ESC$B;3ED ESC(B^ESC$BB@O: ESC(B=ESC$B$d$^$@ ESC(B^ESC$B$?$m$& ESC(B"
const H31_TEXT = 'Yamada^Tarou=山田^太郎=やまだ^たろう';
const H31_BYTES = hex(`59616d6164615e5461726f75 3d
  1b2442 3b334544 1b2842 5e 1b2442 42404f3a 1b2842 3d
  1b2442 2464245e2440 1b2842 5e 1b2442 243f246d2426 1b2842`);

// PS3.5 H.3.2 (SCSH32): half-width katakana in G1, then JIS X 0208, switching back with ESC ( J.
const H32_TEXT = 'ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう';
const H32_BYTES = hex(`d4cfc0de 5e c0dbb3 3d
  1b2442 3b334544 1b284a 5e 1b2442 42404f3a 1b284a 3d
  1b2442 2464245e2440 1b284a 5e 1b2442 243f246d2426 1b284a`);

// PS3.5 I.2 (SCSI2): KS X 1001 in G1, designated again after every delimiter, never switched back.
const I2_TEXT = 'Hong^Gildong=洪^吉洞=홍^길동';
const I2_BYTES = hex(`486f6e675e47696c646f6e67 3d
  1b242943 fbf3 5e 1b242943 d1ced4d7 3d 1b242943 c8ab 5e 1b242943 b1e6b5bf`);

// PS3.5 Annex K (ISO 2022 IR 58) as in fo-dicom's chrGB2312.dcm.
const K_TEXT = 'Zhang^XiaoDong=张^小东=';
const K_BYTES = hex('5a68616e675e5869616f446f6e67 3d 1b242941 d5c5 5e 1b242941 d0a1b6ab 3d');

// PS3.5 Annex J: GB18030 (SCSX2) and UTF-8 (SCSX1).
const J_GB18030_TEXT = 'Wang^XiaoDong=王^小东=';
const J_GB18030_BYTES = hex('57616e675e5869616f446f6e67 3d cdf5 5e d0a1b6ab 3d');
const J_UTF8_TEXT = 'Wang^XiaoDong=王^小東=';
const J_UTF8_BYTES = hex('57616e675e5869616f446f6e67 3d e78e8b 5e e5b08fe69db1 3d');

test('PS3.5 H.3.1: Japanese with \\ISO 2022 IR 87 encodes and decodes to the bytes of the standard', () => {
  for (const value of ['\\ISO 2022 IR 87', 'ISO 2022 IR 87', ['', 'ISO 2022 IR 87']]) {
    const cs = parseCharacterSet(value);
    assert.deepEqual(cs.terms, ['', 'ISO 2022 IR 87'], `terms of ${JSON.stringify(value)}`);
    assert.deepEqual(encodeText(H31_TEXT, cs, 'PN'), H31_BYTES);
    assert.equal(decodeText(H31_BYTES, cs, 'PN'), H31_TEXT);
  }
});

test('PS3.5 H.3.2: Japanese with ISO 2022 IR 13\\ISO 2022 IR 87 (katakana in G1, ESC ( J back to Romaji)', () => {
  const cs = parseCharacterSet('ISO 2022 IR 13\\ISO 2022 IR 87');
  assert.deepEqual(cs.terms, ['ISO 2022 IR 13', 'ISO 2022 IR 87']);
  assert.deepEqual(encodeText(H32_TEXT, cs, 'PN'), H32_BYTES);
  assert.equal(decodeText(H32_BYTES, cs, 'PN'), H32_TEXT);
  // 'ISO_IR 13\ISO 2022 IR 87' is a common misspelling of the same thing
  assert.deepEqual(parseCharacterSet('ISO_IR 13\\ISO 2022 IR 87').terms, cs.terms);
});

test('PS3.5 I.2: Korean with \\ISO 2022 IR 149, and DCMTK agrees', () => {
  const cs = parseCharacterSet('\\ISO 2022 IR 149');
  assert.deepEqual(cs.terms, ['', 'ISO 2022 IR 149']);
  assert.deepEqual(encodeText(I2_TEXT, cs, 'PN'), I2_BYTES);
  assert.equal(decodeText(I2_BYTES, cs, 'PN'), I2_TEXT);
  const dcmtk = dcmtkPatientName('clunie-SCSI2-iso2022-ir149-korean');
  if (dcmtk !== undefined) assert.equal(unpad(decodeText(I2_BYTES, cs, 'PN')), dcmtk);
});

test('PS3.5 Annex K: Chinese with \\ISO 2022 IR 58, and DCMTK agrees', () => {
  const cs = parseCharacterSet('\\ISO 2022 IR 58');
  assert.deepEqual(encodeText(K_TEXT, cs, 'PN'), K_BYTES);
  assert.equal(decodeText(K_BYTES, cs, 'PN'), K_TEXT);
  const dcmtk = dcmtkPatientName('chrGB2312-iso2022-ir58-fo');
  if (dcmtk !== undefined) assert.equal(unpad(decodeText(K_BYTES, cs, 'PN')), dcmtk);
});

test('PS3.5 Annex K style: in LT, CR LF resets G1, so ESC $ ) A is repeated on each line', () => {
  const cs = parseCharacterSet('\\ISO 2022 IR 58');
  const text = '1.第一行文字。\r\n2.第二行文字。\r\n';
  // GB 2312 bytes from glibc: printf '第一行文字。' | iconv -t GB2312
  const bytes = hex(`312e 1b242941 b5dad2bbd0d0cec4d7d6a1a3 0d0a
    322e 1b242941 b5dab6fed0d0cec4d7d6a1a3 0d0a`);
  assert.deepEqual(encodeText(text, cs, 'LT'), bytes);
  assert.equal(decodeText(bytes, cs, 'LT'), text);
});

test('PS3.5 Annex J: GB18030 and UTF-8, and DCMTK agrees', () => {
  const gb = parseCharacterSet('GB18030');
  assert.deepEqual(encodeText(J_GB18030_TEXT, gb, 'PN'), J_GB18030_BYTES);
  assert.equal(decodeText(J_GB18030_BYTES, gb, 'PN'), J_GB18030_TEXT);
  const utf8 = parseCharacterSet('ISO_IR 192');
  assert.equal(utf8.isUtf8, true);
  assert.deepEqual(encodeText(J_UTF8_TEXT, utf8, 'PN'), J_UTF8_BYTES);
  assert.equal(decodeText(J_UTF8_BYTES, utf8, 'PN'), J_UTF8_TEXT);
  const dcmtkGb = dcmtkPatientName('clunie-SCSX2-gb18030');
  if (dcmtkGb !== undefined) assert.equal(unpad(decodeText(J_GB18030_BYTES, gb, 'PN')), dcmtkGb);
  const dcmtkUtf8 = dcmtkPatientName('clunie-SCSX1-utf8');
  if (dcmtkUtf8 !== undefined) assert.equal(unpad(decodeText(J_UTF8_BYTES, utf8, 'PN')), dcmtkUtf8);
});

// ---------------------------------------------------------------------------------------------------
// Single-byte sets against DCMTK 3.6.7 (dcm2json, glibc iconv): PatientName bytes of the orthanc-tests
// Lena-*.dcm files (../shared/data/dicom/charset/lena-*.dcm) and the value in NAME.dcmtk.json.
// ---------------------------------------------------------------------------------------------------

const LENA: readonly (readonly [file: string, scs: string, bytes: string, text: string])[] = [
  ['lena-latin1', 'ISO_IR 100', '546573742de9fce4f6f2', 'Test-éüäöò'],
  ['lena-latin2', 'ISO_IR 101', '546573742de9fce4f620', 'Test-éüäö'],
  ['lena-cyrillic', 'ISO_IR 144', '546573742db4fb20', 'Test-Дћ'],
  ['lena-arabic', 'ISO_IR 127', '546573742dd5', 'Test-ص'],
  ['lena-greek', 'ISO_IR 126', '546573742dc8', 'Test-Θ'],
  ['lena-hebrew', 'ISO_IR 138', '546573742de3', 'Test-ד'],
  ['lena-thai-tis620', 'ISO_IR 166', '546573742dfb', 'Test-๛'],
  // Labelled ISO_IR 13 but written as Shift_JIS; DCMTK reads ISO_IR 13 with glibc's Shift_JIS, so do we.
  ['lena-shift-jis-labelled-ir13', 'ISO_IR 13', '546573742d844483a6c8', 'Test-ДΘﾈ'],
  [
    'lena-utf8',
    'ISO_IR 192',
    '546573742dc3a9c3bcc3a4c3b6c3b2d094ce98c49dd793d8b5c4b7d19be0b99befbe88c4b020',
    'Test-éüäöòДΘĝדصķћ๛ﾈİ',
  ],
];

for (const [file, scs, bytes, text] of LENA) {
  test(`${file} (${scs}): decodeText of PatientName equals DCMTK's`, () => {
    const cs = parseCharacterSet(scs);
    const decoded = unpad(decodeText(hex(bytes), cs, 'PN'));
    assert.equal(decoded, text);
    const dcmtk = dcmtkPatientName(file);
    if (dcmtk !== undefined) assert.equal(decoded, dcmtk);
  });
}

test('the corpus with DCMTK JSON is present (the comparisons above ran)', (t) => {
  if (!existsSync(CHARSET_DIR)) {
    t.skip('../shared/data/dicom/charset not found');
    return;
  }
  assert.equal(dcmtkPatientName('lena-latin1'), 'Test-éüäöò');
});

test('ISO_IR 100 is ISO 8859-1 (C1 controls at 0x80-0x9F, as DCMTK), not windows-1252', () => {
  const cs = parseCharacterSet('ISO_IR 100');
  assert.equal(decodeText(hex('80 93 a4'), cs, 'LO'), '\u0080\u0093¤');
  assert.equal(decodeText(hex('80 d0'), parseCharacterSet('ISO_IR 148'), 'LO'), '\u0080Ğ');
  assert.equal(decodeText(hex('a4 a6 bc'), parseCharacterSet('ISO_IR 203'), 'LO'), '€ŠŒ');
});

// ---------------------------------------------------------------------------------------------------
// Round trips for every supported set
// ---------------------------------------------------------------------------------------------------

const SAMPLES: readonly (readonly [scs: string, text: string])[] = [
  ['', 'Smith^John=Smith^John'],
  ['ISO_IR 100', 'Müller^Jürgen Ñoño ß'],
  ['ISO_IR 101', 'Dvořák^Łukasz Ő'],
  ['ISO_IR 109', 'Għawdex^Ċikku Ħ'],
  ['ISO_IR 110', 'Ābele^Ēriks ņ ŗ'],
  ['ISO_IR 144', 'Иванов^Иван ЁЂ'],
  ['ISO_IR 127', 'عبد الله^محمد'],
  ['ISO_IR 126', 'Παπαδόπουλος^Γιώργος'],
  ['ISO_IR 138', 'כהן^דוד'],
  ['ISO_IR 148', 'Şahin^Gül İğdır'],
  ['ISO_IR 203', 'Œuvre^Ÿves € Ššž'],
  ['ISO_IR 13', 'ﾔﾏﾀﾞ^ﾀﾛｳ'],
  ['ISO_IR 166', 'สมชาย^ใจดี'],
  ['ISO_IR 192', 'Ωμέγα^😀 王 홍'],
  ['GB18030', '王^小东 𠀀 ︐ 龴 €'],
  ['GBK', '王^小東 €'],
  ['ISO 2022 IR 6', 'Smith^John'],
  ['ISO 2022 IR 100', 'Müller^Jürgen'],
  ['ISO 2022 IR 101', 'Dvořák^Łukasz'],
  ['ISO 2022 IR 109', 'Għawdex^Ċikku'],
  ['ISO 2022 IR 110', 'Ābele^Ēriks'],
  ['ISO 2022 IR 144', 'Иванов^Иван'],
  ['ISO 2022 IR 127', 'عبد الله^محمد'],
  ['ISO 2022 IR 126', 'Παπαδόπουλος^Γιώργος'],
  ['ISO 2022 IR 138', 'כהן^דוד'],
  ['ISO 2022 IR 148', 'Şahin^Gül'],
  ['ISO 2022 IR 203', 'Œuvre^Ÿves €'],
  ['ISO 2022 IR 13', 'ﾔﾏﾀﾞ^ﾀﾛｳ'],
  ['ISO 2022 IR 166', 'สมชาย^ใจดี'],
  ['\\ISO 2022 IR 87', 'Yamada^Tarou=山田^太郎=やまだ^たろう'],
  // JIS X 0212 example of pydicom issue #1117: 鷗 is only in JIS X 0212
  ['\\ISO 2022 IR 87\\ISO 2022 IR 159', 'Mori^Ogai=森^鷗外=もり^おうがい'],
  ['\\ISO 2022 IR 159', '鷗丂'],
  ['\\ISO 2022 IR 149', 'Hong^Gildong=洪^吉洞=홍^길동'],
  ['\\ISO 2022 IR 58', 'Zhang^XiaoDong=张^小东='],
  ['ISO 2022 IR 100\\ISO 2022 IR 126\\ISO 2022 IR 144', 'Müller αβγ Жук ä'],
  ['ISO 2022 IR 13\\ISO 2022 IR 87\\ISO 2022 IR 159', 'ﾔﾏﾀﾞ 山田 鷗 ‾'],
  ['\\ISO 2022 IR 149\\ISO 2022 IR 58', '홍길동 张小东 ABC'],
];

for (const [scs, text] of SAMPLES) {
  test(`round trip in '${scs}'`, () => {
    const cs = parseCharacterSet(scs);
    assert.deepEqual(cs.unknownTerms, []);
    for (const vr of ['PN', 'LO', 'LT', 'UT'] as const) {
      const bytes = encodeText(text, cs, vr);
      assert.equal(decodeText(bytes, cs, vr), text, `${vr}: ${bytes.toString('hex')}`);
    }
    // multiple values joined by the caller
    const multi = `${text}\\${text}`;
    assert.equal(decodeText(encodeText(multi, cs, 'LO'), cs, 'LO'), multi);
  });
}

test('round trip property: random strings of each set with delimiters', () => {
  const alphabets: readonly (readonly [string, string])[] = [
    ['ISO 2022 IR 13\\ISO 2022 IR 87\\ISO 2022 IR 159', 'Aa1 ﾔﾏﾀﾞ山田やま鷗丂‾'],
    ['\\ISO 2022 IR 87\\ISO 2022 IR 149\\ISO 2022 IR 58', 'Aa1 山田やま홍길동张东〜'],
    ['ISO 2022 IR 100\\ISO 2022 IR 126\\ISO 2022 IR 138', 'Aa1 äé£αβΩאב'],
    ['ISO_IR 13', 'Aa1 ﾔﾏﾀﾞ‾'],
    ['GB18030', 'Aa1 王小东𠀀龴'],
    ['ISO_IR 192', 'Aa1 王😀é'],
  ];
  for (const [scs, alphabet] of alphabets) {
    const cs = parseCharacterSet(scs);
    for (const vr of ['PN', 'LO', 'LT'] as const) {
      const units = [...alphabet, '^', '=', '\r', '\n', '\t', ...(vr === 'LT' ? [] : ['\\'])];
      fc.assert(
        fc.property(fc.string({ unit: fc.constantFrom(...units), maxLength: 30 }), (s) => {
          assert.equal(decodeText(encodeText(s, cs, vr), cs, vr), s);
        }),
        { numRuns: 200 },
      );
    }
  }
});

// ---------------------------------------------------------------------------------------------------
// Unencodable characters
// ---------------------------------------------------------------------------------------------------

test('a character no declared set has throws ERR_CODEC_CHARSET_UNENCODABLE', () => {
  assertUnencodable(() => encodeText('山田', parseCharacterSet('ISO_IR 100'), 'LO'));
  assertUnencodable(() => encodeText('Müller', DEFAULT_CHARACTER_SET, 'PN'));
  assertUnencodable(() => encodeText('Müller', parseCharacterSet('\\ISO 2022 IR 87'), 'PN'));
  assertUnencodable(() => encodeText('Ω', parseCharacterSet('ISO 2022 IR 100\\ISO 2022 IR 144'), 'LO'));
  assertUnencodable(() => encodeText('~', parseCharacterSet('ISO_IR 13'), 'LO'));
  assertUnencodable(() => encodeText('\ud800', parseCharacterSet('ISO_IR 192'), 'LO'));
  assertUnencodable(() => encodeText('ก', parseCharacterSet('GBK'), 'LO'));
  // ESC would start an escape sequence
  assertUnencodable(() => encodeText('a\x1bb', parseCharacterSet('\\ISO 2022 IR 149'), 'LT'));
  // U+FF5E reads back as U+301C WAVE DASH (glibc's JIS X 0208), so it is not representable
  assertUnencodable(() => encodeText('～', parseCharacterSet('\\ISO 2022 IR 87'), 'LO'));
  // non-JIS vendor rows (NEC row 13) are not JIS X 0208
  assertUnencodable(() => encodeText('①', parseCharacterSet('\\ISO 2022 IR 87'), 'LO'));
  // GBK additions are not GB 2312
  assertUnencodable(() => encodeText('ⅰ', parseCharacterSet('\\ISO 2022 IR 58'), 'LO'));
  // VRs outside PS3.5 §6.1.2.3 use the default repertoire
  assertUnencodable(() => encodeText('é', parseCharacterSet('ISO_IR 192'), 'CS'));
});

test('the error names the character and its index', () => {
  try {
    encodeText('ab山', parseCharacterSet('ISO_IR 100'), 'LO');
    assert.fail('no error');
  } catch (err) {
    assert.ok(err instanceof CodecError);
    assert.match(err.message, /U\+5C71 '山' at index 2/);
    assert.match(err.message, /ISO_IR 100/);
  }
});

// ---------------------------------------------------------------------------------------------------
// Parsing (0008,0005)
// ---------------------------------------------------------------------------------------------------

test('parseCharacterSet: default repertoire', () => {
  for (const v of [undefined, '', ' ', [], [''], 'ISO_IR 6', '\\']) {
    const cs = parseCharacterSet(v);
    assert.deepEqual(cs.terms, [], JSON.stringify(v));
    assert.equal(cs.isDefault, true);
    assert.equal(cs.isUtf8, false);
  }
  assert.equal(parseCharacterSet(undefined), DEFAULT_CHARACTER_SET);
  assert.equal(parseCharacterSet('ISO_IR 100').isDefault, false);
  assert.equal(parseCharacterSet('ISO 2022 IR 6').isDefault, true);
});

test('parseCharacterSet: spelling mistakes seen in the wild', () => {
  const same: readonly (readonly [string | readonly string[], readonly string[]])[] = [
    ['ISO-IR 100', ['ISO_IR 100']],
    ['ISO_IR100', ['ISO_IR 100']],
    ['iso_ir 100', ['ISO_IR 100']],
    ['ISO IR 100 ', ['ISO_IR 100']],
    [' ISO_IR 144', ['ISO_IR 144']],
    ['ISO-8859-1', ['ISO_IR 100']],
    ['UTF-8', ['ISO_IR 192']],
    ['utf8', ['ISO_IR 192']],
    ['ISO-IR 192', ['ISO_IR 192']],
    ['GB 18030', ['GB18030']],
    ['gbk', ['GBK']],
    ['GB2312', ['GBK']],
    ['\\GB2312', ['', 'ISO 2022 IR 58']],
    ['ISO_2022_IR_100', ['ISO 2022 IR 100']],
    ['ISO 2022 IR100', ['ISO 2022 IR 100']],
    ['ISO_IR 100\\ISO_IR 126', ['ISO 2022 IR 100', 'ISO 2022 IR 126']],
    [
      ['ISO 2022 IR 100', 'ISO 2022 IR 126'],
      ['ISO 2022 IR 100', 'ISO 2022 IR 126'],
    ],
    ['ISO_IR 149', ['', 'ISO 2022 IR 149']],
    ['ISO 2022 IR 58', ['', 'ISO 2022 IR 58']],
    ['\\ISO 2022 IR 87\\ISO 2022 IR 87', ['', 'ISO 2022 IR 87']],
    ['ISO_IR 192\\ISO 2022 IR 100', ['ISO_IR 192']],
    ['ISO 2022 IR 100\\ISO_IR 192', ['ISO 2022 IR 100']],
    ['ISO_IR 100\\', ['ISO_IR 100']],
    ['ISO_IR 100\0', ['ISO_IR 100']],
  ];
  for (const [value, terms] of same) {
    const cs = parseCharacterSet(value);
    assert.deepEqual(cs.terms, terms, JSON.stringify(value));
    assert.deepEqual(cs.unknownTerms, [], JSON.stringify(value));
  }
  assert.equal(parseCharacterSet('UTF-8').isUtf8, true);
});

test('unknown terms are recorded and read as ISO 8859-1', () => {
  const cs = parseCharacterSet('ISO_IR 999');
  assert.deepEqual(cs.unknownTerms, ['ISO_IR 999']);
  assert.deepEqual(cs.terms, ['ISO_IR 999']);
  assert.equal(cs.isDefault, false);
  assert.equal(decodeText(hex('4de46c6c6572 5e 4a7572'), cs, 'PN'), 'Mäller^Jur');
  assert.deepEqual(encodeText('Müller', cs, 'PN'), hex('4dfc6c6c6572'));

  const windows = parseCharacterSet('WINDOWS-1252');
  assert.deepEqual(windows.unknownTerms, ['WINDOWS-1252']);
  assert.equal(decodeText(hex('e9'), windows, 'LO'), 'é');

  // an unknown later value adds nothing; the declared ones still work
  const later = parseCharacterSet('\\ISO 2022 IR 165\\ISO 2022 IR 149');
  assert.deepEqual(later.unknownTerms, ['ISO 2022 IR 165']);
  assert.equal(decodeText(I2_BYTES, later, 'PN'), I2_TEXT);
  assert.deepEqual(encodeText(I2_TEXT, later, 'PN'), I2_BYTES);
});

// ---------------------------------------------------------------------------------------------------
// Delimiters reset the code extension state (PS3.5 §6.1.2.5.3)
// ---------------------------------------------------------------------------------------------------

test('PN delimiters ^ and = reset G0/G1 to the initial sets; in other VRs they do not', () => {
  const cs = parseCharacterSet('ISO 2022 IR 100\\ISO 2022 IR 126');
  // ESC - F designates Greek into G1; 0xE1 is α in Greek and á in Latin-1
  const bytes = hex('1b2d46 e1 5e e1 3d e1');
  assert.equal(decodeText(bytes, cs, 'PN'), 'α^á=á');
  assert.equal(decodeText(bytes, cs, 'LO'), 'α^α=α');
  // the encoder designates Latin-1 again before the delimiter
  assert.deepEqual(encodeText('α^á', cs, 'PN'), hex('1b2d46 e1 1b2d41 5e e1'));
  assert.deepEqual(encodeText('α^α', cs, 'LO'), hex('1b2d46 e1 5e e1 1b2d41'));
});

test('backslash resets except in LT/ST/UT; CR, LF, FF and TAB reset everywhere', () => {
  const cs = parseCharacterSet('ISO 2022 IR 100\\ISO 2022 IR 126');
  assert.equal(decodeText(hex('1b2d46 e1 5c e1'), cs, 'LO'), 'α\\á');
  assert.equal(decodeText(hex('1b2d46 e1 5c e1'), cs, 'LT'), 'α\\α');
  for (const c of ['09', '0a', '0c', '0d']) {
    assert.equal(
      decodeText(hex(`1b2d46 e1 ${c} e1`), cs, 'LT'),
      `α${String.fromCharCode(Number.parseInt(c, 16))}á`,
    );
  }
});

test('JIS X 0208 in G0: ^ = \\ are character bytes until ESC ( B, which the encoder writes before delimiters', () => {
  const cs = parseCharacterSet('\\ISO 2022 IR 87');
  // ま is 0x245E: its second byte is '^'
  assert.equal(decodeText(hex('1b2442 245e 1b2842 5e 41'), cs, 'PN'), 'ま^A');
  assert.deepEqual(encodeText('山^田', cs, 'PN'), hex('1b2442 3b33 1b2842 5e 1b2442 4544 1b2842'));
  assert.deepEqual(
    encodeText('山田\\太郎', cs, 'LO'),
    hex('1b2442 3b334544 1b2842 5c 1b2442 42404f3a 1b2842'),
  );
  // a space is not in JIS X 0208: back to ASCII for it
  assert.deepEqual(encodeText('山 田', cs, 'LO'), hex('1b2442 3b33 1b2842 20 1b2442 4544 1b2842'));
});

test('Korean: G1 designated again after each delimiter, no switch back (PS3.5 I.2)', () => {
  const cs = parseCharacterSet('\\ISO 2022 IR 149');
  assert.deepEqual(encodeText('洪^吉', cs, 'PN'), hex('1b242943 fbf3 5e 1b242943 d1ce'));
});

// ---------------------------------------------------------------------------------------------------
// JIS X 0201 Romaji, lenient reading, character mappings
// ---------------------------------------------------------------------------------------------------

test('ISO_IR 13: 0x5C is the value delimiter where there is one, else YEN SIGN; 0x7E is OVERLINE', () => {
  // DCMTK 3.6.7 (glibc Shift_JIS) gives LT 'L¥M‾ｱ' for bytes 4c 5c 4d 7e b1
  const cs = parseCharacterSet('ISO_IR 13');
  assert.equal(decodeText(hex('4c5c4d7eb1'), cs, 'LT'), 'L¥M‾ｱ');
  assert.equal(decodeText(hex('4c5c4d7eb1'), cs, 'LO'), 'L\\M‾ｱ');
  assert.deepEqual(encodeText('L¥M‾ｱ', cs, 'LT'), hex('4c5c4d7eb1'));
  assert.deepEqual(encodeText('L\\M‾ｱ', cs, 'LO'), hex('4c5c4d7eb1'));
  assertUnencodable(() => encodeText('¥', cs, 'LO'));
  assertUnencodable(() => encodeText('\\', cs, 'LT'));
  // a Shift_JIS character whose second byte is 0x5C (ソ = 83 5C) is not split
  assert.equal(decodeText(hex('835c'), cs, 'LO'), 'ソ');
});

test('JIS X 0208 and GB 2312 read with glibc’s (DCMTK’s) mapping where iconv-lite differs', () => {
  const jis = parseCharacterSet('\\ISO 2022 IR 87');
  assert.equal(decodeText(hex('1b2442 2141 2142 215d 2171 2172 224c 1b2842'), jis, 'LO'), '〜‖−¢£¬');
  assert.deepEqual(encodeText('〜', jis, 'LO'), hex('1b2442 2141 1b2842'));
  const gb = parseCharacterSet('\\ISO 2022 IR 58');
  assert.equal(decodeText(hex('1b242941 a1a4 a1aa'), gb, 'LO'), '・―');
  const kr = parseCharacterSet('\\ISO 2022 IR 149');
  assert.equal(decodeText(hex('1b242943 a2e8 a3dc'), kr, 'LO'), '㉾￦');
  // GB 18030-2022 (glibc 2.36) moved these cells out of the Private Use Area
  assert.equal(decodeText(hex('a6d9 fe59 fe51'), parseCharacterSet('GB18030'), 'LO'), '︐龴𠂇');
  assert.deepEqual(encodeText('︐龴𠂇', parseCharacterSet('GB18030'), 'LO'), hex('a6d9 fe59 fe51'));
});

test('lenient reading: undeclared G1 bytes, undeclared escapes, unknown escapes', () => {
  // Korean written as plain EUC-KR under \ISO 2022 IR 149 (no escape sequences)
  assert.equal(decodeText(hex('fbf3 5e d1ced4d7'), parseCharacterSet('\\ISO 2022 IR 149'), 'PN'), '洪^吉洞');
  // 8-bit bytes in the default repertoire read as ISO 8859-1
  assert.equal(decodeText(hex('4de46c6c6572'), DEFAULT_CHARACTER_SET, 'PN'), 'Mäller');
  // an escape sequence to a set not in (0008,0005)
  assert.equal(decodeText(hex('1b2d4c b4'), parseCharacterSet('ISO 2022 IR 100'), 'LO'), 'Д');
  // ESC $ @ (JIS C 6226-1978) reads as JIS X 0208
  assert.equal(decodeText(hex('1b2440 3b33 1b2842'), parseCharacterSet('\\ISO 2022 IR 87'), 'LO'), '山');
  // an unknown escape sequence stays as text
  assert.equal(decodeText(hex('1b2d7a 41'), parseCharacterSet('ISO 2022 IR 100'), 'LO'), '\x1b-zA');
  // escapes mean nothing without code extensions
  assert.equal(decodeText(hex('1b2d46 e1'), parseCharacterSet('ISO_IR 100'), 'LO'), '\x1b-Fá');
  // undefined bytes
  assert.equal(decodeText(hex('a5'), parseCharacterSet('ISO_IR 109'), 'LO'), '\ufffd');
  assert.equal(decodeText(hex('ff'), parseCharacterSet('ISO_IR 192'), 'LO'), '\ufffd');
});

test('decodeText keeps padding and backslashes; other VRs use the default repertoire', () => {
  const cs = parseCharacterSet('ISO_IR 192');
  assert.equal(decodeText(hex('41 5c 42 20'), cs, 'LO'), 'A\\B ');
  assert.equal(decodeText(hex('c3a9'), cs, 'PN'), 'é');
  assert.equal(decodeText(hex('c3a9'), cs, 'CS'), 'Ã©');
  assert.equal(decodeText(new Uint8Array(0), cs, 'PN'), '');
  assert.deepEqual(encodeText('', parseCharacterSet('\\ISO 2022 IR 87'), 'PN'), Buffer.alloc(0));
});

test('decodeText works on a view into a larger buffer', () => {
  const file = Buffer.concat([hex('00112233'), K_BYTES, hex('44')]);
  const view = new Uint8Array(file.buffer, file.byteOffset + 4, K_BYTES.length);
  assert.equal(decodeText(view, parseCharacterSet('\\ISO 2022 IR 58'), 'PN'), K_TEXT);
  const gb = new Uint8Array(J_GB18030_BYTES.length + 1);
  gb.set(J_GB18030_BYTES, 1);
  assert.equal(decodeText(gb.subarray(1), parseCharacterSet('GB18030'), 'PN'), J_GB18030_TEXT);
});

test('isAsciiOnly', () => {
  assert.equal(isAsciiOnly(hex('414243 5c 20')), true);
  assert.equal(isAsciiOnly(new Uint8Array(0)), true);
  assert.equal(isAsciiOnly(hex('41e9')), false);
  // ISO 2022 JIS text is all 7-bit but not ASCII
  assert.equal(isAsciiOnly(H31_BYTES), false);
});

test('CharacterSet objects are frozen', () => {
  const cs: CharacterSet = parseCharacterSet('\\ISO 2022 IR 87');
  assert.ok(Object.isFrozen(cs));
  assert.ok(Object.isFrozen(cs.terms));
  const vr: VR = 'PN';
  assert.equal(decodeText(H31_BYTES, cs, vr), H31_TEXT);
});

test('a hand-made CharacterSet with a multi-byte set first behaves like the parsed one', () => {
  const cs: CharacterSet = { terms: ['ISO 2022 IR 87'], isUtf8: false, isDefault: false, unknownTerms: [] };
  assert.deepEqual(encodeText(H31_TEXT, cs, 'PN'), H31_BYTES);
  assert.equal(decodeText(H31_BYTES, cs, 'PN'), H31_TEXT);
});
