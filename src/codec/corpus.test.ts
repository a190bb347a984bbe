/**
 * The codec over every file of the shared corpus (../shared/data/dicom, see its MANIFEST.md):
 * read from a buffer and from a stream, header-only reads, byte-identical write-back, DICOM JSON
 * equivalent to DCMTK's dcm2json, JSON round trips, and clean failures for the malformed files.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import { CodecError } from '../core/index.ts';
import { Dataset, loadBulk } from './dataset.ts';
import { frameFragments, numberOfFrames } from './frames.ts';
import { datasetFromJson, datasetToJson } from './json.ts';
import { readPart10, readPart10Stream } from './part10.ts';
import { encodeDataset, writePart10 } from './writer.ts';

const corpus = new URL('../../../shared/data/dicom/', import.meta.url);

interface ManifestFile {
  path: string;
  intentionally_malformed: boolean;
  transfer_syntax_uid: string | null;
  sop_instance_uid: string | null;
  number_of_frames: number | null;
  has_file_meta: boolean;
  has_preamble: boolean;
  dcmtk_json: string | null;
  dcmtk_json_variant: string | null;
}

const manifest = JSON.parse(readFileSync(new URL('manifest.json', corpus), 'utf8')) as {
  files: ManifestFile[];
};
const files = manifest.files.filter((f) => f.path.endsWith('.dcm') || f.path.endsWith('DICOMDIR'));

/** Malformed files that must fail, with the error code and where. The others must be read (recovered). */
const MUST_FAIL: Record<string, { code: string; tag?: number; offset?: number }> = {
  'malformed/truncated-3gb-bulk-dcm4che.dcm': { code: 'ERR_CODEC_TRUNCATED', tag: 0x7fe00010, offset: 1908 },
  'sequences/undefined-length-sq-fo-gh179b.dcm': { code: 'ERR_CODEC_TRUNCATED', tag: 0x20310028 },
  'malformed/deeply-nested-sequence-orthanc.dcm': { code: 'ERR_CODEC_TOO_DEEP' },
  // A Philips private sequence (2005,140F) of defined length 256 whose items are explicit VR inside an
  // implicit VR data set and run past those 256 bytes: refused as an overrun (DCMTK fails too).
  'malformed/implicit-sq-misparse-fo-gh626.dcm': { code: 'ERR_CODEC_LENGTH_OVERRUN', tag: 0x00189036 },
  'malformed/item-tag-in-dataset-fo-gh364.dcm': { code: 'ERR_CODEC_UNEXPECTED_ITEM', tag: 0xfffee000 },
};

/**
 * Files that are read but not written back byte for byte, and why: their encoding is not the one
 * their meta declares (the writer uses the syntax the data set was decoded with), or a length in
 * them is wrong and is recomputed on write.
 */
const NOT_BYTE_IDENTICAL: Record<string, string> = {
  'malformed/meta-says-be-data-is-ivrle-fo-gh177.dcm': 'meta declares big endian, data is implicit VR LE',
  'malformed/meta-says-ele-data-is-ivrle-fo-gh177.dcm':
    'meta declares explicit VR LE, data is implicit VR LE',
  'sequences/undefined-length-sq-fo-gh179a.dcm': 'a blank VR is rewritten with the dictionary VR',
  'transfer-syntax/us-jpeg-baseline-ybr.dcm':
    'its (0002,0000) says 172 for 160 bytes of File Meta; the writer puts 160',
};

function read(f: ManifestFile): Buffer {
  return readFileSync(new URL(f.path, corpus));
}

