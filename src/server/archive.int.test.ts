/**
 * The archive end to end with real DCMTK storescu over 127.0.0.1: the corpus is indexed with the
 * right attributes and stored bit for bit as DCMTK sent it; duplicates follow the policy; a full disk
 * answers A700 and leaves nothing; kill -9 in the middle of four associations leaves an index and a
 * blob store that agree exactly, and a re-send completes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  freePort,
  killChildren,
  requireTools,
  run,
  sleep,
  start,
  writeInstance,
} from '../../test/helpers/interop.ts';
import { FsBlobStore, Ingest, SqliteIndex } from '../archive/index.ts';
import { datasetToJson, type JsonDataset, readPart10 } from '../codec/index.ts';
import { DicomError } from '../core/index.ts';
import { archiveStore, openEmbeddedArchive, startDimseServer } from './index.ts';

const corpus = new URL('../../../shared/data/dicom/', import.meta.url);

/** storescu's flag proposing each transfer syntax (DCMTK 3.6.7 has none for JPEG lossless process 14, .4.57). */
const PROPOSE: Record<string, string> = {
  '1.2.840.10008.1.2': '-xi',
  '1.2.840.10008.1.2.1': '-xe',
  '1.2.840.10008.1.2.2': '-xb',
  '1.2.840.10008.1.2.1.99': '-xd',
  '1.2.840.10008.1.2.4.50': '-xy',
  '1.2.840.10008.1.2.4.51': '-xx',
  '1.2.840.10008.1.2.4.70': '-xs',
  '1.2.840.10008.1.2.4.80': '-xt',
  '1.2.840.10008.1.2.4.81': '-xu',
  '1.2.840.10008.1.2.4.90': '-xv',
  '1.2.840.10008.1.2.4.91': '-xw',
  '1.2.840.10008.1.2.5': '-xr',
};

interface ManifestFile {
  path: string;
  intentionally_malformed: boolean;
  transfer_syntax_uid: string | null;
  sop_class_uid: string | null;
  sop_instance_uid: string | null;
  study_instance_uid: string | null;
  series_instance_uid: string | null;
  has_file_meta: boolean;
}

function corpusFiles(): ManifestFile[] {
  const manifest = JSON.parse(readFileSync(new URL('manifest.json', corpus), 'utf8')) as {
    files: ManifestFile[];
  };
  const seen = new Set<string>();
  return manifest.files.filter((f) => {
    if (f.intentionally_malformed || !f.has_file_meta || !f.sop_instance_uid || !f.transfer_syntax_uid)
      return false;
    if (!PROPOSE[f.transfer_syntax_uid] || !f.sop_class_uid?.startsWith('1.2.840.10008.5.1.4.1.1.'))
      return false;
    if (seen.has(f.sop_instance_uid)) return false; // the ct1 variants share one SOP Instance UID
    seen.add(f.sop_instance_uid);
    return true;
  });
}

/**
 * JSON of a data set without what DCMTK's sender legitimately changes: trailing padding, and the VR
 * of encapsulated Pixel Data (some sources say OW, DCMTK sends OB). Pixel bytes are compared exactly
 * through the byte-identity check.
 */
function comparable(bytes: Buffer): JsonDataset {
  const json = datasetToJson(readPart10(bytes).dataset);
  delete json.FFFCFFFC;
  delete json['7FE00010'];
  return json;
}

