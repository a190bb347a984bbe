/**
 * The embedded index: one SQLite file (better-sqlite3) in WAL mode.
 *
 * Connection: WAL, `synchronous=FULL` by default (a commit is durable when `commit` returns; NORMAL
 * is durable against a process crash but may lose the last transactions on power loss; POOLED is
 * FULL's durability with the WAL fsync on the thread pool, what the server uses), a busy
 * timeout (writers of other connections or processes are waited for, not failed), foreign keys on,
 * migrations of schema.ts run at open. Every write is one `BEGIN IMMEDIATE` transaction, so two
 * connections never deadlock on a read-to-write upgrade and counter updates (`n = n + 1`) of
 * concurrent writers never get lost.
 *
 * Patient identity. Patients are keyed by (PatientID, IssuerOfPatientID), as Orthanc and dcm4chee
 * do: two studies with the same PatientID and no issuer (or the same issuer) belong to one patient,
 * even when their names differ (the corpus's misc/patient-id-collision: three studies of PatientID
 * COMMON named HELLO, WORLD and FOO are one patient with three studies). What keeps such studies
 * apart where it matters: every study row carries the patient's name, birth date and sex as its own
 * instances have them, and the study-level query (Study Root, QIDO-RS /studies) matches and returns
 * those, so the WORLD study is found by PatientName=WORLD. The patient row (Patient Root
 * patient level) has the values of the first study received. An empty PatientID identifies nobody:
 * such a study gets a patient of its own (keyed by its Study Instance UID) rather than joining every
 * other study without an ID.
 *
 * Conflicting attributes across the instances of one study (or series, or patient): the first
 * received value wins, per attribute; a later instance only supplements attributes the row does not
 * have yet (dcm4chee's default "SUPPLEMENT" attribute update policy). The instance's own metadata
 * document always keeps its own values. Placement follows the same rule: an instance goes to the
 * series of its Series Instance UID wherever that series was filed first (even if the instance names
 * another study), and to the patient of its study's first instance (even if it names another
 * patient); such a mismatched instance supplements nothing above the level where it disagrees.
 * An overwrite (policy 'overwrite', different bytes) removes the old instance first, so when it was
 * the only instance of its study, the study row is rebuilt from the new one.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { DicomError } from '../core/index.ts';
import {
  INSTANCE_FIELDS,
  PATIENT_FIELDS,
  SERIES_FIELDS,
  STUDY_FIELDS,
  STUDY_PATIENT_FIELDS,
} from './index-fields.ts';
import { normalizePersonName } from './keys.ts';
import type {
  CommitItem,
  CommitOutcome,
  DuplicatePolicy,
  Index,
  IndexCounts,
  IndexedInstance,
  InstanceRecord,
  SqlDialect,
  SqlValue,
} from './ports.ts';
import { SQLITE_DIALECT } from './query.ts';
import { MIGRATIONS, type Migration } from './schema.ts';

export interface SqliteIndexOptions {
  /**
   * FULL (default): durable against power loss at each commit. NORMAL: against process crashes only.
   * POOLED: as durable as FULL for the asynchronous writes (`commit`, `deleteInstance` resolve once
   * the WAL is fsynced), but the fsync runs on the thread pool, shared by the writes that came
   * meanwhile, instead of blocking the event loop inside SQLite (which runs NORMAL); the `*Sync`
   * twins are then durable against process crashes only when they return.
   */
  readonly synchronous?: 'FULL' | 'NORMAL' | 'POOLED';
  /** How long a write waits for another connection's transaction, in ms (default 10000). */
  readonly busyTimeoutMs?: number;
}

export const SQLITE_INDEX_DEFAULTS = { synchronous: 'FULL', busyTimeoutMs: 10_000 } as const;

/** How many prepared `select` statements a connection keeps (least recently used dropped first). */
export const SELECT_CACHE_SIZE = 64;

type Db = Database.Database;
type Row = Record<string, unknown>;
type Params = Record<string, string | number | null>;

/** `col = COALESCE(col, @param)` for each column, and a WHERE that skips the write when nothing is missing. */
function supplementSql(table: string, pairs: readonly (readonly [string, string])[]): string {
  const sets = pairs.map(([param, col]) => `${col} = COALESCE(${col}, @${param})`).join(', ');
  const missing = pairs.map(([param, col]) => `(${col} IS NULL AND @${param} IS NOT NULL)`).join(' OR ');
  return `UPDATE ${table} SET ${sets} WHERE id = @id AND (${missing})`;
}

function insertSql(
  table: string,
  pairs: readonly (readonly [string, string])[],
  tail = 'RETURNING id',
): string {
  const columns = pairs.map(([, c]) => c).join(', ');
  const values = pairs.map(([p]) => `@${p}`).join(', ');
  return `INSERT INTO ${table} (${columns}) VALUES (${values}) ${tail}`;
}

function pick<T extends object>(
  values: T,
  fields: readonly (readonly [keyof T & string, ...string[]])[],
): Params {
  const out: Params = {};
  for (const [field] of fields) out[field] = (values[field] as string | number | undefined) ?? null;
  return out;
}