function errorOf(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CodecError, `expected a CodecError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the read to fail');
}

async function* chunked(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/**
 * DICOM JSON equality where numbers may differ in formatting only: DCMTK writes DS as stored
 * (5.000000) and FL with 9 significant digits (-159.635803), Tessera the shortest decimal that reads
 * back as the same float (-159.6358).
 */
function assertJsonEquivalent(expected: unknown, actual: unknown, path = ''): void {
  if (typeof expected === 'number' && typeof actual === 'number') {
    assert.ok(
      Math.abs(expected - actual) <= 1e-7 * Math.max(1, Math.abs(expected)),
      `${path}: ${expected} != ${actual}`,
    );
    return;
  }
  if (typeof expected !== 'object' || expected === null || typeof actual !== 'object' || actual === null) {
    assert.equal(actual, expected, path);
    return;
  }
  assert.equal(Array.isArray(actual), Array.isArray(expected), `${path}: array vs object`);
  const e = expected as Record<string, unknown>;
  const a = actual as Record<string, unknown>;
  assert.deepEqual(Object.keys(a).sort(), Object.keys(e).sort(), `${path}: keys`);
  for (const k of Object.keys(e)) assertJsonEquivalent(e[k], a[k], `${path}/${k}`);
}

/** dcm2json's reference for encapsulated files was made with every (7FE0,0010) erased, nested ones too. */
function removePixelData(json: Record<string, unknown>): void {
  delete json['7FE00010'];
  for (const attr of Object.values(json) as { vr: string; Value?: unknown[] }[]) {
    if (attr.vr === 'SQ')
      for (const item of attr.Value ?? []) removePixelData(item as Record<string, unknown>);
  }
}

describe('corpus: every file of ../shared/data/dicom', () => {
  for (const f of files) {
    const failure = MUST_FAIL[f.path];
    if (failure) {
      test(`${f.path} fails cleanly with ${failure.code}`, async () => {
        const bytes = read(f);
        const err = errorOf(() => readPart10(bytes));
        assert.equal(err.code, failure.code);
        if (failure.tag !== undefined) assert.equal(err.tag, failure.tag);
        if (failure.offset !== undefined) assert.equal(err.offset, failure.offset);
        assert.match(err.message, /offset \d+/);
        await assert.rejects(
          readPart10Stream(chunked(bytes, 4096)),
          (e: unknown) => e instanceof CodecError && e.code === failure.code,
        );
      });
      continue;
    }

    test(`${f.path}: reads, from a buffer and from a stream`, async () => {
      const bytes = read(f);
      const file = readPart10(bytes);
      // A DICOMDIR has no SOP Instance UID in its data set, only in the meta.
      if (f.sop_instance_uid)
        assert.equal(file.dataset.string(0x00080018) ?? file.meta.string(0x00020003), f.sop_instance_uid);
      if (f.has_file_meta && f.transfer_syntax_uid)
        assert.equal(file.declaredTransferSyntaxUid, f.transfer_syntax_uid);
      // The manifest flags a preamble from "DICM" at offset 128, which no-preamble-dcm4che.dcm has as data.
      assert.equal(file.preamble !== undefined, f.has_preamble && f.has_file_meta);
      if (f.number_of_frames) {
        assert.equal(numberOfFrames(file.dataset), f.number_of_frames);
        const pixel = file.dataset.get(0x7fe00010);
        if (pixel?.kind === 'encapsulated')
          assert.equal(frameFragments(file.dataset).length, f.number_of_frames);
      }
      // Streamed in odd-sized chunks, with bulk values read back from the buffer: same data set.
      const streamed = await readPart10Stream(chunked(bytes, 4093), {
        bulkThreshold: 1024,
        bulkSource: async (offset, length) => bytes.subarray(offset, offset + length),
      });
      await loadBulk(streamed.dataset);
      assert.deepEqual(datasetToJson(streamed.dataset), datasetToJson(file.dataset));
      // Header only: everything before Pixel Data, nothing after.
      const head = readPart10(bytes, { stopBeforeTag: 0x7fe00010 });
      assert.equal(head.dataset.has(0x7fe00010), false);
      if (file.dataset.has(0x7fe00010)) assert.equal(head.stoppedAt, 0x7fe00010);
      assert.equal(head.dataset.string(0x00080018), file.dataset.string(0x00080018));
    });

    if (!(f.path in NOT_BYTE_IDENTICAL)) {
      test(`${f.path}: writes back byte for byte in its own transfer syntax`, () => {
        const bytes = read(f);
        const file = readPart10(bytes);
        if (file.meta.size === 0) {
          const body = bytes.subarray(file.datasetOffset);
          assert.ok(
            encodeDataset(file.dataset, file.transferSyntax.uid, { groupLengths: 'keep' }).equals(body),
          );
        } else if (file.transferSyntax.deflated) {
          // Deflate output depends on the compressor's settings: compare the inflated data sets.
          const out = writePart10(file);
          const again = readPart10(out);
          const original = inflateRawSync(bytes.subarray(file.datasetOffset));
          assert.ok(inflateRawSync(out.subarray(again.datasetOffset)).equals(original));
        } else {
          const out = writePart10(file);
          assert.equal(out.length, bytes.length);
          assert.ok(out.equals(bytes), 'bytes differ');
        }
      });
    }

    if (f.path !== 'charset/lena-shift-jis-labelled-ir13.dcm') {
      // (That file's text is Shift-JIS mislabelled ISO_IR 13: its decoded text cannot be encoded back in ISO_IR 13.)
      test(`${f.path}: DICOM JSON round trip (JSON -> data set -> JSON)`, () => {
        const file = readPart10(read(f));
        const json = datasetToJson(file.dataset);
        const back = datasetToJson(datasetFromJson(json));
        // Non-ASCII text without a declared character set comes back declared as UTF-8 (ISO_IR 192).
        if (json['00080005'] === undefined && back['00080005'] !== undefined) {
          assert.deepEqual(back['00080005'], { vr: 'CS', Value: ['ISO_IR 192'] });
          delete back['00080005'];
        }
        assertJsonEquivalent(json, back);
      });
    }

    if (f.dcmtk_json) {
      test(`${f.path}: DICOM JSON equivalent to DCMTK dcm2json`, () => {
        const file = readPart10(read(f));
        const ours = datasetToJson(file.dataset) as Record<string, unknown>;
        const dcmtk = JSON.parse(readFileSync(new URL(f.dcmtk_json!, corpus), 'utf8')) as Record<
          string,
          unknown
        >;
        // dcm2json 3.6.7 refuses encapsulated Pixel Data; its reference was made with it erased.
        if (f.dcmtk_json_variant === 'pixeldata-removed') {
          removePixelData(ours);
          // The copy dcmodify rewrote without Pixel Data also lost its Data Set Trailing Padding.
          if (dcmtk.FFFCFFFC === undefined) delete ours.FFFCFFFC;
        }
        if (f.path === 'transfer-syntax/ct1-rle-multi-fragment-fo.dcm') {
          // Deliberate difference: three DS values are padded with NUL instead of space ("1\0"). DCMTK
          // treats them as invalid and writes strings; Tessera strips the padding and reads numbers.
          assert.deepEqual(dcmtk['00281053'], { vr: 'DS', Value: ['1\u0000'] });
          for (const k of ['00280030', '00281052', '00281053']) {
            const values = (dcmtk[k] as { Value: unknown[] }).Value;
            (dcmtk[k] as { Value: unknown[] }).Value = values.map((v) =>
              typeof v === 'string' ? Number(v.replace(/\0+$/, '')) : v,
            );
          }
        }
        if (f.path === 'sequences/undefined-length-sq-fo-gh179a.dcm') {
          // Deliberate difference: (0028,0120) has a blank VR ("  "). DCMTK reads it as UN; Tessera takes
          // the dictionary VR (US or SS, here SS by Pixel Representation) so the value stays readable.
          assert.deepEqual(dcmtk['00280120'], { vr: 'UN', InlineBinary: 'AAA=' });
          assert.deepEqual(ours['00280120'], { vr: 'SS', Value: [0] });
          delete dcmtk['00280120'];
          delete ours['00280120'];
        }
        // Deliberate difference: dcm2json converts text to UTF-8 and so rewrites Specific Character
        // Set to ISO_IR 192; Tessera keeps the declared value so that JSON -> data set re-encodes
        // the text as the original did. Text values themselves must be identical.
        if (ours['00080005'] !== undefined && dcmtk['00080005'] !== undefined) {
          assert.deepEqual(dcmtk['00080005'], { vr: 'CS', Value: ['ISO_IR 192'] });
          dcmtk['00080005'] = ours['00080005'];
        }
        assertJsonEquivalent(dcmtk, ours);
      });
    }
  }
});

test('the corpus has the files this test expects', () => {
  assert.ok(files.length >= 90, `only ${files.length} files`);
  for (const path of Object.keys(MUST_FAIL))
    assert.ok(
      files.some((f) => f.path === path),
      path,
    );
});

test('a data set written in one syntax reads back with equal values', () => {
  const ds = new Dataset();
  ds.setValues(0x00100010, [{ Alphabetic: 'Doe^Jane' }]);
  assert.equal(
    datasetToJson(readPart10(writePart10({ dataset: ds }, '1.2.840.10008.1.2')).dataset)['00100010']?.Value
      ?.length,
    1,
  );
});