describe('archive: storescu -> tessera archive', { timeout: 300_000 }, () => {
  let dir: string;
  let archive: Awaited<ReturnType<typeof openEmbeddedArchive>>;
  let server: Awaited<ReturnType<typeof startDimseServer>>;

  before(async () => {
    await requireTools('storescu', 'dcmconv');
    dir = await mkdtemp(join(tmpdir(), 'tessera-archive-'));
    archive = await openEmbeddedArchive(join(dir, 'data'));
    server = await startDimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'TESSERA',
      artimMs: 2000,
      store: archiveStore(archive.ingest, () => 'accept-if-identical'),
    });
  });

  after(async () => {
    killChildren();
    await server?.close(1000);
    archive?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the corpus is indexed with its attributes and stored as DCMTK sent it', async () => {
    const files = corpusFiles();
    assert.ok(files.length >= 40, `only ${files.length} corpus files selected`);
    let stored = 0;
    for (const f of files) {
      const path = new URL(f.path, corpus).pathname;
      const r = await run(
        'storescu',
        ['-v', '-aec', 'TESSERA', PROPOSE[f.transfer_syntax_uid!]!, '127.0.0.1', String(server.port), path],
        {
          timeoutMs: 60_000,
        },
      );
      // storescu 3.6.7 proposes only the SOP classes it knows (not e.g. Segmentation Storage).
      if (/No presentation context for/.test(r.stderr)) continue;
      if (!f.study_instance_uid || !f.series_instance_uid) {
        // An instance without Study/Series Instance UID cannot be filed: refused with A900, nothing kept.
        assert.match(r.stdout + r.stderr, /DataSetDoesNotMatchSOPClass/, `${f.path}: ${r.stdout}${r.stderr}`);
        assert.equal(archive.index.instanceSync(f.sop_instance_uid!), undefined);
        continue;
      }
      assert.equal(r.code, 0, `${f.path}: storescu failed\n${r.stdout}${r.stderr}`);
      stored++;
      const row = archive.index.instanceSync(f.sop_instance_uid!);
      assert.ok(row, `${f.path}: not in the index`);
      assert.equal(row.sopClassUid, f.sop_class_uid);
      assert.equal(row.studyInstanceUid, f.study_instance_uid);
      assert.equal(row.seriesInstanceUid, f.series_instance_uid);
      assert.equal(row.transferSyntaxUid, f.transfer_syntax_uid);
      const blob = await archive.blobs.readBytes(row.blobKey, 0, row.size);
      // Byte identity with what DCMTK sends: its writer re-encodes (group lengths, padding), as
      // `dcmconv -p` of the source does; the stored data set part must be exactly that.
      const converted = join(dir, 'sent.dcm');
      const c = await run('dcmconv', ['-p', path, converted], { timeoutMs: 60_000 });
      assert.equal(c.code, 0, c.stderr);
      const sent = await readFile(converted);
      const sentDataset = sent.subarray(readPart10(sent).datasetOffset);
      const storedDataset = blob.subarray(readPart10(blob).datasetOffset);
      // (A deflate stream depends on the compressor's settings: for deflated files the meaning is compared.)
      if (f.transfer_syntax_uid !== '1.2.840.10008.1.2.1.99') {
        assert.ok(
          storedDataset.equals(sentDataset),
          `${f.path}: stored data set differs from what storescu sent`,
        );
      }
      assert.deepEqual(
        comparable(blob),
        comparable(await readFile(path)),
        `${f.path}: stored data set means something else`,
      );
      // The precomputed metadata document is the data set's JSON without bulk data.
      const doc = JSON.parse(row.metadata) as JsonDataset;
      assert.equal(doc['00080018']?.Value?.[0], f.sop_instance_uid);
    }
    assert.ok(stored >= 35, `only ${stored} of ${files.length} corpus files stored`);
    assert.equal(archive.index.countsSync().instances, stored);
  });

  test('a duplicate with identical content is accepted once; different content is refused (0111)', async () => {
    const path = new URL('ms-tutorial/red-triangle.dcm', corpus).pathname;
    const before = archive.index.countsSync().instances;
    for (let i = 0; i < 2; i++) {
      const r = await run('storescu', ['-v', '-aec', 'TESSERA', '127.0.0.1', String(server.port), path], {
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(archive.index.countsSync().instances, before);
    // Same SOP Instance UID, other bytes: implicit VR instead of explicit.
    const r = await run(
      'storescu',
      ['-v', '-xi', '-aec', 'TESSERA', '127.0.0.1', String(server.port), path],
      { timeoutMs: 60_000 },
    );
    assert.match(r.stdout + r.stderr, /Status: 0x0?111/i);
    assert.equal(archive.index.countsSync().instances, before);
  });
});

test('a full disk answers A700 and stores nothing', { timeout: 120_000 }, async () => {
  await requireTools('storescu');
  const dir = await mkdtemp(join(tmpdir(), 'tessera-full-'));
  const blobs = new FsBlobStore(join(dir, 'data'));
  // The blob store as a full volume behaves: a write fails with ENOSPC, mapped to ERR_ARCHIVE_DISK_FULL.
  const full: FsBlobStore = Object.create(blobs);
  full.create = async () => {
    const w = await blobs.create();
    return {
      get size() {
        return w.size;
      },
      write: async () => {
        throw new DicomError('ERR_ARCHIVE_DISK_FULL', 'no space left on device');
      },
      commit: (key: string) => w.commit(key),
      abort: () => w.abort(),
    };
  };
  const index = SqliteIndex.open(join(dir, 'index.sqlite'));
  const server = await startDimseServer({
    host: '127.0.0.1',
    port: 0,
    aeTitle: 'TESSERA',
    store: archiveStore(new Ingest({ blobs: full, index }), () => 'reject'),
  });
  try {
    const path = new URL('ms-tutorial/red-triangle.dcm', corpus).pathname;
    const r = await run('storescu', ['-v', '-aec', 'TESSERA', '127.0.0.1', String(server.port), path], {
      timeoutMs: 60_000,
    });
    assert.match(r.stdout + r.stderr, /Refused: OutOfResources/i, `${r.stdout}${r.stderr}`);
    assert.equal(index.countsSync().instances, 0);
    assert.deepEqual(await readdir(join(dir, 'data', 'tmp')).catch(() => []), []);
    assert.deepEqual(await readdir(join(dir, 'data', 'blobs')).catch(() => []), []);
  } finally {
    await server.close(1000);
    index.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('kill -9 during four storescu associations: index and blobs agree, a re-send completes', {
  timeout: 240_000,
}, async () => {
  await requireTools('storescu');
  const dir = await mkdtemp(join(tmpdir(), 'tessera-crash-'));
  const files = join(dir, 'files');
  await mkdir(files);
  const count = 240;
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const p = join(files, `i${String(i).padStart(4, '0')}.dcm`);
    await writeInstance(p, { rows: 256, columns: 256 });
    paths.push(p);
  }
  const dataDir = join(dir, 'data');
  const serve = async (port: number) => {
    const child = start(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'serve',
        '--data-dir',
        dataDir,
        '--dimse-port',
        String(port),
        '--ae-title',
        'TESSERA',
      ],
      {
        timeoutMs: 200_000,
      },
    );
    for (let i = 0; i < 100 && !child.output().includes('listening'); i++) await sleep(100);
    assert.match(child.output(), /listening/);
    return child;
  };
  const storeAll = (port: number) =>
    [0, 1, 2, 3].map((k) =>
      start(
        'storescu',
        ['-aec', 'TESSERA', '127.0.0.1', String(port), ...paths.filter((_, i) => i % 4 === k)],
        { timeoutMs: 200_000 },
      ),
    );
  try {
    const port = await freePort();
    const first = await serve(port);
    const senders = storeAll(port);
    // Let some instances through, then kill the server hard in the middle of the transfers.
    for (let i = 0; i < 200; i++) {
      await sleep(25);
      const stored = await readdir(join(dataDir, 'blobs')).catch(() => []);
      if (stored.length >= 20) break;
    }
    first.process.kill('SIGKILL');
    await first.done;
    await Promise.all(senders.map((s) => s.done));

    // After the crash: every index row has its blob with the recorded checksum.
    const index = SqliteIndex.open(join(dataDir, 'index.sqlite'));
    const blobs = new FsBlobStore(dataDir);
    const rows: { sopInstanceUid: string; blobKey: string }[] = [];
    for await (const row of index.allBlobKeys()) rows.push(row);
    assert.ok(rows.length > 0 && rows.length < count, `${rows.length} instances indexed before the kill`);
    for (const { sopInstanceUid, blobKey } of rows) {
      const inst = index.instanceSync(sopInstanceUid)!;
      const bytes = await blobs.readBytes(blobKey, 0, inst.size);
      const { createHash } = await import('node:crypto');
      // The checksum is of the data set as received, not of the File Meta Tessera put in front.
      const dataset = bytes.subarray(readPart10(bytes).datasetOffset);
      assert.equal(
        createHash('sha256').update(dataset).digest('hex'),
        inst.checksum,
        `${sopInstanceUid}: blob does not match its row`,
      );
    }
    index.close();

    // Restart: temp files of the killed instances are removed; a re-send of everything completes.
    const second = await serve(port);
    assert.doesNotMatch(second.output(), /error/i);
    const resend = storeAll(port);
    const results = await Promise.all(resend.map((s) => s.done));
    for (const r of results) assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    second.process.kill('SIGTERM');
    await second.done;
    const after = SqliteIndex.open(join(dataDir, 'index.sqlite'));
    assert.equal(after.countsSync().instances, count);
    after.close();
    assert.deepEqual(await readdir(join(dataDir, 'tmp')), []);
  } finally {
    killChildren();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a private SOP class is refused by default and stored with acceptUnknownSopClasses', {
  timeout: 60_000,
}, async () => {
  const { describeFile, storeFiles } = await import('../dimse/index.ts');
  const path = new URL('misc/unknown-sop-class-orthanc.dcm', corpus).pathname;
  const item = await describeFile(path);
  for (const accept of [false, true]) {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-unknown-'));
    const archive = await openEmbeddedArchive(join(dir, 'data'));
    const server = await startDimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'TESSERA',
      acceptUnknownSopClasses: accept,
      store: archiveStore(archive.ingest, () => 'reject'),
    });
    try {
      const [outcome] = await storeFiles([item], {
        host: '127.0.0.1',
        port: server.port,
        callingAETitle: 'SCU',
        calledAETitle: 'TESSERA',
        timeoutMs: 10_000,
      });
      if (accept) {
        assert.equal(outcome?.status, 0, outcome?.error);
        assert.ok(archive.index.instanceSync(item.sopInstanceUid));
      } else {
        assert.match(outcome?.error ?? '', /no presentation context accepted/);
        assert.equal(archive.index.countsSync().instances, 0);
      }
    } finally {
      await server.close(1000);
      archive.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
});