/** Copies non-null columns to keyword keys. */
function keywords(row: Row, fields: readonly (readonly [string, string, string])[], out: Row): Row {
  for (const [, col, keyword] of fields) {
    const v = row[col];
    if (v !== null && v !== undefined) out[keyword] = v;
  }
  return out;
}

function split(list: unknown): string[] {
  return typeof list === 'string' && list !== '' ? list.split('\\') : [];
}

/** The identity of a record's patient: see "Patient identity" above. */
export function patientKeyOf(record: InstanceRecord): string {
  const { patientId, issuerOfPatientId } = record.patient;
  return patientId === ''
    ? JSON.stringify(['', issuerOfPatientId ?? '', record.study.studyInstanceUid])
    : JSON.stringify([patientId, issuerOfPatientId ?? '']);
}

function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/** SQLite errors as DicomErrors: SQLITE_FULL -> `ERR_ARCHIVE_DISK_FULL`, SQLITE_BUSY* -> `ERR_ARCHIVE_INDEX_BUSY`, others -> `ERR_ARCHIVE_INDEX`. */
export function mapSqliteError(err: unknown, action: string): Error {
  if (err instanceof DicomError) return err;
  const code = sqliteCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_FULL') {
    return new DicomError('ERR_ARCHIVE_DISK_FULL', `index volume full during ${action}`, { cause: err });
  }
  if (code?.startsWith('SQLITE_BUSY') || code?.startsWith('SQLITE_LOCKED')) {
    return new DicomError('ERR_ARCHIVE_INDEX_BUSY', `index busy during ${action}: ${message}`, {
      cause: err,
    });
  }
  if (code === undefined && !(err instanceof Error)) return new DicomError('ERR_ARCHIVE_INDEX', message);
  return new DicomError('ERR_ARCHIVE_INDEX', `index ${action}: ${message}`, { cause: err });
}

/** Registers the SQL functions migrations and statements use. */
function registerFunctions(db: Db): void {
  db.function('tessera_pn_norm', { deterministic: true }, (value: unknown) =>
    typeof value === 'string' ? normalizePersonName(value) : null,
  );
}

/**
 * Brings the file to the last migration of `migrations` (or `target`): each migration in its own
 * IMMEDIATE transaction that re-reads user_version first, so concurrent openers are safe. Exported
 * for tests (to build a file of an older version).
 */
