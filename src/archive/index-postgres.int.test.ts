/**
 * PostgresIndex against a real PostgreSQL server started for this file (test/helpers/postgres.ts; a
 * fresh database per index): the Index contract shared with SqliteIndex (index-contract.ts),
 * migrations, `tessera_pn_norm` against keys.ts normalizePersonName, the query engine giving the same
 * results as on SQLite, several nodes (PostgresIndex instances, each its own pool) committing into
 * the same studies at once, the indexes EXPLAIN shows on the usual study-level queries, and a
 * performance sanity check at 10k instances (figures printed, no timing asserts).
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startPostgres, type TestPostgres } from '../../test/helpers/postgres.ts';
import { Dataset, datasetToJson, type Value } from '../codec/index.ts';
import { Tag } from '../dictionary/index.ts';
import { CT, checksumOf, indexContract, items, MR, rec, SR } from './index-contract.ts';
import { migratePostgres, PostgresIndex, patientLockKey } from './index-postgres.ts';
import { patientKeyOf, SqliteIndex } from './index-sqlite.ts';
import { normalizePersonName } from './keys.ts';
import type { CommitOutcome, DuplicatePolicy, Index, InstanceRecord } from './ports.ts';
import {
  countInstances,
  prepareQuery,
  prepareRetrieve,
  type QueryLevel,
  type QueryModel,
  type QueryOptions,
  querySql,
  runQuery,
  selectInstances,
} from './query.ts';
import { MIGRATIONS } from './schema.ts';
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from './schema-postgres.ts';

let server: TestPostgres;

before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

/** A fresh database and an index on it. */
async function openFresh(
  options: { poolSize?: number } = {},
): Promise<{ index: PostgresIndex; url: string }> {
  const url = await server.createDatabase();
  return { index: await PostgresIndex.open(url, { poolSize: 4, ...options }), url };
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

indexContract({ name: 'PostgresIndex', open: async () => (await openFresh()).index });

describe('migrations', () => {
  test('every SQLite migration has its PostgreSQL twin (same versions and descriptions)', () => {
    assert.deepEqual(
      POSTGRES_MIGRATIONS.map((m) => [m.version, m.description]),
      MIGRATIONS.map((m) => [m.version, m.description]),
    );
  });

  test('from scratch: version table, indexes, C collation; opening again is a no-op', async () => {
    const { index, url } = await openFresh();
    await index.close();
    await withClient(url, async (c) => {
      const versions = await c.query(
        'SELECT version, description FROM tessera_schema_migrations ORDER BY version',
      );
      assert.deepEqual(
        versions.rows.map((r) => r.version),
        POSTGRES_MIGRATIONS.map((m) => m.version),
      );
      const names = (await c.query("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")).rows.map(
        (r) => r.indexname as string,
      );
      for (const expected of [
        'patients_patient_id',
        'patients_name_norm',
        'studies_patient_name_norm',
        'studies_study_date',
        'studies_accession',
        'series_modality',
        'study_modalities_modality',
        'instances_series',
        'patients_patient_key_key',
        'studies_study_instance_uid_key',
        'series_series_instance_uid_key',
        'instances_sop_instance_uid_key',
      ]) {
        assert.ok(names.includes(expected), `index ${expected}`);
      }
      const collations = await c.query(
        `SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = 'public'
         AND data_type = 'text' AND table_name != 'tessera_schema_migrations' AND collation_name IS DISTINCT FROM 'C'`,
      );
      assert.equal(collations.rows[0].n, '0', 'every text column is COLLATE "C"');
      const slots = await c.query('SELECT count(*) AS n FROM totals');
      assert.equal(slots.rows[0].n, '16');
    });
    const again = await PostgresIndex.open(url);
    assert.deepEqual(await again.counts(), { patients: 0, studies: 0, series: 0, instances: 0, bytes: 0 });
    await again.close();
  });

  test('four nodes opening a fresh database at once run each migration once', async () => {
    const url = await server.createDatabase();
    const nodes = await Promise.all([1, 2, 3, 4].map(() => PostgresIndex.open(url, { poolSize: 2 })));
    await Promise.all(nodes.map((n) => n.close()));
    await withClient(url, async (c) => {
      const versions = await c.query('SELECT version FROM tessera_schema_migrations ORDER BY version');
      assert.deepEqual(
        versions.rows.map((r) => r.version),
        [1, 2, 3],
      );
    });
  });

  test('from version 1 with data: backfills names, counts, computed attributes and totals', async () => {
    const url = await server.createDatabase();
    await withClient(url, async (c) => {
      assert.equal(await migratePostgres(c, POSTGRES_MIGRATIONS, 1), 1);
      await c.query(`
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
        -- explicit ids: move the identity sequences past them, as a data import would
        SELECT setval(pg_get_serial_sequence(t, 'id'), 10) FROM unnest(ARRAY['patients', 'studies', 'series', 'instances']) AS t;
      `);
    });
    const index = await PostgresIndex.open(url);
    try {
      assert.deepEqual(await index.counts(), {
        patients: 1,
        studies: 2,
        series: 4,
        instances: 5,
        bytes: 150,
      });
      const study = (await index.study('1.2.3'))!;
      assert.equal(study.NumberOfStudyRelatedSeries, 3);
      assert.equal(study.NumberOfStudyRelatedInstances, 4);
      assert.deepEqual(study.ModalitiesInStudy, ['CT', 'MR']);
      assert.deepEqual(study.SOPClassesInStudy, [CT, SR, MR].sort());
      assert.equal(study.NumberOfPatientRelatedStudies, 2);
      assert.equal(study.NumberOfPatientRelatedInstances, 5);
      assert.deepEqual((await index.study('1.2.4'))!.ModalitiesInStudy, []);
      assert.deepEqual(await index.verify(), []);
      assert.deepEqual(
        await index.commit(items('reject', rec({ sop: '1.9.6', series: '1.2.3.1', modality: 'MR' }))),
        [{ kind: 'stored' }],
      );
      assert.equal((await index.study('1.2.3'))!.NumberOfStudyRelatedInstances, 5);
      assert.deepEqual(await index.verify(), []);
    } finally {
      await index.close();
    }
    await withClient(url, async (c) => {
      assert.deepEqual((await c.query('SELECT patient_name_norm AS n FROM patients')).rows, [
        { n: 'DOE^JOHN' },
      ]);
      assert.deepEqual(
        (await c.query('SELECT referring_physician_name_norm AS n FROM studies WHERE id = 1')).rows,
        [{ n: 'WELBY^MARCUS' }],
      );
    });
  });

  test('a database of a newer version is refused; a failing migration leaves the previous version', async () => {
    const url = await server.createDatabase();
    await (await PostgresIndex.open(url)).close();
    await withClient(url, async (c) => {
      const broken = [
        ...POSTGRES_MIGRATIONS,
        {
          version: POSTGRES_SCHEMA_VERSION + 1,
          description: 'broken',
          sql: 'CREATE TABLE x (a int); SELECT nope FROM nowhere;',
        },
      ];
      await assert.rejects(migratePostgres(c, broken), /nowhere/);
      assert.equal((await c.query('SELECT max(version) AS v FROM tessera_schema_migrations')).rows[0].v, 3);
      assert.equal((await c.query("SELECT to_regclass('x') AS x")).rows[0].x, null);
      await c.query("INSERT INTO tessera_schema_migrations (version, description) VALUES (99, 'future')");
    });
    await assert.rejects(PostgresIndex.open(url), { code: 'ERR_ARCHIVE_SCHEMA_TOO_NEW' });
  });

  test('an unreachable server: ERR_ARCHIVE_INDEX_UNAVAILABLE, the password not in the message', async () => {
    await assert.rejects(
      PostgresIndex.open('postgres://tessera:secret@127.0.0.1:1/nope', { connectionTimeoutMs: 2000 }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_ARCHIVE_INDEX_UNAVAILABLE');
        assert.ok(!err.message.includes('secret'), err.message);
        return true;
      },
    );
  });
});

describe('connections', () => {
  test('a connection lost in the middle of a commit: the transaction runs again on a new one', async () => {
    const { index, url } = await openFresh({ poolSize: 2 });
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      await index.commit(items('reject', rec({ sop: '13.1' })));
      // Hold the patient's lock so that the node's transaction waits, then kill its connection.
      const key = String(patientLockKey(patientKeyOf(rec({ sop: '13.2' }))));
      await other.query('SELECT pg_advisory_lock($1)', [key]);
      const { result, retries } = await countingRetries(async () => {
        const outcome = index.commit(items('reject', rec({ sop: '13.2' })));
        outcome.catch(() => undefined);
        for (let killed = 0; killed === 0; ) {
          const { rows } = await other.query(
            `SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
             WHERE application_name = 'tessera' AND wait_event_type = 'Lock'`,
          );
          killed = Number(rows[0].n);
          if (killed === 0) await new Promise((resolve) => setTimeout(resolve, 10));
        }
        // The node runs the transaction again (and waits again): let it through.
        for (;;) {
          const { rows } = await other.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'tessera' AND wait_event_type = 'Lock'",
          );
          if (rows[0].n === '1') break;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await other.query('SELECT pg_advisory_unlock($1)', [key]);
        return outcome;
      });
      assert.deepEqual(result, [{ kind: 'stored' }]);
      assert.equal(retries, 1);
      assert.equal((await index.counts()).instances, 2);
      assert.deepEqual(await index.verify(), []);
    } finally {
      await other.end();
      await index.close();
    }
  });

  test('a writer holding the patient lock past lockTimeoutMs: the commit fails with ERR_ARCHIVE_INDEX_BUSY, nothing written; released, it goes through', {
    timeout: 60_000,
  }, async () => {
    const url = await server.createDatabase();
    const index = await PostgresIndex.open(url, { poolSize: 2, lockTimeoutMs: 300 });
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      // A writer that hangs inside its transaction, holding the patient's lock.
      await other.query('BEGIN');
      const key = String(patientLockKey(patientKeyOf(rec({ sop: '14.1' }))));
      await other.query('SELECT pg_advisory_xact_lock($1)', [key]);
      const started = performance.now();
      await assert.rejects(index.commit(items('reject', rec({ sop: '14.1' }))), {
        code: 'ERR_ARCHIVE_INDEX_BUSY',
        message: /index locked during commit: .*lock timeout/,
      });
      const waited = performance.now() - started;
      assert.ok(waited >= 250 && waited < 10_000, `failed after ${waited.toFixed(0)} ms`);
      assert.equal((await index.counts()).instances, 0);
      // The session settings: the lock timeout, and twice that for a transaction left idle.
      const settings = await index.select(
        "SELECT current_setting('lock_timeout') AS lock, current_setting('idle_in_transaction_session_timeout') AS idle",
        [],
      );
      assert.deepEqual(settings, [{ lock: '300ms', idle: '600ms' }]);
      await other.query('ROLLBACK');
      assert.deepEqual(await index.commit(items('reject', rec({ sop: '14.1' }))), [{ kind: 'stored' }]);
      assert.equal((await index.counts()).instances, 1);
      assert.deepEqual(await index.verify(), []);
    } finally {
      await other.end();
      await index.close();
    }
  });
});

