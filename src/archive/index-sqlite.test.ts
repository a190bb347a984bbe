/**
 * SqliteIndex over real SQLite files in a temp folder: migrations (from scratch and from older
 * versions), duplicate policies, computed attributes, the conflicting-attribute and patient identity
 * rules, counts, and concurrent writers (two connections in one thread, and two worker threads).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { migrate, patientKeyOf, SqliteIndex } from './index-sqlite.ts';
import { blobKeyFor, normalizePersonName } from './keys.ts';
import type { CommitItem, DuplicatePolicy, InstanceRecord } from './ports.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const SR = '1.2.840.10008.5.1.4.1.1.88.11';

interface Spec {
  sop: string;
  series?: string;
  study?: string;
  patientId?: string;
  modality?: string | undefined;
  sopClass?: string;
  content?: string;
  patient?: Partial<InstanceRecord['patient']>;
  studyAttrs?: Partial<InstanceRecord['study']>;
  seriesAttrs?: Partial<InstanceRecord['series']>;
}

function checksumOf(content: string): string {
  let h = '';
  for (const c of content) h += c.charCodeAt(0).toString(16).padStart(2, '0');
  return h.padEnd(64, '0').slice(0, 64);
}

/** A record with defaults: study 1.2.3, series 1.2.3.1, patient P1, CT. */
function rec(spec: Spec): InstanceRecord {
  const content = spec.content ?? 'v1';
  const checksum = checksumOf(content);
  const modality = 'modality' in spec ? spec.modality : 'CT';
  return {
    patient: { patientId: spec.patientId ?? 'P1', ...spec.patient },
    study: { studyInstanceUid: spec.study ?? '1.2.3', ...spec.studyAttrs },
    series: {
      seriesInstanceUid: spec.series ?? '1.2.3.1',
      ...(modality === undefined ? {} : { modality }),
      ...spec.seriesAttrs,
    },
    instance: {
      sopInstanceUid: spec.sop,
      sopClassUid: spec.sopClass ?? CT,
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      blobKey: blobKeyFor(spec.sop, checksum),
      size: 100 + content.length,
      checksum,
      receivedAt: '2024-05-01T10:00:00.000Z',
      metadata: JSON.stringify({ content }),
    },
  };
}

function items(policy: DuplicatePolicy, ...records: InstanceRecord[]): CommitItem[] {
  return records.map((record) => ({ record, policy }));
}

let dir: string;
let n = 0;
function dbPath(): string {
  return join(dir, `index-${++n}.sqlite`);
}