export function migrate(
  db: Db,
  migrations: readonly Migration[] = MIGRATIONS,
  target = migrations.length,
): number {
  const latest = migrations.length;
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > latest) {
    throw new DicomError(
      'ERR_ARCHIVE_SCHEMA_TOO_NEW',
      `index schema version ${current} is newer than this program's (${latest}); use a newer tessera`,
    );
  }
  registerFunctions(db);
  for (const m of migrations) {
    if (m.version > target) break;
    db.transaction(() => {
      const now = db.pragma('user_version', { simple: true }) as number;
      if (now >= m.version) return;
      if (now !== m.version - 1) {
        throw new DicomError('ERR_ARCHIVE_SCHEMA', `migration ${m.version} found user_version ${now}`);
      }
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return db.pragma('user_version', { simple: true }) as number;
}

interface InstanceRow {
  id: number;
  series_fk: number;
  sop_class_uid: string;
  blob_key: string;
  checksum: string;
  size: number;
}

interface Placement {
  patientFk: number;
  studyFk: number;
  seriesFk: number;
}

/** The counters a change adds, per level. */
interface Delta {
  patients: number;
  studies: number;
  series: number;
  instances: number;
  bytes: number;
}

function statements(db: Db) {
  const patientSupplement = PATIENT_FIELDS.map(([f, c]) => [f, c] as const);
  const studySupplement = [
    ...STUDY_FIELDS.map(([f, c]) => [f, c] as const),
    ['referringPhysicianNameNorm', 'referring_physician_name_norm'] as const,
  ];
  const studyPatientSupplement = [
    ...STUDY_PATIENT_FIELDS.map(([f, c]) => [f, c] as const),
    ['patientNameNorm', 'patient_name_norm'] as const,
  ];
  const seriesSupplement = SERIES_FIELDS.map(([f, c]) => [f, c] as const);
  return {
    savepoint: db.prepare('SAVEPOINT tessera_record'),
    rollbackTo: db.prepare('ROLLBACK TO tessera_record'),
    release: db.prepare('RELEASE tessera_record'),

    instanceBySop: db.prepare<[string], InstanceRow>(
      'SELECT id, series_fk, sop_class_uid, blob_key, checksum, size FROM instances WHERE sop_instance_uid = ?',
    ),
    seriesByUid: db.prepare<[string], { id: number; study_fk: number; modality: string | null }>(
      'SELECT id, study_fk, modality FROM series WHERE series_instance_uid = ?',
    ),
    seriesById: db.prepare<[number], { id: number; study_fk: number; modality: string | null }>(
      'SELECT id, study_fk, modality FROM series WHERE id = ?',
    ),
    studyByUid: db.prepare<[string], { id: number; patient_fk: number; patient_key: string }>(
      'SELECT s.id, s.patient_fk, p.patient_key FROM studies s JOIN patients p ON p.id = s.patient_fk WHERE s.study_instance_uid = ?',
    ),
    studyById: db.prepare<
      [number],
      { id: number; patient_fk: number; study_instance_uid: string; patient_key: string }
    >(
      'SELECT s.id, s.patient_fk, s.study_instance_uid, p.patient_key FROM studies s JOIN patients p ON p.id = s.patient_fk WHERE s.id = ?',
    ),
    patientByKey: db.prepare<[string], { id: number }>('SELECT id FROM patients WHERE patient_key = ?'),

    insertPatient: db.prepare<[Params], { id: number }>(
      insertSql('patients', [
        ['patientKey', 'patient_key'],
        ['patientId', 'patient_id'],
        ['issuerOfPatientId', 'issuer_of_patient_id'],
        ['patientNameNorm', 'patient_name_norm'],
        ...patientSupplement,
      ]),
    ),
    supplementPatient: db.prepare<[Params]>(
      supplementSql('patients', [...patientSupplement, ['patientNameNorm', 'patient_name_norm']]),
    ),
    insertStudy: db.prepare<[Params], { id: number }>(
      insertSql('studies', [
        ['patientFk', 'patient_fk'],
        ['studyInstanceUid', 'study_instance_uid'],
        ...studySupplement,
        ...studyPatientSupplement,
      ]),
    ),
    supplementStudy: db.prepare<[Params]>(supplementSql('studies', studySupplement)),
    supplementStudyPatient: db.prepare<[Params]>(supplementSql('studies', studyPatientSupplement)),
    insertSeries: db.prepare<[Params], { id: number }>(
      insertSql('series', [
        ['studyFk', 'study_fk'],
        ['seriesInstanceUid', 'series_instance_uid'],
        ...seriesSupplement,
      ]),
    ),
    supplementSeries: db.prepare<[Params]>(supplementSql('series', seriesSupplement)),
    // The unique constraint on sop_instance_uid decides "new or duplicate" (no RETURNING row = duplicate).
    insertInstance: db.prepare<[Params], { id: number }>(
      insertSql(
        'instances',
        [['seriesFk', 'series_fk'], ...INSTANCE_FIELDS],
        'ON CONFLICT (sop_instance_uid) DO NOTHING RETURNING id',
      ),
    ),
    insertDocument: db.prepare<[number, string, string | null]>(
      'INSERT INTO instance_documents (instance_fk, metadata, frame_offsets) VALUES (?, ?, ?)',
    ),
    deleteDocument: db.prepare<[number]>('DELETE FROM instance_documents WHERE instance_fk = ?'),
    deleteInstance: db.prepare<[number]>('DELETE FROM instances WHERE id = ?'),
    deleteSeries: db.prepare<[number]>('DELETE FROM series WHERE id = ?'),
    deleteStudy: db.prepare<[number]>('DELETE FROM studies WHERE id = ?'),
    deletePatient: db.prepare<[number]>('DELETE FROM patients WHERE id = ?'),

    addToPatient: db.prepare<[number, number, number, number], { number_of_studies: number }>(
      `UPDATE patients SET number_of_studies = number_of_studies + ?, number_of_series = number_of_series + ?,
       number_of_instances = number_of_instances + ? WHERE id = ? RETURNING number_of_studies`,
    ),
    addToStudy: db.prepare<[number, number, number], { number_of_instances: number }>(
      `UPDATE studies SET number_of_series = number_of_series + ?, number_of_instances = number_of_instances + ?
       WHERE id = ? RETURNING number_of_instances`,
    ),
    addToSeries: db.prepare<[number, number], { number_of_instances: number }>(
      'UPDATE series SET number_of_instances = number_of_instances + ? WHERE id = ? RETURNING number_of_instances',
    ),
    addToTotals: db.prepare<[number, number, number, number, number]>(
      `UPDATE totals SET patients = patients + ?, studies = studies + ?, series = series + ?,
       instances = instances + ?, bytes = bytes + ? WHERE id = 1`,
    ),

    modalityUp: db.prepare<[number, string], { series_count: number }>(
      `INSERT INTO study_modalities (study_fk, modality, series_count) VALUES (?, ?, 1)
       ON CONFLICT DO UPDATE SET series_count = series_count + 1 RETURNING series_count`,
    ),
    modalityDown: db.prepare<[number, string], { series_count: number }>(
      'UPDATE study_modalities SET series_count = series_count - 1 WHERE study_fk = ? AND modality = ? RETURNING series_count',
    ),
    modalityDelete: db.prepare<[number, string]>(
      'DELETE FROM study_modalities WHERE study_fk = ? AND modality = ?',
    ),
    modalitiesRefresh: db.prepare<[{ study: number }]>(
      `UPDATE studies SET modalities_in_study = (SELECT group_concat(modality, '\\' ORDER BY modality)
       FROM study_modalities WHERE study_fk = @study) WHERE id = @study`,
    ),
    sopClassUp: db.prepare<[number, string], { instance_count: number }>(
      `INSERT INTO study_sop_classes (study_fk, sop_class_uid, instance_count) VALUES (?, ?, 1)
       ON CONFLICT DO UPDATE SET instance_count = instance_count + 1 RETURNING instance_count`,
    ),
    sopClassDown: db.prepare<[number, string], { instance_count: number }>(
      'UPDATE study_sop_classes SET instance_count = instance_count - 1 WHERE study_fk = ? AND sop_class_uid = ? RETURNING instance_count',
    ),
    sopClassDelete: db.prepare<[number, string]>(
      'DELETE FROM study_sop_classes WHERE study_fk = ? AND sop_class_uid = ?',
    ),
    sopClassesRefresh: db.prepare<[{ study: number }]>(
      `UPDATE studies SET sop_classes_in_study = (SELECT group_concat(sop_class_uid, '\\' ORDER BY sop_class_uid)
       FROM study_sop_classes WHERE study_fk = @study) WHERE id = @study`,
    ),

    instance: db.prepare<[string], Row>(
      `SELECT i.*, d.metadata, d.frame_offsets, s.series_instance_uid, st.study_instance_uid
       FROM instances i JOIN instance_documents d ON d.instance_fk = i.id
       JOIN series s ON s.id = i.series_fk JOIN studies st ON st.id = s.study_fk
       WHERE i.sop_instance_uid = ?`,
    ),
    study: db.prepare<[string], Row>(
      `SELECT st.*, p.patient_id, p.issuer_of_patient_id, p.number_of_studies AS patient_studies,
       p.number_of_series AS patient_series, p.number_of_instances AS patient_instances
       FROM studies st JOIN patients p ON p.id = st.patient_fk WHERE st.study_instance_uid = ?`,
    ),
    series: db.prepare<[string], Row>(
      `SELECT s.*, st.study_instance_uid FROM series s JOIN studies st ON st.id = s.study_fk
       WHERE s.series_instance_uid = ?`,
    ),
    blobKeysPage: db.prepare<[number, number], { id: number; sop_instance_uid: string; blob_key: string }>(
      'SELECT id, sop_instance_uid, blob_key FROM instances WHERE id > ? ORDER BY id LIMIT ?',
    ),
    totals: db.prepare<[], IndexCounts>(
      'SELECT patients, studies, series, instances, bytes FROM totals WHERE id = 1',
    ),
  };
}

/** `Index` over SQLite. See the module comment for the connection, identity and conflict rules. */
export class SqliteIndex implements Index {
  readonly #db: Db;
  readonly #stmt: ReturnType<typeof statements>;
  readonly #commitBatch: (batch: readonly CommitItem[]) => CommitOutcome[];
  readonly #delete: (sopInstanceUid: string) => { blobKey: string } | undefined;
  /** Prepared `select` statements by SQL text, in least-recently-used order. */
  readonly #selects = new Map<string, Database.Statement<SqlValue[], Row>>();
  readonly dialect: SqlDialect = SQLITE_DIALECT;

  private constructor(db: Db) {
    this.#db = db;
    this.#stmt = statements(db);
    const commitTx = db.transaction((batch: readonly CommitItem[]) =>
      batch.map(({ record, policy }) => this.#commitOne(record, policy)),
    );
    this.#commitBatch = (batch) => commitTx.immediate(batch);
    const deleteTx = db.transaction((sopInstanceUid: string) => {
      const row = this.#stmt.instanceBySop.get(sopInstanceUid);
      if (row === undefined) return undefined;
      this.#remove(row);
      return { blobKey: row.blob_key };
    });
    this.#delete = (uid) => deleteTx.immediate(uid);
  }

  /** Opens (creating if needed) and migrates the index file. `':memory:'` works for throwaway use. */
  static open(path: string, options: SqliteIndexOptions = {}): SqliteIndex {
    const synchronous = options.synchronous ?? SQLITE_INDEX_DEFAULTS.synchronous;
    if (synchronous !== 'FULL' && synchronous !== 'NORMAL' && synchronous !== 'POOLED') {
      throw new DicomError(
        'ERR_ARCHIVE_INDEX',
        `synchronous must be FULL, NORMAL or POOLED, not ${String(synchronous)}`,
      );
    }
    let db: Db;
    try {
      db = new Database(path, { timeout: options.busyTimeoutMs ?? SQLITE_INDEX_DEFAULTS.busyTimeoutMs });
    } catch (err) {
      throw mapSqliteError(err, `open ${path}`);
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${synchronous === 'POOLED' ? 'NORMAL' : synchronous}`);
      db.pragma('foreign_keys = ON');
      migrate(db);
      const index = new SqliteIndex(db);
      if (synchronous === 'POOLED' && path !== ':memory:') index.#walPath = `${path}-wal`;
      return index;
    } catch (err) {
      db.close();
      throw mapSqliteError(err, `open ${path}`);
    }
  }

  async commit(batch: readonly CommitItem[]): Promise<CommitOutcome[]> {
    const outcomes = this.commitSync(batch);
    await this.#durable();
    return outcomes;
  }

  /** POOLED: the WAL file of this index, fsynced on the thread pool after writes. */
  #walPath: string | undefined;
  #walFd: number | undefined;
  /** The WAL fsync in flight, and the one queued behind it for the writes that came meanwhile. */
  #syncing: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  /**
   * Resolves once every transaction committed so far is on disk (POOLED; at once otherwise): an fsync
   * of the WAL (any descriptor of the file will do) that started after them. One in flight started
   * too early for the latest writes: one more follows it, shared by all that arrive meanwhile.
   */
  #durable(): Promise<void> {
    if (this.#walPath === undefined) return Promise.resolve();
    if (this.#syncing === undefined) {
      const run = this.#fsyncWal().finally(() => {
        if (this.#syncing === run) this.#syncing = undefined;
      });
      this.#syncing = run;
      return run;
    }
    this.#queued ??= this.#syncing
      .catch(() => undefined)
      .then(() => {
        this.#queued = undefined;
        return this.#durable();
      });
    return this.#queued;
  }

  async #fsyncWal(): Promise<void> {
    try {
      this.#walFd ??= fs.openSync(this.#walPath!, 'r');
      const fd = this.#walFd;
      await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT')
        throw new DicomError(
          'ERR_ARCHIVE_DISK_FULL',
          `index volume full (${code}) during fsync of the write-ahead log`,
          {
            cause: err,
          },
        );
      throw mapSqliteError(err, 'fsync of the write-ahead log');
    }
  }

  /** `commit`, synchronously (the embedded adapter's own API; the port is async). */
  commitSync(batch: readonly CommitItem[]): CommitOutcome[] {
    if (batch.length === 0) return [];
    try {
      return this.#commitBatch(batch);
    } catch (err) {
      throw mapSqliteError(err, 'commit');
    }
  }

  async instance(sopInstanceUid: string): Promise<IndexedInstance | undefined> {
    return this.instanceSync(sopInstanceUid);
  }

  instanceSync(sopInstanceUid: string): IndexedInstance | undefined {
    const row = this.#read(() => this.#stmt.instance.get(sopInstanceUid), 'instance');
    if (row === undefined) return undefined;
    const out: Row = {
      studyInstanceUid: row.study_instance_uid,
      seriesInstanceUid: row.series_instance_uid,
      metadata: row.metadata,
    };
    for (const [field, col] of INSTANCE_FIELDS) if (row[col] !== null) out[field] = row[col];
    if (row.frame_offsets !== null) out.frameOffsets = row.frame_offsets;
    return out as IndexedInstance;
  }

  async *allBlobKeys(): AsyncGenerator<{ sopInstanceUid: string; blobKey: string }> {
    // Pages by id with no statement left open between pages, so the caller may delete while iterating.
    for (let after = 0; ; ) {
      const page = this.#read(() => this.#stmt.blobKeysPage.all(after, 1000), 'allBlobKeys');
      for (const r of page) yield { sopInstanceUid: r.sop_instance_uid, blobKey: r.blob_key };
      const last = page.at(-1);
      if (last === undefined || page.length < 1000) return;
      after = last.id;
    }
  }

  /**
   * A read-only statement's rows, all at once (`.all()`: no statement stays open across awaits,
   * which better-sqlite3 would refuse). Statements are prepared once per SQL text and kept in a
   * bounded cache; a statement that writes is refused.
   */
  select(sql: string, params: readonly SqlValue[]): Promise<Record<string, unknown>[]> {
    try {
      return Promise.resolve(this.#selectStatement(sql).all(...params));
    } catch (err) {
      return Promise.reject(mapSqliteError(err, 'select'));
    }
  }

  /** How many `select` statements are cached (for tests). */
  get cachedSelects(): number {
    return this.#selects.size;
  }

  #selectStatement(sql: string): Database.Statement<SqlValue[], Row> {
    let stmt = this.#selects.get(sql);
    if (stmt !== undefined) {
      this.#selects.delete(sql);
    } else {
      stmt = this.#db.prepare<SqlValue[], Row>(sql);
      if (!stmt.reader || !stmt.readonly) {
        throw new DicomError('ERR_ARCHIVE_INDEX', 'select takes a read-only statement that returns rows');
      }
      if (this.#selects.size >= SELECT_CACHE_SIZE) {
        this.#selects.delete(this.#selects.keys().next().value!);
      }
    }
    this.#selects.set(sql, stmt);
    return stmt;
  }

  async counts(): Promise<IndexCounts> {
    return this.countsSync();
  }

  countsSync(): IndexCounts {
    const row = this.#read(() => this.#stmt.totals.get(), 'counts');
    return row ?? { patients: 0, studies: 0, series: 0, instances: 0, bytes: 0 };
  }

  async study(studyInstanceUid: string): Promise<Record<string, unknown> | undefined> {
    return this.studySync(studyInstanceUid);
  }

  studySync(studyInstanceUid: string): Record<string, unknown> | undefined {
    const row = this.#read(() => this.#stmt.study.get(studyInstanceUid), 'study');
    if (row === undefined) return undefined;
    const out: Row = { StudyInstanceUID: row.study_instance_uid, PatientID: row.patient_id };
    if (row.issuer_of_patient_id !== null) out.IssuerOfPatientID = row.issuer_of_patient_id;
    keywords(row, STUDY_FIELDS, out);
    keywords(row, STUDY_PATIENT_FIELDS, out);
    out.NumberOfStudyRelatedSeries = row.number_of_series;
    out.NumberOfStudyRelatedInstances = row.number_of_instances;
    out.ModalitiesInStudy = split(row.modalities_in_study);
    out.SOPClassesInStudy = split(row.sop_classes_in_study);
    out.NumberOfPatientRelatedStudies = row.patient_studies;
    out.NumberOfPatientRelatedSeries = row.patient_series;
    out.NumberOfPatientRelatedInstances = row.patient_instances;
    return out;
  }

  async series(seriesInstanceUid: string): Promise<Record<string, unknown> | undefined> {
    return this.seriesSync(seriesInstanceUid);
  }

  seriesSync(seriesInstanceUid: string): Record<string, unknown> | undefined {
    const row = this.#read(() => this.#stmt.series.get(seriesInstanceUid), 'series');
    if (row === undefined) return undefined;
    const out: Row = { SeriesInstanceUID: row.series_instance_uid, StudyInstanceUID: row.study_instance_uid };
    keywords(row, SERIES_FIELDS, out);
    out.NumberOfSeriesRelatedInstances = row.number_of_instances;
    return out;
  }

  async deleteInstance(sopInstanceUid: string): Promise<{ blobKey: string } | undefined> {
    const deleted = this.deleteInstanceSync(sopInstanceUid);
    await this.#durable();
    return deleted;
  }

  deleteInstanceSync(sopInstanceUid: string): { blobKey: string } | undefined {
    try {
      return this.#delete(sopInstanceUid);
    } catch (err) {
      throw mapSqliteError(err, 'deleteInstance');
    }
  }

  /**
   * Recomputes every computed attribute and count from the rows and lists the differences from the
   * stored ones (empty when consistent), and rows that should have been removed: for tests, admin
   * checks and after a crash.
   */
  async verify(): Promise<string[]> {
    return this.verifySync();
  }

  verifySync(): string[] {
    const checks: [string, string][] = [
      [
        'series.number_of_instances',
        `SELECT series_instance_uid AS k FROM series s WHERE number_of_instances !=
         (SELECT count(*) FROM instances WHERE series_fk = s.id) OR number_of_instances = 0`,
      ],
      [
        'studies.number_of_series/instances',
        `SELECT study_instance_uid AS k FROM studies st WHERE number_of_series !=
         (SELECT count(*) FROM series WHERE study_fk = st.id) OR number_of_instances !=
         (SELECT count(*) FROM instances i JOIN series s ON s.id = i.series_fk WHERE s.study_fk = st.id)
         OR number_of_instances = 0`,
      ],
      [
        'patients.number_of_*',
        `SELECT patient_key AS k FROM patients p WHERE number_of_studies !=
         (SELECT count(*) FROM studies WHERE patient_fk = p.id) OR number_of_series !=
         (SELECT count(*) FROM series s JOIN studies st ON st.id = s.study_fk WHERE st.patient_fk = p.id)
         OR number_of_instances != (SELECT count(*) FROM instances i JOIN series s ON s.id = i.series_fk
         JOIN studies st ON st.id = s.study_fk WHERE st.patient_fk = p.id) OR number_of_studies = 0`,
      ],
      [
        'studies.modalities_in_study',
        `SELECT study_instance_uid AS k FROM studies st WHERE coalesce(modalities_in_study, '') !=
         coalesce((SELECT group_concat(m, '\\' ORDER BY m) FROM (SELECT DISTINCT modality AS m FROM series
         WHERE study_fk = st.id AND modality IS NOT NULL)), '')
         OR EXISTS (SELECT 1 FROM study_modalities sm WHERE sm.study_fk = st.id AND sm.series_count !=
         (SELECT count(*) FROM series WHERE study_fk = st.id AND modality = sm.modality))`,
      ],
      [
        'studies.sop_classes_in_study',
        `SELECT study_instance_uid AS k FROM studies st WHERE coalesce(sop_classes_in_study, '') !=
         coalesce((SELECT group_concat(c, '\\' ORDER BY c) FROM (SELECT DISTINCT i.sop_class_uid AS c
         FROM instances i JOIN series s ON s.id = i.series_fk WHERE s.study_fk = st.id)), '')
         OR EXISTS (SELECT 1 FROM study_sop_classes sc WHERE sc.study_fk = st.id AND sc.instance_count !=
         (SELECT count(*) FROM instances i JOIN series s ON s.id = i.series_fk
          WHERE s.study_fk = st.id AND i.sop_class_uid = sc.sop_class_uid))`,
      ],
      [
        'totals',
        `SELECT 'totals' AS k FROM totals WHERE patients != (SELECT count(*) FROM patients)
         OR studies != (SELECT count(*) FROM studies) OR series != (SELECT count(*) FROM series)
         OR instances != (SELECT count(*) FROM instances) OR bytes != (SELECT coalesce(sum(size), 0) FROM instances)`,
      ],
      [
        'instance_documents',
        'SELECT sop_instance_uid AS k FROM instances i WHERE NOT EXISTS (SELECT 1 FROM instance_documents WHERE instance_fk = i.id)',
      ],
    ];
    const problems: string[] = [];
    this.#read(() => {
      for (const [what, sql] of checks) {
        for (const row of this.#db.prepare<[], { k: string }>(sql).all()) problems.push(`${what}: ${row.k}`);
      }
    }, 'verify');
    return problems;
  }

  async close(): Promise<void> {
    this.closeSync();
  }

  closeSync(): void {
    this.#db.close();
    if (this.#walFd !== undefined) fs.closeSync(this.#walFd);
    this.#walFd = undefined;
  }

  #read<T>(fn: () => T, action: string): T {
    try {
      return fn();
    } catch (err) {
      throw mapSqliteError(err, action);
    }
  }

  /** One record inside the batch transaction. */
  #commitOne(record: InstanceRecord, policy: DuplicatePolicy): CommitOutcome {
    if (this.#tryInsert(record)) return { kind: 'stored' };
    const existing = this.#stmt.instanceBySop.get(record.instance.sopInstanceUid);
    if (existing === undefined) {
      throw new DicomError('ERR_ARCHIVE_INDEX', `duplicate ${record.instance.sopInstanceUid} vanished`);
    }
    const same = existing.checksum === record.instance.checksum;
    switch (policy) {
      case 'reject':
        return {
          kind: 'duplicate-rejected',
          existingChecksum: existing.checksum,
          existingBlobKey: existing.blob_key,
        };
      case 'accept-if-identical':
        return same
          ? { kind: 'identical', existingBlobKey: existing.blob_key }
          : { kind: 'conflict', existingChecksum: existing.checksum, existingBlobKey: existing.blob_key };
      case 'overwrite': {
        if (same) return { kind: 'identical', existingBlobKey: existing.blob_key };
        this.#remove(existing);
        if (!this.#tryInsert(record)) {
          throw new DicomError('ERR_ARCHIVE_INDEX', `cannot replace ${record.instance.sopInstanceUid}`);
        }
        return { kind: 'replaced', oldBlobKey: existing.blob_key };
      }
      default:
        throw new DicomError('ERR_ARCHIVE_BAD_POLICY', `unknown duplicate policy ${String(policy)}`);
    }
  }

  /**
   * Files the instance and its parents, or changes nothing and returns false when the SOP Instance
   * UID is already indexed: the parents' upserts run in a savepoint that a unique-constraint miss
   * rolls back.
   */
  #tryInsert(record: InstanceRecord): boolean {
    const s = this.#stmt;
    s.savepoint.run();
    try {
      const delta: Delta = { patients: 0, studies: 0, series: 0, instances: 1, bytes: record.instance.size };
      const at = this.#place(record, delta);
      const inserted = s.insertInstance.get({
        seriesFk: at.seriesFk,
        ...pick(record.instance, INSTANCE_FIELDS),
      });
      if (inserted === undefined) {
        s.rollbackTo.run();
        s.release.run();
        return false;
      }
      s.insertDocument.run(inserted.id, record.instance.metadata, record.instance.frameOffsets ?? null);
      s.addToSeries.run(1, at.seriesFk);
      s.addToStudy.run(0, 1, at.studyFk);
      s.addToPatient.run(0, 0, 1, at.patientFk);
      if (s.sopClassUp.get(at.studyFk, record.instance.sopClassUid)?.instance_count === 1) {
        s.sopClassesRefresh.run({ study: at.studyFk });
      }
      s.addToTotals.run(delta.patients, delta.studies, delta.series, delta.instances, delta.bytes);
      s.release.run();
      return true;
    } catch (err) {
      s.rollbackTo.run();
      s.release.run();
      throw err;
    }
  }

  /** Finds or creates the series, study and patient rows of a record (first received wins, then supplement). */
  #place(record: InstanceRecord, delta: Delta): Placement {
    const s = this.#stmt;
    const patientKey = patientKeyOf(record);
    const patientName = record.patient.patientName;
    const patientNorm = patientName === undefined ? null : normalizePersonName(patientName);
    const studyParams = (id: number): Params => ({
      id,
      ...pick(record.study, STUDY_FIELDS),
      referringPhysicianNameNorm:
        record.study.referringPhysicianName === undefined
          ? null
          : normalizePersonName(record.study.referringPhysicianName),
    });
    const studyPatientParams = (id: number): Params => ({
      id,
      ...pick(record.patient, STUDY_PATIENT_FIELDS),
      patientNameNorm: patientNorm,
    });
    const patientParams = (id: number): Params => ({
      id,
      ...pick(record.patient, PATIENT_FIELDS),
      patientNameNorm: patientNorm,
    });
    /** Supplements the study (and its patient when the record names the same patient). */
    const supplementStudy = (study: { id: number; patient_fk: number; patient_key: string }): void => {
      s.supplementStudy.run(studyParams(study.id));
      if (study.patient_key === patientKey) {
        s.supplementStudyPatient.run(studyPatientParams(study.id));
        s.supplementPatient.run(patientParams(study.patient_fk));
      }
    };

    const series = s.seriesByUid.get(record.series.seriesInstanceUid);
    if (series !== undefined) {
      s.supplementSeries.run({ id: series.id, ...pick(record.series, SERIES_FIELDS) });
      if (series.modality === null && record.series.modality !== undefined) {
        this.#modalityAdded(series.study_fk, record.series.modality);
      }
      const study = s.studyById.get(series.study_fk)!;
      if (study.study_instance_uid === record.study.studyInstanceUid) supplementStudy(study);
      return { patientFk: study.patient_fk, studyFk: study.id, seriesFk: series.id };
    }

    let study = s.studyByUid.get(record.study.studyInstanceUid);
    if (study !== undefined) {
      supplementStudy(study);
    } else {
      let patient = s.patientByKey.get(patientKey);
      if (patient !== undefined) {
        s.supplementPatient.run(patientParams(patient.id));
      } else {
        patient = s.insertPatient.get({
          ...patientParams(0),
          patientKey,
          patientId: record.patient.patientId,
          issuerOfPatientId: record.patient.issuerOfPatientId ?? null,
        })!;
        delta.patients++;
      }
      const inserted = s.insertStudy.get({
        ...studyParams(0),
        ...studyPatientParams(0),
        patientFk: patient.id,
        studyInstanceUid: record.study.studyInstanceUid,
      })!;
      s.addToPatient.run(1, 0, 0, patient.id);
      delta.studies++;
      study = { id: inserted.id, patient_fk: patient.id, patient_key: patientKey };
    }

    const newSeries = s.insertSeries.get({
      studyFk: study.id,
      seriesInstanceUid: record.series.seriesInstanceUid,
      ...pick(record.series, SERIES_FIELDS),
    })!;
    s.addToStudy.run(1, 0, study.id);
    s.addToPatient.run(0, 1, 0, study.patient_fk);
    delta.series++;
    if (record.series.modality !== undefined) this.#modalityAdded(study.id, record.series.modality);
    return { patientFk: study.patient_fk, studyFk: study.id, seriesFk: newSeries.id };
  }

  #modalityAdded(studyFk: number, modality: string): void {
    if (this.#stmt.modalityUp.get(studyFk, modality)?.series_count === 1)
      this.#stmt.modalitiesRefresh.run({ study: studyFk });
  }

  /** Removes an instance row, updates the counts and removes emptied series, study and patient rows. */
  #remove(row: InstanceRow): void {
    const s = this.#stmt;
    const series = s.seriesById.get(row.series_fk)!;
    const study = s.studyById.get(series.study_fk)!;
    const delta: Delta = { patients: 0, studies: 0, series: 0, instances: -1, bytes: -row.size };
    s.deleteDocument.run(row.id);
    s.deleteInstance.run(row.id);
    if (s.sopClassDown.get(study.id, row.sop_class_uid)?.instance_count === 0) {
      s.sopClassDelete.run(study.id, row.sop_class_uid);
      s.sopClassesRefresh.run({ study: study.id });
    }
    const seriesLeft = s.addToSeries.get(-1, series.id)!.number_of_instances;
    let seriesGone = 0;
    if (seriesLeft === 0) {
      if (series.modality !== null && s.modalityDown.get(study.id, series.modality)?.series_count === 0) {
        s.modalityDelete.run(study.id, series.modality);
        s.modalitiesRefresh.run({ study: study.id });
      }
      s.deleteSeries.run(series.id);
      seriesGone = 1;
      delta.series--;
    }
    const studyLeft = s.addToStudy.get(-seriesGone, -1, study.id)!.number_of_instances;
    let studyGone = 0;
    if (studyLeft === 0) {
      s.deleteStudy.run(study.id);
      studyGone = 1;
      delta.studies--;
    }
    const patientStudies = s.addToPatient.get(
      -studyGone,
      -seriesGone,
      -1,
      study.patient_fk,
    )!.number_of_studies;
    if (patientStudies === 0) {
      s.deletePatient.run(study.patient_fk);
      delta.patients--;
    }
    s.addToTotals.run(delta.patients, delta.studies, delta.series, delta.instances, delta.bytes);
  }
}
