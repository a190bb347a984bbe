import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { describeFile, describeFiles, listFiles } from './store-scu.ts';

const dir = mkdtempSync(join(tmpdir(), 'tessera-store-scu-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const corpus = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));

test('listFiles: folders recursively, sorted by name, symbolic links followed', async () => {
  const root = join(dir, 'tree');
  mkdirSync(join(root, 'sub', 'deeper'), { recursive: true });
  for (const f of ['b', 'a', 'sub/c', 'sub/deeper/d']) writeFileSync(join(root, f), 'x');
  symlinkSync(join(root, 'a'), join(root, 'sub', 'link'));
  assert.deepEqual(await listFiles([root, join(root, 'b')]), [
    join(root, 'a'),
    join(root, 'b'),
    join(root, 'sub', 'c'),
    join(root, 'sub', 'deeper', 'd'),
    join(root, 'sub', 'link'),
    join(root, 'b'),
  ]);
});

test('describeFile: UIDs, syntax and data set extent from the header; empty and non-DICOM files refused', async () => {
  const ct = join(corpus, 'transfer-syntax', 'ct1-explicit-vr-le.dcm');
  const item = await describeFile(ct);
  assert.equal(item.sopInstanceUid, '1.3.6.1.4.1.5962.1.1.1.1.1.20040826185059.5457');
  assert.equal(item.transferSyntaxUid, '1.2.840.10008.1.2.1');
  assert.equal(item.datasetOffset + item.datasetLength, 530632);
  writeFileSync(join(dir, 'empty'), '');
  await assert.rejects(describeFile(join(dir, 'empty')), {
    code: 'ERR_DIMSE_NOT_DICOM',
    message: 'the file is empty',
  });
  writeFileSync(join(dir, 'text'), 'hello, not DICOM');
  const { items, skipped } = await describeFiles([ct, join(dir, 'text'), join(dir, 'empty')]);
  assert.equal(items.length, 1);
  assert.deepEqual(
    skipped.map((s) => s.path),
    [join(dir, 'text'), join(dir, 'empty')],
  );
});

test('describeFile: a header longer than the first 16 KiB read is read again in full', async () => {
  const { Dataset, writePart10 } = await import('../codec/index.ts');
  const dataset = new Dataset();
  dataset.setValues(0x00080016, ['1.2.840.10008.5.1.4.1.1.7'], 'UI');
  dataset.setValues(0x00080018, ['1.2.826.0.1.3680043.2.1125.7.7'], 'UI');
  dataset.setBytes(0x7fe00010, 'OB', Buffer.alloc(1000, 3));
  const meta = new Dataset({ littleEndian: true });
  // 100 KB of Private Information in the File Meta: the header alone outgrows the first read.
  meta.setValues(0x00020100, ['1.2.826.0.1.3680043.2.1125.7'], 'UI');
  meta.setBytes(0x00020102, 'OB', Buffer.alloc(100_000, 1));
  const path = join(dir, 'long-meta.dcm');
  const bytes = writePart10({ dataset, meta }, '1.2.840.10008.1.2.1');
  writeFileSync(path, bytes);
  const item = await describeFile(path);
  assert.equal(item.sopInstanceUid, '1.2.826.0.1.3680043.2.1125.7.7');
  assert.ok(item.datasetOffset > 100_000, `data set at ${item.datasetOffset}`);
  assert.equal(item.datasetOffset + item.datasetLength, bytes.length);
});

test('describeFile: a first read that ends exactly where the data set begins is not taken for the whole header', async () => {
  const { Dataset, readPart10, writePart10 } = await import('../codec/index.ts');
  const dataset = new Dataset();
  dataset.setValues(0x00080016, ['1.2.840.10008.5.1.4.1.1.7'], 'UI');
  dataset.setValues(0x00080018, ['1.2.826.0.1.3680043.2.1125.7.8'], 'UI');
  dataset.setBytes(0x7fe00010, 'OB', Buffer.alloc(1000, 3));
  const write = (privateBytes: number): Buffer => {
    const meta = new Dataset({ littleEndian: true });
    meta.setValues(0x00020100, ['1.2.826.0.1.3680043.2.1125.7'], 'UI');
    meta.setBytes(0x00020102, 'OB', Buffer.alloc(privateBytes, 1));
    return writePart10({ dataset, meta }, '1.2.840.10008.1.2.1');
  };
  // Size the File Meta so that the data set starts at byte 16384, right after the first read.
  const probe = readPart10(write(1000)).datasetOffset;
  const bytes = write(1000 + 16384 - probe);
  assert.equal(readPart10(bytes).datasetOffset, 16384);
  const path = join(dir, 'meta-to-16k.dcm');
  writeFileSync(path, bytes);
  const item = await describeFile(path);
  assert.equal(item.sopInstanceUid, '1.2.826.0.1.3680043.2.1125.7.8');
  assert.equal(item.datasetOffset, 16384);
});

test('describeFiles: long and short headers mixed, 16 at a time through the one head buffer, each described right', async () => {
  const { Dataset, readPart10, writePart10 } = await import('../codec/index.ts');
  const paths: string[] = [];
  const expected: { sop: string; offset: number }[] = [];
  for (let i = 0; i < 40; i++) {
    const sop = `1.2.826.0.1.3680043.2.1125.9.${i}`;
    const dataset = new Dataset();
    dataset.setValues(0x00080016, ['1.2.840.10008.5.1.4.1.1.7'], 'UI');
    dataset.setValues(0x00080018, [sop], 'UI');
    dataset.setBytes(0x7fe00010, 'OB', Buffer.alloc(100, i));
    const meta = new Dataset({ littleEndian: true });
    meta.setValues(0x00020100, ['1.2.826.0.1.3680043.2.1125.7'], 'UI');
    // Every third file's header needs the second, asynchronous read.
    meta.setBytes(0x00020102, 'OB', Buffer.alloc(i % 3 === 0 ? 40_000 : 10, 1));
    const bytes = writePart10({ dataset, meta }, '1.2.840.10008.1.2.1');
    const path = join(dir, `mixed-${i}.dcm`);
    writeFileSync(path, bytes);
    paths.push(path);
    expected.push({ sop, offset: readPart10(bytes).datasetOffset });
  }
  const { items, skipped } = await describeFiles(paths);
  assert.equal(skipped.length, 0);
  assert.deepEqual(
    items.map((x) => ({ sop: x.sopInstanceUid, offset: x.datasetOffset })),
    expected,
  );
});