if (isMainThread) {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-index-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('migrations', () => {
    test('from scratch: every migration, WAL, the matching indexes', () => {
      const path = dbPath();
      const index = SqliteIndex.open(path);
      index.close();
      const db = new Database(path, { readonly: true });
      assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      const names = db
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'index'")
        .all()
        .map((r) => r.name);
      for (const expected of [
        'patients_patient_id',
        'patients_name_norm',
        'studies_patient_name_norm',
        'studies_study_date',
        'studies_accession',
        'series_modality',
      ]) {
        assert.ok(names.includes(expected), `index ${expected}`);
      }
      // The UNIQUE constraints of the UIDs are indexes too.
      const unique = db
        .prepare<[], { tbl_name: string; sql: string }>(
          "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'table'",
        )
        .all();
      const ddl = unique.map((t) => t.sql).join('\n');
      for (const col of ['study_instance_uid', 'series_instance_uid', 'sop_instance_uid', 'patient_key']) {
        assert.match(ddl, new RegExp(`${col} TEXT NOT NULL UNIQUE`));
      }
      db.close();
      // Opening again is a no-op.
      SqliteIndex.open(path).close();
    });

    test('from version 1 with data: backfills names, counts, computed attributes and totals', () => {
      const path = dbPath();
      const db = new Database(path);
      assert.equal(migrate(db, MIGRATIONS, 1), 1);
      db.exec(`
        INSERT INTO patients (id, patient_key, patient_id, patient_name) VALUES (1, '["P1",""]', 'P1', 'doe^john^^');
        INSERT INTO studies (id, patient_fk, study_instance_uid, patient_name, referring_physician_name)
          VALUES (1, 1, '1.2.3', 'doe^john^^', 'Welby^Marcus'), (2, 1, '1.2.4', 'doe^john', NULL);
        INSERT INTO series (id, study_fk, series_instance_uid, modality)
          VALUES (1, 1, '1.2.3.1', 'MR'), (2, 1, '1.2.3.2', 'CT'), (3, 1, '1.2.3.3', 'CT'), (4, 2, '1.2.4.1', NULL);
        INSERT INTO instances (id, series_fk, sop_instance_uid, sop_class_uid, transfer_syntax_uid, blob_key, size,
          checksum, received_at) VALUES
          (1, 1, '1.9.1', '${MR}', '1.2.840.10008.1.2.1', 'k1', 10, 'c1', 't'),
          (2, 1, '1.9.2', '${MR}', '1.2.840.10008.1.2.1', 'k2', 20, 'c2', 't'),
          (3, 2, '1.9.3', '${CT}', '1.2.840.10008.1.2.1', 'k3', 30, 'c3', 't'),
          (4, 3, '1.9.4', '${SR}', '1.2.840.10008.1.2.1', 'k4', 40, 'c4', 't'),
          (5, 4, '1.9.5', '${SR}', '1.2.840.10008.1.2.1', 'k5', 50, 'c5', 't');
        INSERT INTO instance_documents (instance_fk, metadata) VALUES (1, '{}'), (2, '{}'), (3, '{}'), (4, '{}'), (5, '{}');
      `);
      db.close();

      const index = SqliteIndex.open(path);
      assert.deepEqual(index.countsSync(), { patients: 1, studies: 2, series: 4, instances: 5, bytes: 150 });
      const study = index.studySync('1.2.3')!;
      assert.equal(study.NumberOfStudyRelatedSeries, 3);
      assert.equal(study.NumberOfStudyRelatedInstances, 4);
      assert.deepEqual(study.ModalitiesInStudy, ['CT', 'MR']);
      assert.deepEqual(study.SOPClassesInStudy, [CT, SR, MR].sort());
      assert.equal(study.NumberOfPatientRelatedStudies, 2);
      assert.equal(study.NumberOfPatientRelatedSeries, 4);
      assert.equal(study.NumberOfPatientRelatedInstances, 5);
      assert.deepEqual(index.studySync('1.2.4')!.ModalitiesInStudy, []);
      assert.equal(index.seriesSync('1.2.3.1')!.NumberOfSeriesRelatedInstances, 2);
      assert.deepEqual(index.verifySync(), []);
      // The migrated file takes new instances with exact counts.
      assert.deepEqual(
        index.commitSync(items('reject', rec({ sop: '1.9.6', series: '1.2.3.1', modality: 'MR' }))),
        [{ kind: 'stored' }],
      );
      assert.equal(index.studySync('1.2.3')!.NumberOfStudyRelatedInstances, 5);
      assert.deepEqual(index.verifySync(), []);
      index.close();

      const check = new Database(path, { readonly: true });
      assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
      assert.deepEqual(check.prepare('SELECT patient_name_norm AS n FROM patients').get(), { n: 'DOE^JOHN' });
      assert.deepEqual(
        check.prepare('SELECT referring_physician_name_norm AS n FROM studies WHERE id = 1').get(),
        {
          n: 'WELBY^MARCUS',
        },
      );
      check.close();
    });

    test('from version 2, empty', () => {
      const path = dbPath();
      const db = new Database(path);
      migrate(db, MIGRATIONS, 2);
      db.close();
      const index = SqliteIndex.open(path);
      assert.deepEqual(index.countsSync(), { patients: 0, studies: 0, series: 0, instances: 0, bytes: 0 });
      index.close();
    });

    test('a file of a newer version is refused', () => {
      const path = dbPath();
      const db = new Database(path);
      db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      db.close();
      assert.throws(() => SqliteIndex.open(path), { code: 'ERR_ARCHIVE_SCHEMA_TOO_NEW' });
    });

    test('a failing migration leaves the previous version', () => {
      const path = dbPath();
      const broken = [
        ...MIGRATIONS,
        {
          version: SCHEMA_VERSION + 1,
          description: 'broken',
          sql: 'CREATE TABLE x (a); SELECT nope FROM nowhere;',
        },
      ];
      const db = new Database(path);
      assert.throws(() => migrate(db, broken));
      assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
      assert.deepEqual(db.prepare("SELECT count(*) AS c FROM sqlite_master WHERE name = 'x'").get(), {
        c: 0,
      });
      db.close();
    });
  });

  // Duplicate policies, computed attributes, the supplement rule and allBlobKeys are the Index
  // contract (index-contract.ts), run on this adapter by index-sqlite.contract.test.ts.

  describe('documented rules', () => {
    test('patient identity: (PatientID, issuer); the corpus patient-id-collision studies share one patient', () => {
      const index = SqliteIndex.open(dbPath());
      const corpus = new URL('../../../shared/data/dicom/misc/patient-id-collision/', import.meta.url);
      const value = (json: Record<string, { Value?: unknown[] }>, tag: string): unknown =>
        json[tag]?.Value?.[0];
      const records = ['image1', 'image2', 'image3'].map((name) => {
        const json = JSON.parse(readFileSync(new URL(`${name}.dcmtk.json`, corpus), 'utf8'));
        const sop = value(json, '00080018') as string;
        return rec({
          sop,
          study: value(json, '0020000D') as string,
          series: value(json, '0020000E') as string,
          patientId: value(json, '00100020') as string,
          patient: { patientName: (value(json, '00100010') as { Alphabetic: string }).Alphabetic },
          sopClass: value(json, '00080016') as string,
        });
      });
      index.commitSync(items('reject', ...records));
      assert.deepEqual(index.countsSync().patients, 1);
      assert.deepEqual(index.countsSync().studies, 3);
      const names = records.map((r) => index.studySync(r.study.studyInstanceUid)!.PatientName);
      assert.deepEqual(names, ['HELLO', 'WORLD', 'FOO']);
      for (const r of records) {
        const study = index.studySync(r.study.studyInstanceUid)!;
        assert.equal(study.PatientID, 'COMMON');
        assert.equal(study.NumberOfPatientRelatedStudies, 3);
      }

      // Another issuer is another patient; an empty PatientID is a patient per study.
      index.commitSync(
        items(
          'reject',
          rec({
            sop: '6.1',
            study: '6.1',
            series: '6.1.1',
            patientId: 'COMMON',
            patient: { issuerOfPatientId: 'HOSP-B' },
          }),
          rec({ sop: '6.2', study: '6.2', series: '6.2.1', patientId: '' }),
          rec({ sop: '6.3', study: '6.3', series: '6.3.1', patientId: '' }),
        ),
      );
      assert.equal(index.countsSync().patients, 4);
      assert.equal(index.studySync('6.1')!.IssuerOfPatientID, 'HOSP-B');
      assert.equal(index.studySync('6.1')!.NumberOfPatientRelatedStudies, 1);
      assert.equal(index.studySync('6.2')!.NumberOfPatientRelatedStudies, 1);
      assert.notEqual(
        patientKeyOf(rec({ sop: '6.2', study: '6.2', patientId: '' })),
        patientKeyOf(rec({ sop: '6.3', study: '6.3', patientId: '' })),
      );
      assert.deepEqual(index.verifySync(), []);
      index.close();
    });

    test('person names are normalized for case-insensitive matching', () => {
      assert.equal(normalizePersonName('Doe^John^^^'), 'DOE^JOHN');
      assert.equal(
        normalizePersonName('Yamada^Tarou=山田^太郎=やまだ^たろう'),
        'YAMADA^TAROU=山田^太郎=やまだ^たろう',
      );
      assert.equal(normalizePersonName('smith^anne=='), 'SMITH^ANNE');
      assert.equal(normalizePersonName('ｄｏｅ^ｊｏｈｎ'), 'DOE^JOHN');
      assert.equal(normalizePersonName('a^b\\c^d^'), 'A^B\\C^D');
    });
  });

  describe('concurrent writers', () => {
    test('two connections, interleaved transactions on one study: no lost count update', () => {
      const path = dbPath();
      const a = SqliteIndex.open(path);
      const b = SqliteIndex.open(path);
      for (let i = 0; i < 200; i++) {
        const conn = i % 2 === 0 ? a : b;
        conn.commitSync(
          items(
            'reject',
            rec({ sop: `7.${i}`, series: `7.0.${i % 3}`, modality: i % 3 === 0 ? 'MR' : 'CT' }),
          ),
        );
        // The other connection sees the commit at once (no stale snapshot kept between calls).
        const other = conn === a ? b : a;
        assert.equal(other.countsSync().instances, i + 1);
      }
      // Both try the same UID: the unique constraint decides, whoever comes second sees a duplicate.
      assert.deepEqual(a.commitSync(items('reject', rec({ sop: '7.999' }))), [{ kind: 'stored' }]);
      assert.equal(b.commitSync(items('reject', rec({ sop: '7.999' })))[0]!.kind, 'duplicate-rejected');
      const study = a.studySync('1.2.3')!;
      assert.equal(study.NumberOfStudyRelatedInstances, 201);
      assert.equal(study.NumberOfStudyRelatedSeries, 4);
      assert.deepEqual(study.ModalitiesInStudy, ['CT', 'MR']);
      assert.deepEqual(b.verifySync(), []);
      a.close();
      b.close();
    });

    test('two worker threads committing at once on one file: counts exact', async () => {
      // Workers do not inherit tsx's loader on Node 20: register it, then load this file as the worker.
      const workerBootstrap = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
        .then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;
      const path = dbPath();
      SqliteIndex.open(path).close();
      const perWorker = 600;
      // A barrier: both workers open the file, then start committing at the same moment.
      const go = new Int32Array(new SharedArrayBuffer(4));
      let ready = 0;
      const workers = [1, 2].map((worker) => {
        const w = new Worker(workerBootstrap, {
          eval: true,
          workerData: { path, worker, count: perWorker, go },
        });
        return new Promise<{ stored: number }>((resolve, reject) => {
          w.on('message', (m: 'ready' | { stored: number }) => {
            if (m !== 'ready') return resolve(m);
            if (++ready === 2) {
              Atomics.store(go, 0, 1);
              Atomics.notify(go, 0);
            }
          });
          w.once('error', reject);
          w.once('exit', (code) => code !== 0 && reject(new Error(`worker exit ${code}`)));
        });
      });
      const [one, two] = await Promise.all(workers);
      // The two writers' transactions interleaved (else this test proves nothing): in insertion
      // order, the instances switch from one worker's to the other's many times.
      const check = new Database(path, { readonly: true });
      const order = check
        .prepare<[], { w: string }>(
          "SELECT substr(sop_instance_uid, 1, 3) AS w FROM instances WHERE sop_instance_uid NOT LIKE '8.0.%' ORDER BY id",
        )
        .all()
        .map((r) => r.w);
      check.close();
      const switches = order.filter((w, i) => i > 0 && w !== order[i - 1]).length;
      assert.ok(switches >= 10, `writers interleaved ${switches} times`);
      // Both workers also commit 50 shared UIDs: exactly one copy of each is stored.
      assert.equal(one!.stored + two!.stored, 2 * perWorker + 50);
      const index = SqliteIndex.open(path);
      assert.deepEqual(index.countsSync(), {
        patients: 1,
        studies: 1,
        series: 4,
        instances: 2 * perWorker + 50,
        bytes: (2 * perWorker + 50) * 102,
      });
      const study = index.studySync('1.2.3')!;
      assert.equal(study.NumberOfStudyRelatedInstances, 2 * perWorker + 50);
      assert.deepEqual(study.ModalitiesInStudy, ['CT', 'MR']);
      assert.deepEqual(index.verifySync(), []);
      index.close();
    });
  });

  describe('POOLED: commits resolve after an fsync of the WAL on the thread pool', () => {
    test('commit waits for the fsync; concurrent commits share fsyncs; deletes wait too', async () => {
      const { rec, items } = await import('./index-contract.ts');
      const dir = mkdtempSync(join(tmpdir(), 'tessera-pooled-'));
      const index = SqliteIndex.open(join(dir, 'index.sqlite'), { synchronous: 'POOLED' });
      const fs = (await import('node:fs')).default;
      const { mock } = await import('node:test');
      // Each fsync is held until released, to see who waits for it.
      const held: (() => void)[] = [];
      const fsync = mock.method(fs, 'fsync', (fd: number, callback: (err: Error | null) => void) => {
        held.push(() => callback(null));
        void fd;
      });
      try {
        let done = false;
        const first = index.commit(items('reject', rec({ sop: '1.9.1' }))).then((o) => {
          done = true;
          return o;
        });
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(fsync.mock.callCount(), 1);
        assert.equal(done, false, 'commit resolved before its fsync');
        // Committed (visible) already; durable once the fsync completes.
        assert.equal(index.instanceSync('1.9.1')?.sopInstanceUid, '1.9.1');
        // Ten more while the first fsync is in flight: they wait for one fsync that starts after it.
        const more = Array.from({ length: 10 }, (_, i) =>
          index.commit(items('reject', rec({ sop: `1.9.2.${i}` }))),
        );
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(fsync.mock.callCount(), 1, 'the second fsync waits for the first');
        held.shift()!();
        assert.deepEqual(await first, [{ kind: 'stored' }]);
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(fsync.mock.callCount(), 2, 'one fsync for the ten');
        held.shift()!();
        for (const outcome of await Promise.all(more)) assert.deepEqual(outcome, [{ kind: 'stored' }]);
        const deleting = index.deleteInstance('1.9.1');
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(fsync.mock.callCount(), 3);
        held.shift()!();
        assert.equal((await deleting)?.blobKey !== undefined, true);
      } finally {
        fsync.mock.restore();
        index.closeSync();
      }
      // The rows are in the file.
      const reopened = SqliteIndex.open(join(dir, 'index.sqlite'));
      assert.equal(reopened.countsSync().instances, 10);
      reopened.closeSync();
      rmSync(dir, { recursive: true, force: true });
    });
  });
} else {
  // Worker: commits its own instances and 50 shared ones, in batches of 1 to 4, into one study.
  const { path, worker, count, go } = workerData as {
    path: string;
    worker: number;
    count: number;
    go: Int32Array;
  };
  const index = SqliteIndex.open(path, { busyTimeoutMs: 30_000 });
  parentPort!.postMessage('ready');
  Atomics.wait(go, 0, 0);
  const records: InstanceRecord[] = [];
  for (let i = 0; i < count; i++) {
    records.push(
      rec({ sop: `8.${worker}.${i}`, series: `8.0.${i % 4}`, modality: i % 4 === 0 ? 'MR' : 'CT' }),
    );
    if (i < 50)
      records.push(rec({ sop: `8.0.9.${i}`, series: `8.0.${i % 4}`, modality: i % 4 === 0 ? 'MR' : 'CT' }));
  }
  let stored = 0;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < records.length; ) {
    const size = 1 + (i % 4);
    const outcomes = index.commitSync(items('reject', ...records.slice(i, i + size)));
    stored += outcomes.filter((o) => o.kind === 'stored').length;
    i += size;
    // Other work between commits, as ingest has (a writer in a tight loop would keep the lock:
    // SQLite's busy handler sleeps, so the waiting connection only gets in when the other pauses).
    Atomics.wait(pause, 0, 0, 1);
  }
  index.close();
  parentPort!.postMessage({ stored });
}
