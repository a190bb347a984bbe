import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { Dataset, encodeDataset } from '../codec/index.ts';
import { Tag } from '../dictionary/index.ts';
import { FsBlobStore } from './blob-fs.ts';
import { SqliteIndex } from './index-sqlite.ts';
import { Ingest } from './ingest.ts';
import { prepareQuery, runQuery } from './query.ts';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';

function instance(): Dataset {
  const ds = new Dataset();
  ds.setString(Tag.SpecificCharacterSet, 'ISO_IR 192');
  ds.setString(Tag.SOPClassUID, CT);
  ds.setString(Tag.SOPInstanceUID, '1.2.826.0.1.3680043.2.1125.1.1');
  ds.setString(Tag.StudyInstanceUID, '1.2.826.0.1.3680043.2.1125.2');
  ds.setString(Tag.SeriesInstanceUID, '1.2.826.0.1.3680043.2.1125.3');
  ds.setString(Tag.PatientID, 'P1');
  ds.setString(Tag.PatientName, 'Müller^Jürgen');
  ds.setString(Tag.PatientBirthTime, '101500');
  ds.setValues(Tag.NameOfPhysiciansReadingStudy, ['Reader^One', 'Reader^Two']);
  ds.setString(Tag.PatientAge, '042Y');
  ds.setString(Tag.InstitutionName, 'General Hospital');
  ds.setString(Tag.ProtocolName, 'Chest Routine');
  ds.setString(Tag.StationName, 'CT01');
  ds.setString(Tag.Laterality, 'L');
  ds.setString(Tag.ContentDate, '20240102');
  ds.setValues(Tag.BitsAllocated, [16]);
  const issuer = new Dataset();
  issuer.setString(Tag.LocalNamespaceEntityID, 'RIS-A');
  ds.setSequence(Tag.IssuerOfAccessionNumberSequence, [issuer]);
  ds.setString(Tag.AccessionNumber, 'ACC1');
  return ds;
}

test('ingest fills the index columns the query engine matches on (study, series and instance attributes)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-ingest-'));
  const index = SqliteIndex.open(join(dir, 'index.sqlite'));
  try {
    const ingest = new Ingest({ blobs: new FsBlobStore(dir), index });
    const bytes = encodeDataset(instance(), EXPLICIT_LE);
    const result = await ingest.ingest(Readable.from([bytes]), {
      transferSyntaxUid: EXPLICIT_LE,
      source: { aeTitle: 'TEST' },
      policy: 'reject',
    });
    assert.equal(result.status, 0, result.comment);
    const study = index.studySync('1.2.826.0.1.3680043.2.1125.2')!;
    assert.equal(study.IssuerOfAccessionNumber, 'RIS-A');
    assert.equal(study.NameOfPhysiciansReadingStudy, 'Reader^One\\Reader^Two');
    assert.equal(study.PatientAge, '042Y');
    const series = index.seriesSync('1.2.826.0.1.3680043.2.1125.3')!;
    assert.equal(series.InstitutionName, 'General Hospital');
    assert.equal(series.ProtocolName, 'Chest Routine');
    assert.equal(series.StationName, 'CT01');
    assert.equal(series.Laterality, 'L');

    // Found by the query engine through those columns.
    const q = new Dataset();
    q.setString(Tag.QueryRetrieveLevel, 'SERIES');
    q.setString(Tag.StudyInstanceUID, '1.2.826.0.1.3680043.2.1125.2');
    q.setString(Tag.InstitutionName, 'General*');
    q.setString(Tag.ProtocolName, '');
    const results = [];
    for await (const r of runQuery(index, prepareQuery(q, { level: 'SERIES', model: 'STUDY_ROOT' })))
      results.push(r);
    assert.equal(results.length, 1);
    assert.equal(results[0]!.string(Tag.ProtocolName), 'Chest Routine');

    const i = new Dataset();
    i.setString(Tag.QueryRetrieveLevel, 'IMAGE');
    i.setString(Tag.StudyInstanceUID, '1.2.826.0.1.3680043.2.1125.2');
    i.setString(Tag.SeriesInstanceUID, '1.2.826.0.1.3680043.2.1125.3');
    i.setString(Tag.ContentDate, '20240101-20240131');
    i.setBytes(Tag.BitsAllocated, 'US', Buffer.alloc(0));
    const images = [];
    for await (const r of runQuery(index, prepareQuery(i, { level: 'IMAGE', model: 'STUDY_ROOT' })))
      images.push(r);
    assert.equal(images.length, 1);
    assert.equal(images[0]!.number(Tag.BitsAllocated), 16);
  } finally {
    index.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the record computed when Pixel Data starts is used only when nothing follows it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-ingest-early-'));
  const index = SqliteIndex.open(join(dir, 'index.sqlite'));
  try {
    const ingest = new Ingest({ blobs: new FsBlobStore(dir), index });
    const pixels = Buffer.alloc(64 * 64 * 2, 7);
    const store = async (uid: string, trailing: boolean) => {
      const ds = instance();
      ds.setString(Tag.SOPInstanceUID, uid);
      ds.setValues(Tag.Rows, [64]);
      ds.setValues(Tag.Columns, [64]);
      ds.setValues(Tag.SamplesPerPixel, [1]);
      ds.setValues(Tag.BitsStored, [16]);
      ds.setValues(Tag.PixelRepresentation, [0]);
      ds.setString(Tag.PhotometricInterpretation, 'MONOCHROME2');
      ds.set({ kind: 'value', tag: Tag.PixelData, vr: 'OW', bytes: pixels });
      // Data Set Trailing Padding after Pixel Data: an element the early record has not seen.
      if (trailing) ds.set({ kind: 'value', tag: 0xfffcfffc, vr: 'OB', bytes: Buffer.alloc(4) });
      const bytes = encodeDataset(ds, EXPLICIT_LE);
      // Small chunks: Pixel Data starts in one chunk and ends in a later one.
      const chunks = [];
      for (let at = 0; at < bytes.length; at += 1000) chunks.push(bytes.subarray(at, at + 1000));
      const result = await ingest.ingest(Readable.from(chunks), {
        transferSyntaxUid: EXPLICIT_LE,
        source: { aeTitle: 'TEST' },
        policy: 'reject',
      });
      assert.equal(result.status, 0, result.comment);
      return JSON.parse(index.instanceSync(uid)!.metadata) as Record<string, { BulkDataURI?: string }>;
    };
    const plain = await store('1.2.826.0.1.3680043.2.1125.1.10', false);
    assert.equal(plain['7FE00010']?.BulkDataURI, 'bulk/7FE00010');
    assert.equal(plain.FFFCFFFC, undefined);
    const padded = await store('1.2.826.0.1.3680043.2.1125.1.11', true);
    assert.equal(padded['7FE00010']?.BulkDataURI, 'bulk/7FE00010');
    assert.ok(padded.FFFCFFFC, 'the element after Pixel Data is in the metadata');
    const row = index.instanceSync('1.2.826.0.1.3680043.2.1125.1.11')!;
    assert.equal(row.rows, 64);
    assert.equal(row.size > pixels.length, true);
  } finally {
    index.close();
    await rm(dir, { recursive: true, force: true });
  }
});
