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
