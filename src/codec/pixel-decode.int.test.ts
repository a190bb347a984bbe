/**
 * Decoded pixels against the reference decompressors: DCMTK 3.6 (dcmdrle, dcmdjpls, dcmdjpeg) and, for
 * JPEG 2000 that DCMTK lacks, GDCM (gdcmconv --raw, Debian's libgdcm-tools). These tests are never
 * skipped: without the tools they fail, saying so.
 *
 *   1. every corpus file of a lossless syntax decodes byte-identical to the tool's decompression, with the
 *      same Photometric Interpretation and Planar Configuration;
 *   2. lossy corpus files: JPEG within a max absolute difference per sample of the tool (observed: 0, as
 *      libjpeg-turbo's and IJG's integer IDCT and upsampling agree, and the 12-bit decoder is IJG's IDCT);
 *      JPEG-LS near-lossless and JPEG 2000 lossy byte-identical (observed) to dcmdjpls and gdcmconv;
 *   3. what the corpus lacks, made here with DCMTK's and GDCM's encoders: color RLE, JPEG-LS (each
 *      interleave mode, both planar configurations), JPEG lossless (SV1, predictor 7), JPEG 2000 and JPEG
 *      Baseline RGB; a Photometric Interpretation that contradicts the JPEG stream's color markers; signed
 *      12-bit data (where Tessera sign-extends and DCMTK leaves the high bits as the stream had them);
 *   4. decompressDataset's result written in Explicit VR Little Endian (file and bare data set) is read by
 *      dcmdump without a warning.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { killChildren, requireTools, run } from '../../test/helpers/interop.ts';
import { PixelDataTag } from '../core/index.ts';
import { type Dataset, decompressDataset, encodeDataset, readPart10, writePart10 } from './index.ts';

const corpus = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const TIMEOUT = { timeout: 120_000 };
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

let dir = '';
let counter = 0;

before(async () => {
  await requireTools(
    'dcmdump',
    'dcmdrle',
    'dcmdjpls',
    'dcmdjpeg',
    'dcmcrle',
    'dcmcjpls',
    'dcmcjpeg',
    'dcmodify',
  );
  const gdcm = await run('gdcmconv', ['--version']).catch((err: unknown) => err as Error);
  if (gdcm instanceof Error) {
    throw new Error(
      'gdcmconv not found on PATH: the JPEG 2000 checks need GDCM (apt-get install libgdcm-tools)',
    );
  }
  dir = await mkdtemp(join(tmpdir(), 'tessera-pixel-decode-'));
});

after(async () => {
  killChildren();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function temp(name: string): string {
  counter++;
  return join(dir, `${counter}-${name}.dcm`);
}

/** Runs a tool that writes `out`; fails the test with its output when it does not exit 0. */
async function tool(command: string, args: readonly string[]): Promise<void> {
  const r = await run(command, args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${command} ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
}

/** A tool's conversion of `input` into a new temporary file. */
async function convert(
  command: string,
  options: readonly string[],
  input: string,
  name: string,
): Promise<string> {
  const out = temp(name);
  await tool(command, [...options, input, out]);
  return out;
}

async function load(path: string): Promise<{ ds: Dataset; ts: string }> {
  const p = readPart10(await readFile(path));
  return { ds: p.dataset, ts: p.transferSyntax.uid };
}

/** Tessera's decompression of a file. */
async function ours(path: string): Promise<Dataset> {
  const { ds, ts } = await load(path);
  return decompressDataset(ds, ts);
}

/** The native data set a tool's decompression wrote. */
async function theirs(command: string, options: readonly string[], path: string): Promise<Dataset> {
  const { ds, ts } = await load(await convert(command, options, path, 'ref'));
  assert.equal(ds.get(PixelDataTag)?.kind, 'value', `${command} left ${ts}`);
  return ds;
}

function pixels(ds: Dataset): Buffer {
  const b = ds.bytes(PixelDataTag);
  assert.ok(b, 'Pixel Data in memory');
  return b;
}

/** Max absolute difference per sample (8- or 16-bit little-endian samples). */
function maxDifference(a: Buffer, b: Buffer, bits: number): number {
  assert.equal(a.length, b.length, 'Pixel Data lengths');
  let max = 0;
  for (let i = 0; i < a.length; i += bits / 8) {
    const d = Math.abs(bits === 16 ? a.readUInt16LE(i) - b.readUInt16LE(i) : a[i]! - b[i]!);
    if (d > max) max = d;
  }
  return max;
}

/** Same pixels (within `tolerance`), Photometric Interpretation and Planar Configuration as the reference. */
function assertSame(actual: Dataset, expected: Dataset, tolerance = 0): void {
  const bits = expected.number(0x00280100)!;
  if (tolerance === 0) assert.ok(pixels(actual).equals(pixels(expected)), 'pixels differ');
  else {
    const max = maxDifference(pixels(actual), pixels(expected), bits);
    assert.ok(max <= tolerance, `max difference ${max} > ${tolerance}`);
  }
  assert.equal(actual.string(0x00280004), expected.string(0x00280004), 'Photometric Interpretation');
  if (expected.has(0x00280006))
    assert.equal(actual.number(0x00280006), expected.number(0x00280006), 'Planar Configuration');
}

const DCMTK_LOSSLESS: readonly [string, string][] = [
  ['transfer-syntax/ct1-rle-multi-fragment-fo.dcm', 'dcmdrle'],
  ['multiframe/enhanced-ct-2f-rle-bot.dcm', 'dcmdrle'],
  ['multiframe/us-palette-10f-rle-dcm4che.dcm', 'dcmdrle'],
  ['transfer-syntax/ct1-jpegls-lossless-fragmented-bot.dcm', 'dcmdjpls'],
  ['transfer-syntax/mr-jpeg-lossless-sv1-dcm4che.dcm', 'dcmdjpeg'],
  ['multiframe/enhanced-ct-2f-jpeg-lossless-p14.dcm', 'dcmdjpeg'],
];

describe('lossless corpus files: byte-identical to the reference decompressor', () => {
  for (const [rel, command] of DCMTK_LOSSLESS) {
    test(`${rel} = ${command}`, TIMEOUT, async () => {
      const path = join(corpus, rel);
      assertSame(await ours(path), await theirs(command, [], path));
    });
  }

  test('ct1 lossless files also equal the native ct1-implicit-vr-le.dcm', TIMEOUT, async () => {
    const native = pixels((await load(join(corpus, 'transfer-syntax/ct1-implicit-vr-le.dcm'))).ds);
    for (const rel of [
      'transfer-syntax/ct1-rle-multi-fragment-fo.dcm',
      'transfer-syntax/ct1-jpegls-lossless-fragmented-bot.dcm',
    ]) {
      assert.ok(pixels(await ours(join(corpus, rel))).equals(native), rel);
    }
  });

  test('transfer-syntax/mr4-j2k-lossless-wg04.dcm = gdcmconv --raw', TIMEOUT, async () => {
    const path = join(corpus, 'transfer-syntax/mr4-j2k-lossless-wg04.dcm');
    assertSame(await ours(path), await theirs('gdcmconv', ['--raw'], path));
  });
});

describe('lossy corpus files against the reference decompressor', () => {
  // [file, tool, tolerance]: JPEG 8-bit goes through libjpeg-turbo, DCMTK through IJG 6b; both use the
  // integer IDCT and fancy upsampling and agreed exactly on every file (observed max 0), 1 is allowed for
  // a libjpeg-turbo update. The 12-bit decoder is IJG's IDCT itself: exact. JPEG-LS decoding is exact by
  // definition; JPEG 2000 lossy is OpenJPEG in both (observed max 0).
  const cases: readonly [string, string, number][] = [
    ['transfer-syntax/us-jpeg-baseline-ybr.dcm', 'dcmdjpeg', 1],
    ['transfer-syntax/jpeg-baseline-with-icon-fo.dcm', 'dcmdjpeg', 1],
    ['multiframe/lena-2f-jpeg-fragments-orthanc.dcm', 'dcmdjpeg', 1],
    ['transfer-syntax/mr4-jpeg-extended-wg04.dcm', 'dcmdjpeg', 0],
    ['multiframe/enhanced-ct-2f-jpeg-extended.dcm', 'dcmdjpeg', 0],
    ['transfer-syntax/ct2-jpegls-near-lossless-wg04.dcm', 'dcmdjpls', 0],
    ['multiframe/enhanced-ct-2f-jpegls-near-lossless.dcm', 'dcmdjpls', 0],
    ['transfer-syntax/ct1-j2k-lossy-wg04.dcm', 'gdcmconv', 1],
  ];
  for (const [rel, command, tolerance] of cases) {
    test(`${rel} ~ ${command} (max difference ${tolerance})`, TIMEOUT, async () => {
      const path = join(corpus, rel);
      const reference = await theirs(command, command === 'gdcmconv' ? ['--raw'] : [], path);
      const decoded = await ours(path);
      assertSame(decoded, reference, tolerance);
      assert.equal(decoded.string(0x00282110), '01');
    });
  }
});

describe('variants made here with DCMTK and GDCM encoders', () => {
  let lena = ''; // native RGB, 2 frames of 512x512, from dcmdjpeg
  let mr4 = ''; // native 12-bit unsigned MR, from gdcmconv --raw

  before(async () => {
    lena = await convert(
      'dcmdjpeg',
      [],
      join(corpus, 'multiframe/lena-2f-jpeg-fragments-orthanc.dcm'),
      'lena',
    );
    mr4 = await convert(
      'gdcmconv',
      ['--raw'],
      join(corpus, 'transfer-syntax/mr4-j2k-lossless-wg04.dcm'),
      'mr4',
    );
  });

  test('color RLE, Planar Configuration 0 and 1 = dcmdrle', TIMEOUT, async () => {
    const rle = await convert('dcmcrle', [], lena, 'lena-rle');
    assertSame(await ours(rle), await theirs('dcmdrle', [], rle));
    assert.ok(pixels(await ours(rle)).equals(pixels((await load(lena)).ds)));
    await tool('dcmodify', ['-nb', '-m', '(0028,0006)=1', rle]);
    const byPlane = await ours(rle);
    assert.equal(byPlane.number(0x00280006), 1);
    assertSame(byPlane, await theirs('dcmdrle', [], rle));
  });

  for (const mode of ['+il', '+is', '+in']) {
    test(`color JPEG-LS interleave ${mode}, Planar Configuration 0 and 1 = dcmdjpls`, TIMEOUT, async () => {
      const jls = await convert('dcmcjpls', [mode], lena, 'lena-jls');
      assertSame(await ours(jls), await theirs('dcmdjpls', [], jls));
      assert.ok(pixels(await ours(jls)).equals(pixels((await load(lena)).ds)));
      await tool('dcmodify', ['-nb', '-m', '(0028,0006)=1', jls]);
      assertSame(await ours(jls), await theirs('dcmdjpls', [], jls));
    });
  }

  test('color JPEG lossless SV1 and 12-bit JPEG lossless predictor 7 = dcmdjpeg', TIMEOUT, async () => {
    const sv1 = await convert('dcmcjpeg', [], lena, 'lena-jpeg-lossless');
    assertSame(await ours(sv1), await theirs('dcmdjpeg', [], sv1));
    const p7 = await convert('dcmcjpeg', ['+el', '+sv', '7'], mr4, 'mr4-p7');
    assertSame(await ours(p7), await theirs('dcmdjpeg', [], p7));
    assert.ok(pixels(await ours(p7)).equals(pixels((await load(mr4)).ds)));
  });

  test('color JPEG 2000 (gdcmconv --j2k) = gdcmconv --raw = the original', TIMEOUT, async () => {
    const j2k = await convert('gdcmconv', ['--j2k'], lena, 'lena-j2k');
    assertSame(await ours(j2k), await theirs('gdcmconv', ['--raw'], j2k));
    assert.ok(pixels(await ours(j2k)).equals(pixels((await load(lena)).ds)));
  });

  test('JPEG Baseline in RGB (Adobe marker) and YBR_FULL 4:4:4 ~ dcmdjpeg', TIMEOUT, async () => {
    for (const options of [
      ['+eb', '+cr'],
      ['+eb', '+s4'],
    ]) {
      const jpeg = await convert('dcmcjpeg', options, lena, 'lena-baseline');
      assertSame(await ours(jpeg), await theirs('dcmdjpeg', [], jpeg), 1);
    }
  });

  test(
    'the Photometric Interpretation, not the JPEG markers, decides the color conversion (as dcmdjpeg)',
    TIMEOUT,
    async () => {
      // A YCbCr (JFIF) stream labelled RGB is not converted; an RGB (Adobe transform 0) stream labelled
      // YBR_FULL is. Both are wrong files, decoded as DCMTK decodes them.
      const ybr = await convert('dcmcjpeg', ['+eb'], lena, 'lena-ybr');
      await tool('dcmodify', ['-nb', '-m', '(0028,0004)=RGB', ybr]);
      const rgb = await convert('dcmcjpeg', ['+eb', '+cr'], lena, 'lena-rgb');
      await tool('dcmodify', ['-nb', '-m', '(0028,0004)=YBR_FULL', rgb]);
      for (const path of [ybr, rgb]) {
        const decoded = await ours(path);
        assertSame(decoded, await theirs('dcmdjpeg', [], path), 1);
        assert.equal(decoded.string(0x00280004), 'RGB');
      }
    },
  );

  describe('signed 12-bit data', () => {
    let raw = ''; // mr4 labelled signed: values >= 2048 are negative, their high bits are zero
    let extended = ''; // the same values sign-extended to 16 bits

    before(async () => {
      raw = temp('s12');
      const { ds } = await load(mr4);
      ds.setValues(0x00280103, [1], 'US');
      await writeFile(raw, writePart10({ dataset: ds }, EXPLICIT_LE));
      const px = Buffer.from(pixels(ds));
      for (let i = 0; i < px.length; i += 2) px.writeInt16LE((px.readUInt16LE(i) << 20) >> 20, i);
      ds.setBytes(PixelDataTag, 'OW', px);
      extended = temp('s12x');
      await writeFile(extended, writePart10({ dataset: ds }, EXPLICIT_LE));
    });

    const codecs: readonly [string, readonly string[], string][] = [
      ['dcmcrle', [], 'dcmdrle'],
      ['dcmcjpls', [], 'dcmdjpls'],
      ['dcmcjpeg', [], 'dcmdjpeg'],
    ];
    for (const [encoder, options, decoder] of codecs) {
      test(
        `${encoder} / ${decoder}: two's complement 16-bit out, whatever the high bits were`,
        TIMEOUT,
        async () => {
          const want = pixels((await load(extended)).ds);
          // sign-extended input: identical to DCMTK and to the input
          const a = await convert(encoder, options, extended, 'signed');
          assertSame(await ours(a), await theirs(decoder, [], a));
          assert.ok(pixels(await ours(a)).equals(want));
          // high bits zero: DCMTK gives them back as they were, Tessera sign-extends
          const b = await convert(encoder, options, raw, 'signed');
          const reference = pixels(await theirs(decoder, [], b));
          assert.ok(reference.equals(pixels((await load(raw)).ds)), `${decoder} changed the input`);
          assert.ok(pixels(await ours(b)).equals(want));
        },
      );
    }
  });
});

describe('decompressed data sets are read by dcmdump without a warning', () => {
  for (const rel of [
    'multiframe/lena-2f-jpeg-fragments-orthanc.dcm',
    'multiframe/enhanced-ct-2f-jpeg-lossless-p14.dcm',
    'multiframe/us-palette-10f-rle-dcm4che.dcm',
    'transfer-syntax/jpeg-baseline-with-icon-fo.dcm',
  ]) {
    test(rel, TIMEOUT, async () => {
      const p = readPart10(await readFile(join(corpus, rel)));
      const out = await decompressDataset(p.dataset, p.transferSyntax.uid);
      const file = temp('file');
      await writeFile(file, writePart10({ dataset: out, meta: p.meta }, EXPLICIT_LE));
      const bare = temp('bare');
      await writeFile(bare, encodeDataset(out, EXPLICIT_LE));
      const length = pixels(out).length;
      for (const args of [[file], ['-f', '-te', bare]]) {
        const r = await run('dcmdump', args, { timeoutMs: 60_000 });
        assert.equal(r.code, 0, `dcmdump ${args.join(' ')}: ${r.stderr}`);
        assert.equal(r.stderr, '', 'dcmdump warned');
        assert.match(r.stdout, /^# Used TransferSyntax: Little Endian Explicit$/m);
        assert.match(r.stdout, new RegExp(`^\\(7fe0,0010\\) O[BW] .*# ${length}, 1 PixelData$`, 'm'));
      }
    });
  }
});