describe('tessera_pn_norm', () => {
  test('equals keys.ts normalizePersonName, non-ASCII and white space included', async () => {
    const names = [
      'Doe^John^^^',
      'doe^john',
      'smith^anne==',
      'ｄｏｅ^ｊｏｈｎ',
      'a^b\\c^d^',
      'Yamada^Tarou=山田^太郎=やまだ^たろう',
      'Yamada^Tarou==',
      '=山田^太郎',
      'Müller^Jürgen',
      'straße^groß',
      'ǆemal^ǈubica',
      'ﬁnn^ﬂo',
      'Ωmega^ǅ',
      'İstanbul^ıŞık',
      'Ελληνικά^σοφός',
      'Кириллица^ёж',
      '  leading^trailing  ',
      ' \t^x^ \u3000',
      'a\u00a0^b\u2003^\u200a',
      '^^^',
      '',
      '\\',
      '=^=',
      'x=\u3000=y^ ^',
      'O’Brien^Seán',
      'Ⅻ^㍿^①',
      'José^García\\Dupont^Zoë',
      '𝔘𝔫𝔦𝔠𝔬𝔡𝔢^𝟙',
      '한국어^이름',
      'e\u0301^A\u030a',
    ];
    const { index, url } = await openFresh();
    await index.close();
    await withClient(url, async (c) => {
      const { rows } = await c.query('SELECT n, tessera_pn_norm(n) AS v FROM unnest($1::text[]) AS n', [
        names,
      ]);
      for (const row of rows) assert.equal(row.v, normalizePersonName(row.n), JSON.stringify(row.n));
      assert.equal(rows.length, names.length);
      const nul = await c.query('SELECT tessera_pn_norm(NULL) AS v');
      assert.equal(nul.rows[0].v, null);
      const volatility = await c.query("SELECT provolatile FROM pg_proc WHERE proname = 'tessera_pn_norm'");
      assert.equal(volatility.rows[0].provolatile, 'i');
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// The query engine: same results on PostgreSQL as on SQLite
// ---------------------------------------------------------------------------------------------------

type Attrs = Record<string, string | readonly string[] | readonly Record<string, string>[]>;

function identifier(attrs: Attrs, level: QueryLevel): Dataset {
  const ds = new Dataset();
  ds.setValues(Tag.SpecificCharacterSet, ['ISO_IR 192'], 'CS');
  ds.setValues(Tag.QueryRetrieveLevel, [level], 'CS');
  for (const [keyword, value] of Object.entries(attrs)) {
    const t = Tag[keyword as keyof typeof Tag];
    if (value === '') ds.setValues(t, []);
    else if (Array.isArray(value) && value.length > 0 && typeof value[0] === 'object') {
      ds.setSequence(
        t,
        (value as Record<string, string>[]).map((item) => {
          const child = new Dataset({ parent: ds });
          for (const [k, v] of Object.entries(item))
            child.setValues(Tag[k as keyof typeof Tag], v === '' ? [] : [v]);
          return child;
        }),
      );
    } else ds.setValues(t, (Array.isArray(value) ? value : [value]) as Value[]);
  }
  return ds;
}

const PATIENT_NAMES = [
  'Doe^John',
  'doe^jane^^',
  'DOE^JOHNNY',
  'Müller^Jürgen',
  'müller^jürgen',
  'Straße^Anna',
  'Yamada^Hanako=山田^花子',
  '100%^Percent',
  'Under_Score^X',
  'ｄｏｅ^ｊｏｈｎ',
  'O’Brien^Seán',
];
const DESCRIPTIONS = ['CT chest [contrast]', '100% done', 'MR_head', 'a*b?c', 'Ünïcode ✓', 'back\\slash'];
const ACCESSIONS = ['ACC%1', 'ACC_2', 'ACC12', 'X[1]', 'acc-5', 'ACC\\6'];
// 'ot' in lower case: ModalitiesInStudy's order ('MR' < 'ot' byte-wise) shows the collation.
const MODALITIES = ['CT', 'MR', 'SR', 'US', 'ot'];
const READERS = ['Smith^Anne\\müller^jürgen', 'straße^anna', 'Doe^John'];
const SIZES = ['1.80', ' 1.8 ', '1.8e0', 'abc', '+1.80', '.5'];

/** A deterministic archive: 11 patients, 40 studies, ~100 series, ~300 instances. */
function parityRecords(): InstanceRecord[] {
  const out: InstanceRecord[] = [];
  let sop = 0;
  for (let s = 0; s < 40; s++) {
    const p = s % PATIENT_NAMES.length;
    const studyUid = `2.25.${s + 1}`;
    const seriesCount = 1 + (s % 4);
    for (let se = 0; se < seriesCount; se++) {
      const seriesUid = `${studyUid}.${se + 1}`;
      const modality = MODALITIES[(s + se) % MODALITIES.length]!;
      for (let i = 0; i < 1 + ((s + se) % 3); i++) {
        sop++;
        const sopUid = `${seriesUid}.${i + 1}`;
        const checksum = checksumOf(sopUid);
        out.push({
          patient: {
            patientId: p === 8 ? '' : `PID${p % 9}`,
            patientName: PATIENT_NAMES[p]!,
            birthDate: `19${50 + p}0101`,
            sex: p % 2 === 0 ? 'M' : 'F',
            otherPatientIds: `OTHER${p}\\ALT_${p}`,
          },
          study: {
            studyInstanceUid: studyUid,
            studyDate: `${2020 + (s % 5)}${String(1 + (s % 12)).padStart(2, '0')}${String(1 + (s % 28)).padStart(2, '0')}`,
            studyTime: `${String(s % 24).padStart(2, '0')}${String((s * 7) % 60).padStart(2, '0')}00`,
            accessionNumber: ACCESSIONS[s % ACCESSIONS.length]!,
            studyDescription: DESCRIPTIONS[s % DESCRIPTIONS.length]!,
            referringPhysicianName: s % 3 === 0 ? 'Welby^Marcus' : 'house^gregory^^',
            nameOfPhysiciansReadingStudy: READERS[s % READERS.length]!,
            patientSize: SIZES[s % SIZES.length]!,
            studyId: `S${s}`,
          },
          series: {
            seriesInstanceUid: seriesUid,
            modality,
            seriesNumber: se + 1,
            seriesDescription: `${modality} series ${se}`,
            seriesDate: '20240101',
            seriesTime: `1${se}3000.5`,
            ...(se === 0
              ? {
                  requestAttributes: JSON.stringify([
                    { RequestedProcedureID: `RP${s}`, ScheduledProcedureStepID: `SPS${s % 3}` },
                  ]),
                }
              : {}),
          },
          instance: {
            sopInstanceUid: sopUid,
            sopClassUid: [CT, MR, SR][sop % 3]!,
            instanceNumber: i + 1,
            transferSyntaxUid: '1.2.840.10008.1.2.1',
            rows: 256 * (1 + (i % 2)),
            columns: 256,
            contentDate: '20240101',
            contentTime: `10${i}000`,
            blobKey: `${sopUid}.blob`,
            size: 1000 + sop,
            checksum,
            receivedAt: '2024-05-01T10:00:00.000Z',
            metadata: JSON.stringify({
              '00080070': { vr: 'LO', Value: [`ACME ${s}`] },
              '00081030': { vr: 'LO', Value: [DESCRIPTIONS[s % DESCRIPTIONS.length]] },
            }),
          },
        });
      }
    }
  }
  return out;
}

interface Q {
  readonly level: QueryLevel;
  readonly attrs: Attrs;
  readonly opts?: Partial<QueryOptions>;
  /** The least number of matches (so that the comparison is not of two empty lists). */
  readonly min?: number;
}

const STUDY_KEYS: Attrs = {
  StudyInstanceUID: '',
  PatientName: '',
  PatientID: '',
  StudyDate: '',
  StudyTime: '',
  AccessionNumber: '',
  StudyDescription: '',
  ModalitiesInStudy: '',
  SOPClassesInStudy: '',
  NumberOfStudyRelatedSeries: '',
  NumberOfStudyRelatedInstances: '',
  NumberOfPatientRelatedStudies: '',
  ReferringPhysicianName: '',
  Manufacturer: '',
};

const study = (attrs: Attrs, min = 1, opts: Partial<QueryOptions> = {}): Q => ({
  level: 'STUDY',
  attrs: { ...STUDY_KEYS, ...attrs },
  min,
  opts,
});

const QUERIES: readonly Q[] = [
  study({}, 40),
  study({ PatientName: 'doe*' }, 3),
  study({ PatientName: 'DOE^JOHN' }, 1),
  study({ PatientName: 'müller*' }, 2),
  study({ PatientName: 'MÜLLER^JÜRGEN' }, 2),
  study({ PatientName: '*hanako*' }, 1),
  study({ PatientName: 'Yamada^Hanako' }, 1),
  study({ PatientName: '100%*' }, 1),
  study({ PatientName: '100?^*' }, 1),
  study({ PatientName: 'Under_*' }, 1),
  study({ PatientName: 'Under?Score*' }, 1),
  study({ PatientName: 'ｄｏｅ*' }, 3),
  study({ PatientName: 'STRASSE*' }, 1),
  study({ PatientName: 'o’brien^seán' }, 1),
  study({ PatientName: 'Doe*' }, 1, { caseInsensitivePersonNames: false }),
  study({ PatientName: 'john' }, 1, { fuzzyPersonNames: true }),
  study({ PatientName: 'jür mül' }, 1, { fuzzyPersonNames: true }),
  study({ StudyDate: '20220101-20221231' }, 1),
  study({ StudyDate: '-20211231' }, 1),
  study({ StudyDate: '20240101-' }, 1),
  study({ StudyDate: '20230404' }, 1),
  study({ StudyTime: '10-12' }, 1),
  study({ StudyTime: '0730-' }, 1),
  study({ StudyDate: '20200101-20221231', StudyTime: '100000-' }, 1, { combinedDateTime: true }),
  study({ AccessionNumber: 'ACC%1' }, 1),
  study({ AccessionNumber: 'ACC_*' }, 1),
  study({ AccessionNumber: 'ACC?2' }, 1),
  study({ AccessionNumber: 'X[1]' }, 1),
  study({ AccessionNumber: 'ACC*' }, 3),
  study({ AccessionNumber: 'acc*' }, 1),
  study({ StudyDescription: '*[contrast]*' }, 1),
  study({ StudyDescription: '100% *' }, 1),
  study({ StudyDescription: 'MR_head' }, 1),
  study({ StudyDescription: '*✓' }, 1),
  study({ StudyInstanceUID: ['2.25.1', '2.25.7', '2.25.39', '9.9.9'] }, 3),
  study({ ModalitiesInStudy: 'MR' }, 1),
  study({ ModalitiesInStudy: ['CT', 'US'] }, 1),
  study({ ModalitiesInStudy: 'M?' }, 1),
  study({ SOPClassesInStudy: SR }, 1),
  study({ ReferringPhysicianName: 'welby*' }, 1),
  study({ ReferringPhysicianName: 'HOUSE^GREGORY' }, 1),
  study({ NameOfPhysiciansReadingStudy: 'MÜLLER*' }, 1),
  study({ NameOfPhysiciansReadingStudy: 'STRASSE^ANNA' }, 1),
  study({ PatientSize: '1.8' }, 1),
  study({ NumberOfStudyRelatedInstances: '3' }, 1),
  study({ PatientID: 'PID1', PatientBirthDate: '19510101' }, 1),
  study({ OtherStudyNumbers: '' }, 40),
  study({ IssuerOfAccessionNumberSequence: [{ LocalNamespaceEntityID: '' }] }, 40),
  study({}, 5, { limit: 5, offset: 3, pageSize: 2 }),
  study({ PatientName: 'doe*' }, 1, { pageSize: 1 }),
  {
    level: 'SERIES',
    attrs: {
      StudyInstanceUID: '2.25.4',
      SeriesInstanceUID: '',
      Modality: '',
      SeriesNumber: '',
      NumberOfSeriesRelatedInstances: '',
    },
    min: 4,
  },
  {
    level: 'SERIES',
    attrs: { StudyInstanceUID: '', SeriesInstanceUID: '', Modality: 'M?' },
    opts: { relational: true },
    min: 1,
  },
  {
    level: 'SERIES',
    attrs: { StudyInstanceUID: '', SeriesNumber: '2', SeriesTime: '11-' },
    opts: { relational: true },
    min: 1,
  },
  {
    level: 'SERIES',
    attrs: {
      StudyInstanceUID: '',
      SeriesInstanceUID: '',
      RequestAttributesSequence: [{ RequestedProcedureID: 'RP1*', ScheduledProcedureStepID: '' }],
    },
    opts: { relational: true },
    min: 1,
  },
  {
    level: 'IMAGE',
    attrs: {
      StudyInstanceUID: '2.25.6',
      SeriesInstanceUID: '2.25.6.2',
      SOPInstanceUID: '',
      InstanceNumber: '',
      Rows: '',
    },
    min: 1,
  },
  {
    level: 'IMAGE',
    attrs: { SOPInstanceUID: '', SOPClassUID: [CT, SR], Rows: '512', ContentTime: '1010-' },
    opts: { relational: true },
    min: 1,
  },
  {
    level: 'PATIENT',
    attrs: { PatientID: 'PID*', PatientName: '', NumberOfPatientRelatedStudies: '', OtherPatientIDs: '' },
    opts: { model: 'PATIENT_ROOT' },
    min: 1,
  },
  {
    level: 'PATIENT',
    attrs: { PatientID: '', PatientName: 'müller*', OtherPatientIDs: 'ALT_*' },
    opts: { model: 'PATIENT_ROOT' },
    min: 1,
  },
  {
    level: 'PATIENT',
    attrs: { PatientID: '', OtherPatientIDs: 'OTHER3' },
    opts: { model: 'PATIENT_ROOT' },
    min: 1,
  },
];

async function results(index: Index, q: Q): Promise<unknown[]> {
  const model: QueryModel = q.opts?.model ?? (q.level === 'PATIENT' ? 'PATIENT_ROOT' : 'STUDY_ROOT');
  const prepared = prepareQuery(identifier(q.attrs, q.level), { level: q.level, model, ...q.opts });
  const out: unknown[] = [];
  for await (const ds of runQuery(index, prepared)) out.push(datasetToJson(ds));
  return out;
}

describe('the query engine on PostgreSQL', () => {
  let sqlite: SqliteIndex;
  let postgres: PostgresIndex;

  before(async () => {
    const records = parityRecords();
    sqlite = SqliteIndex.open(':memory:');
    sqlite.commitSync(items('reject', ...records));
    // A database whose default collation sorts 'a' < 'B' (ICU en-US, PostgreSQL 15+): results must
    // not depend on it (every text column is COLLATE "C", as SQLite's BINARY).
    const name = 'tessera_parity';
    await withClient(server.url, (c) =>
      c.query(
        `CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8'` +
          (server.version >= 15 ? " LOCALE_PROVIDER icu ICU_LOCALE 'en-US'" : ''),
      ),
    );
    postgres = await PostgresIndex.open(server.url.replace(/\/postgres$/, `/${name}`), { poolSize: 4 });
    for (let i = 0; i < records.length; i += 37)
      await postgres.commit(items('reject', ...records.slice(i, i + 37)));
  });
  after(async () => {
    sqlite?.close();
    await postgres?.close();
  });

  test('the same archive: counts, and verify() clean on both', async () => {
    assert.deepEqual(await postgres.counts(), sqlite.countsSync());
    assert.deepEqual(await postgres.verify(), []);
    for (const uid of ['2.25.1', '2.25.8', '2.25.40'])
      assert.deepEqual(await postgres.study(uid), sqlite.studySync(uid));
    for (const uid of ['2.25.3.1', '2.25.4.3'])
      assert.deepEqual(await postgres.series(uid), sqlite.seriesSync(uid));
    assert.deepEqual(await postgres.instance('2.25.4.3.1'), sqlite.instanceSync('2.25.4.3.1'));
  });

  test(`${QUERIES.length} queries: the same results, in the same order`, async () => {
    for (const q of QUERIES) {
      const what = `${q.level} ${JSON.stringify(q.attrs)} ${JSON.stringify(q.opts ?? {})}`;
      const expected = await results(sqlite, q);
      const actual = await results(postgres, q);
      assert.ok(expected.length >= (q.min ?? 0), `${what}: ${expected.length} matches on SQLite`);
      assert.deepEqual(actual, expected, what);
    }
  });

  test('retrieve selections and counts: the same', async () => {
    const cases: { level: QueryLevel; attrs: Attrs; model?: QueryModel }[] = [
      { level: 'STUDY', attrs: { StudyInstanceUID: ['2.25.2', '2.25.3'] } },
      { level: 'SERIES', attrs: { StudyInstanceUID: '2.25.4', SeriesInstanceUID: ['2.25.4.1', '2.25.4.4'] } },
      { level: 'PATIENT', attrs: { PatientID: ['PID1', 'PID2'] }, model: 'PATIENT_ROOT' },
    ];
    for (const c of cases) {
      const r = prepareRetrieve(identifier(c.attrs, c.level), {
        level: c.level,
        model: c.model ?? 'STUDY_ROOT',
        pageSize: 3,
      });
      const a: unknown[] = [];
      const b: unknown[] = [];
      for await (const item of selectInstances(sqlite, r)) a.push(item);
      for await (const item of selectInstances(postgres, r)) b.push(item);
      assert.ok(a.length > 0);
      assert.deepEqual(b, a);
      assert.equal(await countInstances(postgres, r), a.length);
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Several nodes at once
// ---------------------------------------------------------------------------------------------------

/** A random generator with a seed (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(list: T[], rnd: () => number): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list;
}

/** Counts the retries the nodes publish while `fn` runs. */
async function countingRetries<T>(fn: () => Promise<T>): Promise<{ result: T; retries: number }> {
  let retries = 0;
  const onMessage = (m: unknown) => {
    if ((m as { event?: string }).event === 'retry') retries++;
  };
  subscribe('tessera:archive:index', onMessage);
  try {
    return { result: await fn(), retries };
  } finally {
    unsubscribe('tessera:archive:index', onMessage);
  }
}

describe('several nodes committing at once', () => {
  test('4 nodes, 400 instances over 10 studies in random interleaved batches (50 sent twice): exact counts', async () => {
    const url = await server.createDatabase();
    const nodes = await Promise.all([1, 2, 3, 4].map(() => PostgresIndex.open(url, { poolSize: 3 })));
    const seed = Date.now() % 100_000;
    const rnd = random(seed);
    const records: InstanceRecord[] = [];
    for (let i = 0; i < 400; i++) {
      const s = i % 10;
      const se = i % 3;
      records.push(
        rec({
          sop: `7.${i}`,
          study: `7.${s}`,
          series: `7.${s}.${se}`,
          // 10 studies of 4 patients, one of them without a PatientID.
          patientId: s % 4 === 3 ? '' : `P${s % 4}`,
          patient: { patientName: `Name^${s}` },
          modality: ['CT', 'MR', 'US'][se],
          sopClass: [CT, MR, SR][i % 3]!,
          studyAttrs: {
            studyDescription: `study ${s}`,
            ...(i % 7 === 0 ? { accessionNumber: `A${s}` } : {}),
          },
        }),
      );
    }
    // Each node gets a share; 50 records go to two nodes (the second copy must be a duplicate).
    const queues: InstanceRecord[][] = [[], [], [], []];
    for (const [i, r] of shuffle([...records], rnd).entries()) queues[i % 4]!.push(r);
    for (let i = 0; i < 50; i++) queues[(i + 1) % 4]!.push(queues[i % 4]![i]!);
    for (const q of queues) shuffle(q, rnd);
    let inFlight = 0;
    let maxInFlight = 0;
    const started = performance.now();
    const { result: outcomes, retries } = await countingRetries(() =>
      Promise.all(
        nodes.map(async (node, n) => {
          const queue = queues[n]!;
          const mine: CommitOutcome[] = [];
          // Two committers per node (as concurrent ingests' group commits would be).
          await Promise.all(
            [0, 1].map(async () => {
              while (queue.length > 0) {
                const batch = queue.splice(0, 1 + Math.floor(rnd() * 12));
                inFlight++;
                maxInFlight = Math.max(maxInFlight, inFlight);
                try {
                  mine.push(...(await node.commit(items('reject', ...batch))));
                } finally {
                  inFlight--;
                }
              }
            }),
          );
          return mine;
        }),
      ),
    );
    const ms = performance.now() - started;
    const all = outcomes.flat();
    assert.equal(all.length, 450);
    assert.equal(all.filter((o) => o.kind === 'stored').length, 400);
    assert.equal(all.filter((o) => o.kind === 'duplicate-rejected').length, 50);
    const index = nodes[0]!;
    // P0, P1, P2 and the two studies without PatientID (a patient each).
    assert.deepEqual(await index.counts(), {
      patients: 5,
      studies: 10,
      series: 30,
      instances: 400,
      bytes: 400 * 102,
    });
    for (let s = 0; s < 10; s++) {
      const st = (await index.study(`7.${s}`))!;
      assert.equal(st.NumberOfStudyRelatedInstances, 40);
      assert.equal(st.NumberOfStudyRelatedSeries, 3);
      assert.deepEqual(st.ModalitiesInStudy, ['CT', 'MR', 'US']);
      assert.deepEqual(st.SOPClassesInStudy, [CT, MR, SR].sort());
      assert.equal(st.PatientName, `Name^${s}`);
      assert.equal(st.NumberOfPatientRelatedInstances, [120, 120, 80, 40][s % 4]);
    }
    assert.deepEqual(await nodes[2]!.verify(), []);
    // The nodes' transactions overlapped (else this test proves nothing).
    assert.ok(maxInFlight >= 4, `at most ${maxInFlight} commits in flight`);
    console.log(
      `# 4 nodes: 450 records (400 new) in ${ms.toFixed(0)} ms, up to ${maxInFlight} commits in flight, ` +
        `${retries} transaction retries (seed ${seed})`,
    );
    await Promise.all(nodes.map((n) => n.close()));
  });

  for (const [policy, sameContent] of [
    ['reject', false],
    ['accept-if-identical', true],
    ['accept-if-identical', false],
    ['overwrite', false],
    ['overwrite', true],
  ] as [DuplicatePolicy, boolean][]) {
    test(`two nodes commit one SOP Instance UID at once, ${policy}, ${sameContent ? 'same' : 'other'} bytes: one stored`, async () => {
      const url = await server.createDatabase();
      const [a, b] = await Promise.all([
        PostgresIndex.open(url, { poolSize: 2 }),
        PostgresIndex.open(url, { poolSize: 2 }),
      ]);
      try {
        // Round 0 creates the study (new parents on both sides), later rounds file into it.
        for (let round = 0; round < 15; round++) {
          const sop = `8.${round}`;
          const one = rec({ sop, study: `8.${round % 3}`, series: `8.${round % 3}.1`, content: 'one' });
          const two = rec({
            sop,
            study: `8.${round % 3}`,
            series: `8.${round % 3}.1`,
            content: sameContent ? 'one' : 'two',
          });
          const [[x], [y]] = await Promise.all([
            a!.commit(items(policy, one)),
            b!.commit(items(policy, two)),
          ]);
          const byKind = [x!, y!].sort((p, q) => (p.kind === 'stored' ? -1 : q.kind === 'stored' ? 1 : 0));
          const [first, second] = byKind as [CommitOutcome, CommitOutcome];
          assert.equal(first.kind, 'stored', JSON.stringify([x, y]));
          const winner = x!.kind === 'stored' ? one : two;
          const loser = winner === one ? two : one;
          const w = winner.instance;
          const expected: CommitOutcome =
            policy === 'reject'
              ? { kind: 'duplicate-rejected', existingChecksum: w.checksum, existingBlobKey: w.blobKey }
              : sameContent
                ? { kind: 'identical', existingBlobKey: w.blobKey }
                : policy === 'accept-if-identical'
                  ? { kind: 'conflict', existingChecksum: w.checksum, existingBlobKey: w.blobKey }
                  : { kind: 'replaced', oldBlobKey: w.blobKey };
          assert.deepEqual(second, expected);
          const final = policy === 'overwrite' && !sameContent ? loser : winner;
          assert.equal((await a!.instance(sop))!.checksum, final.instance.checksum);
        }
        assert.equal((await a!.counts()).instances, 15);
        assert.deepEqual(await b!.verify(), []);
      } finally {
        await Promise.all([a!.close(), b!.close()]);
      }
    });
  }

  /**
   * Another writer (here plain SQL, as a node of another patient would) holds an uncommitted new
   * study that the node's record names under its own patient: the node's INSERT of that study waits
   * for it, finds it created meanwhile under a patient it did not lock, and runs its transaction again.
   */
  async function filedMeanwhile(
    maxAttempts: number,
  ): Promise<{ outcome: Promise<CommitOutcome[]>; url: string }> {
    const url = await server.createDatabase();
    const node = await PostgresIndex.open(url, { poolSize: 2, maxAttempts });
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`
        WITH p AS (INSERT INTO patients (patient_key, patient_id, number_of_studies, number_of_series, number_of_instances)
                   VALUES ('["P9",""]', 'P9', 1, 1, 1) RETURNING id),
             st AS (INSERT INTO studies (patient_fk, study_instance_uid, number_of_series, number_of_instances,
                      modalities_in_study, sop_classes_in_study) SELECT id, '12.1', 1, 1, 'CT', '${CT}' FROM p RETURNING id),
             sm AS (INSERT INTO study_modalities SELECT id, 'CT', 1 FROM st),
             sc AS (INSERT INTO study_sop_classes SELECT id, '${CT}', 1 FROM st),
             se AS (INSERT INTO series (study_fk, series_instance_uid, modality, number_of_instances)
                    SELECT id, '12.1.9', 'CT', 1 FROM st RETURNING id),
             i AS (INSERT INTO instances (series_fk, sop_instance_uid, sop_class_uid, transfer_syntax_uid, blob_key,
                     size, checksum, received_at) SELECT id, '12.1.9.1', '${CT}', '1.2.840.10008.1.2.1', 'k', 10, 'c', 't'
                   FROM se RETURNING id)
        INSERT INTO instance_documents (instance_fk, metadata) SELECT id, '{}' FROM i`);
      await other.query(
        'UPDATE totals SET patients = patients + 1, studies = studies + 1, series = series + 1, instances = instances + 1, bytes = bytes + 10 WHERE id = 1',
      );
      const outcome = node.commit(
        items('reject', rec({ sop: '12.1.1.1', study: '12.1', series: '12.1.1', patientId: 'P1' })),
      );
      outcome.catch(() => undefined);
      // Commit the other writer once the node waits for it.
      for (let waited = 0; ; waited += 10) {
        const { rows } = await other.query(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'tessera' AND wait_event_type = 'Lock'",
        );
        if (rows[0].n === '1') break;
        assert.ok(waited < 10_000, 'the node never waited for the other writer');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await other.query('COMMIT');
      await outcome.catch(() => undefined);
      return { outcome, url };
    } finally {
      await other.end();
      await node.close();
    }
  }

  test('a study filed meanwhile under another patient: the transaction runs again and files into it', async () => {
    const { result, retries } = await countingRetries(() => filedMeanwhile(5));
    assert.deepEqual(await result.outcome, [{ kind: 'stored' }]);
    assert.equal(retries, 1);
    const index = await PostgresIndex.open(result.url);
    try {
      const study = (await index.study('12.1'))!;
      assert.equal(study.PatientID, 'P9');
      assert.equal(study.NumberOfStudyRelatedInstances, 2);
      assert.equal(study.NumberOfPatientRelatedSeries, 2);
      assert.deepEqual(await index.counts(), {
        patients: 1,
        studies: 1,
        series: 2,
        instances: 2,
        bytes: 112,
      });
      assert.deepEqual(await index.verify(), []);
    } finally {
      await index.close();
    }
  });

  test('retries exhausted: ERR_ARCHIVE_INDEX_BUSY and nothing of the batch written', async () => {
    const { outcome, url } = await filedMeanwhile(1);
    await assert.rejects(outcome, { code: 'ERR_ARCHIVE_INDEX_BUSY' });
    const index = await PostgresIndex.open(url);
    try {
      assert.deepEqual(await index.counts(), { patients: 1, studies: 1, series: 1, instances: 1, bytes: 10 });
      assert.deepEqual(await index.verify(), []);
    } finally {
      await index.close();
    }
  });

  test('commits, overwrites and deletes on 3 nodes at once keep every count exact', async () => {
    const url = await server.createDatabase();
    const nodes = await Promise.all([1, 2, 3].map(() => PostgresIndex.open(url, { poolSize: 3 })));
    const rnd = random(4242);
    const record = (i: number, content = 'v1') =>
      rec({
        sop: `9.${i}`,
        study: `9.${i % 6}`,
        series: `9.${i % 6}.${i % 2}`,
        patientId: `P${i % 3}`,
        content,
      });
    await nodes[0]!.commit(items('reject', ...Array.from({ length: 150 }, (_, i) => record(i))));
    const { retries } = await countingRetries(() =>
      Promise.all([
        (async () => {
          for (let i = 150; i < 300; i += 10) {
            await nodes[0]!.commit(items('reject', ...Array.from({ length: 10 }, (_, k) => record(i + k))));
          }
        })(),
        (async () => {
          for (let k = 0; k < 60; k++) await nodes[1]!.deleteInstance(`9.${Math.floor(rnd() * 300)}`);
        })(),
        (async () => {
          for (let k = 0; k < 30; k++) {
            const batch = Array.from({ length: 5 }, () => record(Math.floor(rnd() * 300), `w${k}`));
            await nodes[2]!.commit(items('overwrite', ...batch));
          }
        })(),
      ]),
    );
    assert.deepEqual(await nodes[0]!.verify(), []);
    const counted = await nodes[1]!.select('SELECT count(*) AS n FROM instances', []);
    assert.equal((await nodes[2]!.counts()).instances, counted[0]!.n);
    console.log(`# 3 nodes commit / overwrite / delete: ${retries} transaction retries`);
    await Promise.all(nodes.map((n) => n.close()));
  });
});

// ---------------------------------------------------------------------------------------------------
// Scale: EXPLAIN and performance sanity at 10k instances
// ---------------------------------------------------------------------------------------------------

describe('10k instances', () => {
  let index: PostgresIndex;
  let url: string;
  const names = ['Doe^John', 'Smith^Anne', 'Müller^Jürgen', 'Yamada^Hanako', 'Brown^Bob'];

  /** 10 instances per study, 2 series per study, 1000 studies of 250 patients. */
  const bulk = (n: number, prefix = '10') => {
    const s = Math.floor(n / 10);
    return rec({
      sop: `${prefix}.${n}`,
      study: `${prefix}.${s}`,
      series: `${prefix}.${s}.${n % 2}`,
      patientId: `BULK${s % 250}`,
      patient: { patientName: `${names[s % 5]}${s % 250}` },
      modality: n % 2 === 0 ? 'CT' : s % 50 === 0 ? 'MR' : 'SR',
      studyAttrs: {
        studyDate: `20${10 + (s % 15)}${String(1 + (s % 12)).padStart(2, '0')}15`,
        accessionNumber: `ACC${s}`,
      },
    });
  };

  before(async () => {
    ({ index, url } = await openFresh({ poolSize: 4 }));
  });
  after(async () => {
    await index?.close();
  });

  test('commit of batches of 50 and study-level queries: figures (no timing asserts)', async () => {
    const times: number[] = [];
    for (let n = 0; n < 10_000; n += 50) {
      const batch = Array.from({ length: 50 }, (_, k) => bulk(n + k));
      const t = performance.now();
      await index.commit(items('reject', ...batch));
      times.push(performance.now() - t);
    }
    assert.equal((await index.counts()).instances, 10_000);
    await withClient(url, (c) => c.query('ANALYZE'));
    // A batch of 50 new instances into existing studies at 10k.
    const intoSeries = Array.from({ length: 50 }, (_, k) => {
      const st = k * 7;
      return rec({
        sop: `11.${k}`,
        study: `10.${st}`,
        series: `10.${st}.0`,
        patientId: `BULK${st % 250}`,
        patient: { patientName: `${names[st % 5]}${st % 250}` },
      });
    });
    const t0 = performance.now();
    assert.ok((await index.commit(items('reject', ...intoSeries))).every((o) => o.kind === 'stored'));
    const intoExisting = performance.now() - t0;
    const sorted = [...times].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const last = times.slice(-20).reduce((a, b) => a + b, 0) / 20;

    const queries: [string, Attrs][] = [
      ['PatientName=smith^anne16*', { PatientName: 'smith^anne16*' }],
      ['PatientName=smith* (1 in 5 studies)', { PatientName: 'smith*' }],
      ['PatientName=MÜLLER^JÜRGEN17', { PatientName: 'MÜLLER^JÜRGEN17' }],
      ['StudyDate=20150101-20150331', { StudyDate: '20150101-20150331' }],
      ['PatientID=BULK42', { PatientID: 'BULK42' }],
      ['AccessionNumber=ACC777', { AccessionNumber: 'ACC777' }],
      ['ModalitiesInStudy=MR', { ModalitiesInStudy: 'MR' }],
      ['all studies, first page', {}],
    ];
    const lines: string[] = [];
    for (const [label, attrs] of queries) {
      const q = prepareQuery(identifier({ ...STUDY_KEYS, ...attrs }, 'STUDY'), {
        level: 'STUDY',
        model: 'STUDY_ROOT',
        limit: 100,
      });
      const t = performance.now();
      let matches = 0;
      for await (const _ of runQuery(index, q)) matches++;
      const ms = performance.now() - t;
      const { sql, params } = querySql(q, index.dialect, { after: 0, limit: 100, offset: 0 });
      const plan = await withClient(url, (c) => c.query(`EXPLAIN ${sql}`, params));
      const text = plan.rows.map((r) => r['QUERY PLAN'] as string).join('\n');
      const used = [
        ...text.matchAll(/(?:Index|Index Only|Bitmap Index) Scan (?:Backward )?(?:using|on) (\w+)/g),
      ].map((m) => m[1]);
      lines.push(
        `#   ${label}: ${matches} matches in ${ms.toFixed(1)} ms; indexes: ${[...new Set(used)].join(', ') || '-'}`,
      );
      if (label.startsWith('PatientName=smith^anne16')) assert.match(text, /studies_patient_name_norm/, text);
      if (label.startsWith('StudyDate')) assert.match(text, /studies_study_date/, text);
      if (label.startsWith('PatientID')) assert.match(text, /patients_patient_id/, text);
      if (label.startsWith('AccessionNumber')) assert.match(text, /studies_accession/, text);
    }
    console.log(
      `# 10k instances: commit of 50 new instances: median ${median.toFixed(1)} ms, last 20 batches ${last.toFixed(1)} ms avg, ` +
        `50 into existing series ${intoExisting.toFixed(1)} ms\n# study-level queries (limit 100):\n${lines.join('\n')}`,
    );
    assert.deepEqual(await index.verify(), []);
  });
});
