/**
 * The scale-out index: PostgreSQL 14+ through a `pg` pool. Same schema (schema-postgres.ts), same
 * semantics as SqliteIndex (index-sqlite.ts: patient identity, first-value-wins supplement, placement,
 * duplicate policies, computed counts), and correct when several Tessera processes ("nodes", each
 * with its own PostgresIndex and pool) write into one database at once.
 *
 * ## Concurrency design
 * Isolation: READ COMMITTED, with the statements written for it. Every write (a `commit` batch, a
 * `deleteInstance`) is ONE transaction that:
 * 1. Reads, without locks, which patients the batch may touch: the patients of the records' own
 *    identity (PatientID, issuer) and of the instances, series and studies the records name that
 *    already exist (one statement).
 * 2. Takes `pg_advisory_xact_lock` on a 64-bit hash of each of those patient keys, in ascending key
 *    order (one statement). The patient is the top of the hierarchy, so this lock stands for the
 *    patient's whole subtree (patient, studies, series, instances, computed rows); every writer takes
 *    it before changing anything under a patient. Locks are always taken in one global order and
 *    before any row lock, so writers never deadlock on them; they also cover rows that do not exist
 *    yet (a new study of a known patient), which row locks cannot.
 * 3. Processes the records in batch order, like SqliteIndex. Each lookup returns the patient key it
 *    found the row under; one that is not among the locked keys means the picture of step 1 changed
 *    in between (e.g. another node filed the series under another patient) and the transaction is
 *    retried from step 1. Parents are inserted with `INSERT ... ON CONFLICT DO NOTHING RETURNING id`
 *    (no row: created meanwhile by a writer holding another patient's lock -> retry). The instance
 *    is inserted with `ON CONFLICT (sop_instance_uid) DO NOTHING`: the unique constraint decides
 *    "new or duplicate", never a prior check; a concurrent insert of the same UID waits for the other
 *    transaction and then sees its row. The same statement (data-modifying CTEs, gated on the insert)
 *    writes the document, adds 1 to the series / study / patient counters (`n = n + 1`), supplements
 *    the attributes the rows lack, and counts the SOP class and modality; parents created for a
 *    record whose instance turns out to be a duplicate are deleted again (no savepoints: they would
 *    be one subtransaction per record).
 * 4. Adds the batch's deltas to one of the 16 `totals` rows (picked at random) last, so the only row
 *    lock every writer needs is held for the shortest time and spread over 16 rows.
 * Row locks therefore come in a fixed order too: the rows a transaction updates or deletes lie under
 * the patients it holds (no other writer waits for them), then one totals row, then COMMIT. A
 * deleteInstance reads the instance's patient, locks it, reads the instance again and removes it
 * like SqliteIndex (counts down, empty series / study / patient rows deleted).
 * A deadlock or serialization failure (SQLSTATE 40P01 / 40001; should not happen with the above, but
 * a database shared with other writers may cause one), a moved placement, or a connection lost
 * before COMMIT was sent rolls the transaction back and runs it again, at most `maxAttempts` times
 * (default 5) with a short random back-off, then fails with `ERR_ARCHIVE_INDEX_BUSY` (the last
 * error as `cause`; a connection still lost is `ERR_ARCHIVE_INDEX_UNAVAILABLE`).
 *
 * Why not SERIALIZABLE: the batch's unique-key inserts and counter updates would abort each other
 * under SSI far more often (every commit into one study updates the same rows), turning contention
 * into retries; the advisory locks serialize exactly the writers that share a patient and let all
 * others run in parallel.
 *
 * Reads: every connection starts with `default_transaction_read_only=on` (writes begin with
 * `BEGIN ... READ WRITE`), so `select` runs the query engine's statement, one statement through the
 * extended protocol, in a read-only transaction: a writing statement is refused by the server.
 * int8 and numeric values are parsed as JS numbers (ids, sizes, counts, sums), as SQLite returns them.
 * `allBlobKeys` pages by id (keyset); instances committed by others during the iteration with lower
 * ids than the page reached may be missed (they are new, not leftovers of a crash).
 *
 * Locks are waited for at most `lockTimeoutMs` (default 30 s, the session's `lock_timeout`), and a
 * session idle in a transaction for twice that is ended by the server: a hung writer blocks the
 * others of its patient for a bounded time, not for ever.
 *
 * Errors: PostgreSQL's disk full (53100) -> `ERR_ARCHIVE_DISK_FULL`, retries exhausted or a lock
 * waited for too long -> `ERR_ARCHIVE_INDEX_BUSY`, connection refused / lost / server shutting down ->
 * `ERR_ARCHIVE_INDEX_UNAVAILABLE`, others -> `ERR_ARCHIVE_INDEX`. Retries (`{ event: 'retry' }`) and
 * errors of pool connections (`'pool-error'`, `'connection-error'`) are published on the diagnostics
 * channel `tessera:archive:index` (library code does not log).
 */
import { createHash } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { DicomError } from '../core/index.ts';
import {
  INSTANCE_FIELDS,
  PATIENT_FIELDS,
  SERIES_FIELDS,
  STUDY_FIELDS,
  STUDY_PATIENT_FIELDS,
} from './index-fields.ts';
import { patientKeyOf } from './index-sqlite.ts';
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
import { POSTGRES_DIALECT } from './query.ts';
import {
  MIGRATION_LOCK,
  POSTGRES_MIGRATIONS,
  type PostgresMigration,
  TOTALS_SLOTS,
  VERSION_TABLE_SQL,
} from './schema-postgres.ts';

export interface PostgresIndexOptions {
  /** Connections of the pool (default 10). Each `commit` or `deleteInstance` holds one for its transaction. */
  readonly poolSize?: number;
  /** Runs of a write transaction that meets a deadlock, a serialization failure or a moved placement (default 5). */
  readonly maxAttempts?: number;
  /** How long to wait for a connection, in ms (default 30000). */
  readonly connectionTimeoutMs?: number;
  /**
   * How long a statement waits for a lock (a patient's advisory lock, a row, the migration lock), in
   * ms (default 30000): past it, the write fails with `ERR_ARCHIVE_INDEX_BUSY` instead of waiting
   * for ever on a writer that hangs. Such a writer's own transaction, left idle, is ended by the
   * server after twice as long (`idle_in_transaction_session_timeout`), which frees its locks.
   */
  readonly lockTimeoutMs?: number;
}

export const POSTGRES_INDEX_DEFAULTS = {
  poolSize: 10,
  maxAttempts: 5,
  connectionTimeoutMs: 30_000,
  lockTimeoutMs: 30_000,
} as const;

const indexChannel = channel('tessera:archive:index');

type Row = Record<string, unknown>;
type Values = Record<string, SqlValue | readonly string[] | undefined>;

// Columns: index-fields.ts (the same for both adapters).

/** `prefix + field` -> value (null when absent) for each field. */
function pick<T extends object>(
  values: T,
  fields: readonly (readonly [keyof T & string, ...string[]])[],
  prefix = '',
): Values {
  const out: Values = {};
  for (const [field] of fields) out[prefix + field] = (values[field] as SqlValue | undefined) ?? null;
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

// ---------------------------------------------------------------------------------------------------
// Statements
// ---------------------------------------------------------------------------------------------------

/**
 * A statement with `:name` parameters, compiled to `$n`; prepared once per connection (named). They
 * list their columns (no `*`): a prepared `SELECT *` fails once another node's migration adds one.
 */
interface Stmt {
  readonly name: string;
  readonly text: string;
  readonly params: readonly string[];
}

function stmt(name: string, text: string): Stmt {
  const params: string[] = [];
  const compiled = text.replace(/(?<!:):([a-zA-Z]\w*)/g, (_, p: string) => {
    let at = params.indexOf(p);
    if (at < 0) at = params.push(p) - 1;
    return `$${at + 1}`;
  });
  return { name: `tessera_${name}`, text: compiled.replace(/\s+/g, ' ').trim(), params };
}

function valuesOf(s: Stmt, values: Values): unknown[] {
  return s.params.map((p) => {
    if (!(p in values)) throw new Error(`statement ${s.name}: no value for :${p}`);
    return values[p] ?? null;
  });
}

/** `col = COALESCE(col, :prefixField)` for each field. */
function coalesce(fields: readonly (readonly [string, string, ...string[]])[], prefix: string): string[] {
  return fields.map(([f, c]) => `${c} = COALESCE(${c}, :${prefix}${f})`);
}

const patientLookup = 'JOIN studies st ON st.id = s.study_fk JOIN patients p ON p.id = st.patient_fk';

const S = {
  /** The patient keys a batch may touch (step 1 of the module comment). */
  patientsOfBatch: stmt(
    'patients_of_batch',
    `SELECT p.patient_key FROM instances i JOIN series s ON s.id = i.series_fk ${patientLookup}
       WHERE i.sop_instance_uid = ANY(:sops::text[])
     UNION SELECT p.patient_key FROM series s ${patientLookup} WHERE s.series_instance_uid = ANY(:series::text[])
     UNION SELECT p.patient_key FROM studies st JOIN patients p ON p.id = st.patient_fk
       WHERE st.study_instance_uid = ANY(:studies::text[])`,
  ),
  lock: stmt('lock', 'SELECT count(pg_advisory_xact_lock(k)) AS n FROM unnest(:keys::bigint[]) AS k'),

  seriesByUid: stmt(
    'series_by_uid',
    `SELECT s.id, s.study_fk, s.modality, st.study_instance_uid, st.patient_fk, p.patient_key
     FROM series s ${patientLookup} WHERE s.series_instance_uid = :uid`,
  ),
  studyByUid: stmt(
    'study_by_uid',
    `SELECT st.id, st.patient_fk, p.patient_key FROM studies st JOIN patients p ON p.id = st.patient_fk
     WHERE st.study_instance_uid = :uid`,
  ),
  patientByKey: stmt('patient_by_key', 'SELECT id FROM patients WHERE patient_key = :key'),
  instanceBySop: stmt(
    'instance_by_sop',
    `SELECT i.id, i.series_fk, i.sop_class_uid, i.blob_key, i.checksum, i.size, s.study_fk, s.modality,
       st.patient_fk, p.patient_key
     FROM instances i JOIN series s ON s.id = i.series_fk ${patientLookup} WHERE i.sop_instance_uid = :uid`,
  ),

  insertPatient: stmt(
    'insert_patient',
    `INSERT INTO patients (patient_key, patient_id, issuer_of_patient_id, patient_name_norm,
       ${PATIENT_FIELDS.map(([, c]) => c).join(', ')})
     VALUES (:patientKey, :patientId, :issuerOfPatientId, :p_patientNameNorm,
       ${PATIENT_FIELDS.map(([f]) => `:p_${f}`).join(', ')})
     ON CONFLICT (patient_key) DO NOTHING RETURNING id`,
  ),
  insertStudy: stmt(
    'insert_study',
    `INSERT INTO studies (patient_fk, study_instance_uid, referring_physician_name_norm, patient_name_norm,
       ${[...STUDY_FIELDS, ...STUDY_PATIENT_FIELDS].map(([, c]) => c).join(', ')})
     VALUES (:patientFk, :studyInstanceUid, :st_referringPhysicianNameNorm, :sp_patientNameNorm,
       ${[...STUDY_FIELDS.map(([f]) => `:st_${f}`), ...STUDY_PATIENT_FIELDS.map(([f]) => `:sp_${f}`)].join(', ')})
     ON CONFLICT (study_instance_uid) DO NOTHING RETURNING id`,
  ),
  insertSeries: stmt(
    'insert_series',
    `INSERT INTO series (study_fk, series_instance_uid, ${SERIES_FIELDS.map(([, c]) => c).join(', ')})
     VALUES (:studyFk, :seriesInstanceUid, ${SERIES_FIELDS.map(([f]) => `:se_${f}`).join(', ')})
     ON CONFLICT (series_instance_uid) DO NOTHING RETURNING id`,
  ),
  deleteCreated: stmt(
    'delete_created',
    `WITH se AS (DELETE FROM series WHERE id = :seriesFk::bigint RETURNING id),
          st AS (DELETE FROM studies WHERE id = :studyFk::bigint AND EXISTS (SELECT 1 FROM se) RETURNING id)
     DELETE FROM patients WHERE id = :patientFk::bigint AND EXISTS (SELECT 1 FROM st)`,
  ),

  /**
   * Files one instance: inserts it unless its UID is there (the unique constraint decides), and only
   * then writes its document, counts it on its series / study / patient (plus a new series or study),
   * supplements the attributes those rows lack, and counts its SOP class (and the series' modality).
   * Returns the new id (null for a duplicate), the SOP class's and the modality's new counts, and
   * how many of the three parent rows were updated.
   */
  store: stmt(
    'store',
    `WITH ins AS (
       INSERT INTO instances (series_fk, ${INSTANCE_FIELDS.map(([, c]) => c).join(', ')})
       VALUES (:seriesFk, ${INSTANCE_FIELDS.map(([f]) => `:${f}`).join(', ')})
       ON CONFLICT (sop_instance_uid) DO NOTHING RETURNING id
     ), doc AS (
       INSERT INTO instance_documents (instance_fk, metadata, frame_offsets)
       SELECT id, :metadata::text, :frameOffsets::text FROM ins
     ), se AS (
       UPDATE series SET number_of_instances = number_of_instances + 1, ${coalesce(SERIES_FIELDS, 'se_').join(', ')}
       WHERE id = :seriesFk AND EXISTS (SELECT 1 FROM ins) RETURNING 1
     ), st AS (
       UPDATE studies SET number_of_series = number_of_series + :newSeries::integer,
         number_of_instances = number_of_instances + 1,
         ${coalesce(
           [...STUDY_FIELDS, ['referringPhysicianNameNorm', 'referring_physician_name_norm']],
           'st_',
         ).join(', ')},
         ${coalesce([...STUDY_PATIENT_FIELDS, ['patientNameNorm', 'patient_name_norm']], 'sp_').join(', ')}
       WHERE id = :studyFk::bigint AND EXISTS (SELECT 1 FROM ins) RETURNING 1
     ), p AS (
       UPDATE patients SET number_of_studies = number_of_studies + :newStudy::integer,
         number_of_series = number_of_series + :newSeries::integer,
         number_of_instances = number_of_instances + 1,
         ${coalesce([...PATIENT_FIELDS, ['patientNameNorm', 'patient_name_norm']], 'p_').join(', ')}
       WHERE id = :patientFk::bigint AND EXISTS (SELECT 1 FROM ins) RETURNING 1
     ), sc AS (
       INSERT INTO study_sop_classes (study_fk, sop_class_uid, instance_count)
       SELECT :studyFk::bigint, :sopClassUid::text, 1 FROM ins
       ON CONFLICT (study_fk, sop_class_uid) DO UPDATE SET instance_count = study_sop_classes.instance_count + 1
       RETURNING instance_count
     ), sm AS (
       INSERT INTO study_modalities (study_fk, modality, series_count)
       SELECT :studyFk::bigint, :modalityUp::text, 1 FROM ins WHERE :modalityUp::text IS NOT NULL
       ON CONFLICT (study_fk, modality) DO UPDATE SET series_count = study_modalities.series_count + 1
       RETURNING series_count
     )
     SELECT (SELECT id FROM ins) AS id, (SELECT instance_count FROM sc) AS sop_class_count,
       (SELECT series_count FROM sm) AS modality_count,
       (SELECT count(*) FROM se) + (SELECT count(*) FROM st) + (SELECT count(*) FROM p) AS parents`,
  ),
  /** Recomputes ModalitiesInStudy and SOPClassesInStudy of a study from their count tables. */
  refreshComputed: stmt(
    'refresh_computed',
    `UPDATE studies SET
       modalities_in_study = (SELECT string_agg(modality, '\\' ORDER BY modality) FROM study_modalities
         WHERE study_fk = :study),
       sop_classes_in_study = (SELECT string_agg(sop_class_uid, '\\' ORDER BY sop_class_uid)
         FROM study_sop_classes WHERE study_fk = :study)
     WHERE id = :study`,
  ),

  /** Removes an instance (its document cascades) and counts it off its series and SOP class. */
  removeInstance: stmt(
    'remove_instance',
    `WITH d AS (DELETE FROM instances WHERE id = :id RETURNING id),
     sc AS (UPDATE study_sop_classes SET instance_count = instance_count - 1
       WHERE study_fk = :study AND sop_class_uid = :sopClass AND EXISTS (SELECT 1 FROM d) RETURNING instance_count),
     se AS (UPDATE series SET number_of_instances = number_of_instances - 1
       WHERE id = :series AND EXISTS (SELECT 1 FROM d) RETURNING number_of_instances)
     SELECT (SELECT count(*) FROM d) AS deleted, (SELECT instance_count FROM sc) AS sop_class_count,
       (SELECT number_of_instances FROM se) AS series_left`,
  ),
  sopClassDelete: stmt(
    'sop_class_delete',
    'DELETE FROM study_sop_classes WHERE study_fk = :study AND sop_class_uid = :sopClass AND instance_count = 0',
  ),
  modalityDown: stmt(
    'modality_down',
    `WITH m AS (UPDATE study_modalities SET series_count = series_count - 1
       WHERE study_fk = :study AND modality = :modality RETURNING series_count)
     SELECT (SELECT series_count FROM m) AS series_count`,
  ),
  modalityDelete: stmt(
    'modality_delete',
    'DELETE FROM study_modalities WHERE study_fk = :study AND modality = :modality AND series_count = 0',
  ),
  deleteSeries: stmt('delete_series', 'DELETE FROM series WHERE id = :id'),
  studyDown: stmt(
    'study_down',
    `UPDATE studies SET number_of_series = number_of_series - :series::integer,
       number_of_instances = number_of_instances - 1 WHERE id = :id RETURNING number_of_instances`,
  ),
  deleteStudy: stmt('delete_study', 'DELETE FROM studies WHERE id = :id'),
  patientDown: stmt(
    'patient_down',
    `UPDATE patients SET number_of_studies = number_of_studies - :studies::integer,
       number_of_series = number_of_series - :series::integer, number_of_instances = number_of_instances - 1
     WHERE id = :id RETURNING number_of_studies`,
  ),
  deletePatient: stmt('delete_patient', 'DELETE FROM patients WHERE id = :id'),
  addToTotals: stmt(
    'add_to_totals',
    `UPDATE totals SET patients = patients + :patients::bigint, studies = studies + :studies::bigint,
       series = series + :series::bigint, instances = instances + :instances::bigint,
       bytes = bytes + :bytes::bigint WHERE id = :slot`,
  ),

  instance: stmt(
    'instance',
    `SELECT ${INSTANCE_FIELDS.map(([, c]) => `i.${c}`).join(', ')}, d.metadata, d.frame_offsets,
       s.series_instance_uid, st.study_instance_uid
     FROM instances i JOIN instance_documents d ON d.instance_fk = i.id
     JOIN series s ON s.id = i.series_fk JOIN studies st ON st.id = s.study_fk
     WHERE i.sop_instance_uid = :uid`,
  ),
  study: stmt(
    'study',
    `SELECT st.study_instance_uid, ${[...STUDY_FIELDS, ...STUDY_PATIENT_FIELDS].map(([, c]) => `st.${c}`).join(', ')},
       st.number_of_series, st.number_of_instances, st.modalities_in_study, st.sop_classes_in_study,
       p.patient_id, p.issuer_of_patient_id, p.number_of_studies AS patient_studies,
       p.number_of_series AS patient_series, p.number_of_instances AS patient_instances
     FROM studies st JOIN patients p ON p.id = st.patient_fk WHERE st.study_instance_uid = :uid`,
  ),
  series: stmt(
    'series',
    `SELECT s.series_instance_uid, ${SERIES_FIELDS.map(([, c]) => `s.${c}`).join(', ')}, s.number_of_instances,
       st.study_instance_uid FROM series s JOIN studies st ON st.id = s.study_fk
     WHERE s.series_instance_uid = :uid`,
  ),
  blobKeysPage: stmt(
    'blob_keys_page',
    'SELECT id, sop_instance_uid, blob_key FROM instances WHERE id > :after ORDER BY id LIMIT :limit',
  ),
  totals: stmt(
    'totals',
    `SELECT coalesce(sum(patients), 0) AS patients, coalesce(sum(studies), 0) AS studies,
       coalesce(sum(series), 0) AS series, coalesce(sum(instances), 0) AS instances,
       coalesce(sum(bytes), 0) AS bytes FROM totals`,
  ),
};

/** verify()'s checks: [what, statement listing the keys of the rows in error]. */
const CHECKS: readonly (readonly [string, string])[] = [
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
     coalesce((SELECT string_agg(m, '\\' ORDER BY m) FROM (SELECT DISTINCT modality AS m FROM series
     WHERE study_fk = st.id AND modality IS NOT NULL) AS x), '')
     OR EXISTS (SELECT 1 FROM study_modalities sm WHERE sm.study_fk = st.id AND sm.series_count !=
     (SELECT count(*) FROM series WHERE study_fk = st.id AND modality = sm.modality))`,
  ],
  [
    'studies.sop_classes_in_study',
    `SELECT study_instance_uid AS k FROM studies st WHERE coalesce(sop_classes_in_study, '') !=
     coalesce((SELECT string_agg(c, '\\' ORDER BY c) FROM (SELECT DISTINCT i.sop_class_uid AS c
     FROM instances i JOIN series s ON s.id = i.series_fk WHERE s.study_fk = st.id) AS x), '')
     OR EXISTS (SELECT 1 FROM study_sop_classes sc WHERE sc.study_fk = st.id AND sc.instance_count !=
     (SELECT count(*) FROM instances i JOIN series s ON s.id = i.series_fk
      WHERE s.study_fk = st.id AND i.sop_class_uid = sc.sop_class_uid))`,
  ],
  [
    'totals',
    `SELECT 'totals' AS k FROM (SELECT sum(patients) AS patients, sum(studies) AS studies,
       sum(series) AS series, sum(instances) AS instances, sum(bytes) AS bytes FROM totals) t
     WHERE patients != (SELECT count(*) FROM patients)
     OR studies != (SELECT count(*) FROM studies) OR series != (SELECT count(*) FROM series)
     OR instances != (SELECT count(*) FROM instances) OR bytes != (SELECT coalesce(sum(size), 0) FROM instances)`,
  ],
  [
    'instance_documents',
    'SELECT sop_instance_uid AS k FROM instances i WHERE NOT EXISTS (SELECT 1 FROM instance_documents WHERE instance_fk = i.id)',
  ],
];

// ---------------------------------------------------------------------------------------------------
// Errors, locks, connections
// ---------------------------------------------------------------------------------------------------

/** The state a transaction read before its locks changed: run it again. */
class MovedError extends Error {
  constructor(what: string) {
    super(`retry: ${what}`);
    this.name = 'MovedError';
  }
}

const RETRY_CODES = new Set(['40001', '40P01']);
const UNAVAILABLE_CODES = new Set([
  '57P01',
  '57P02',
  '57P03',
  '53300',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EPIPE',
  'EAI_AGAIN',
]);

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isRetryable(err: unknown): boolean {
  return err instanceof MovedError || RETRY_CODES.has(codeOf(err) ?? '');
}

function isConnectionLoss(err: unknown): boolean {
  return (
    !(err instanceof DicomError) && codeOf(mapPostgresError(err, '')) === 'ERR_ARCHIVE_INDEX_UNAVAILABLE'
  );
}

/** A URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/u, '//$1:***@');
}

/**
 * PostgreSQL and connection errors as DicomErrors: disk full (53100) -> `ERR_ARCHIVE_DISK_FULL`;
 * deadlock / serialization failure / lock timeout (55P03) -> `ERR_ARCHIVE_INDEX_BUSY`; connection refused, lost, timed out,
 * or the server shutting down / out of connections -> `ERR_ARCHIVE_INDEX_UNAVAILABLE`; others ->
 * `ERR_ARCHIVE_INDEX`.
 */
export function mapPostgresError(err: unknown, action: string): Error {
  if (err instanceof DicomError) return err;
  const code = codeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === '53100') {
    return new DicomError('ERR_ARCHIVE_DISK_FULL', `index volume full during ${action}: ${message}`, {
      cause: err,
    });
  }
  if (code !== undefined && RETRY_CODES.has(code)) {
    return new DicomError('ERR_ARCHIVE_INDEX_BUSY', `index busy during ${action}: ${message}`, {
      cause: err,
    });
  }
  if (code === '55P03') {
    // lock_timeout: another writer held the lock too long (not retried: it may be hung).
    return new DicomError('ERR_ARCHIVE_INDEX_BUSY', `index locked during ${action}: ${message}`, {
      cause: err,
    });
  }
  if (
    (code !== undefined && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) ||
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
      message,
    )
  ) {
    return new DicomError('ERR_ARCHIVE_INDEX_UNAVAILABLE', `index unavailable during ${action}: ${message}`, {
      cause: err,
    });
  }
  return new DicomError('ERR_ARCHIVE_INDEX', `index ${action}: ${message}`, { cause: err });
}

/** The advisory lock key of a patient: the first 8 bytes of sha256(patient_key), signed. */
export function patientLockKey(patientKey: string): bigint {
  return createHash('sha256').update(patientKey, 'utf8').digest().readBigInt64BE(0);
}

/** int8 and numeric as JS numbers (ids, sizes, counts and sums are far below 2^53). */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC) {
      return (value: string) => Number(value);
    }
    return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

/** Session settings of every connection (writes open their transactions READ WRITE explicitly). */
const SESSION_OPTIONS = '-c default_transaction_read_only=on -c standard_conforming_strings=on';

/**
 * A connection of the pool for several statements. A connection that breaks while checked out emits
 * 'error' besides failing its query; without a listener that would be an uncaught exception, so one
 * is attached until `release` (which destroys the connection when `broken`).
 */
async function checkout(pool: pg.Pool): Promise<{ client: pg.PoolClient; release(broken?: Error): void }> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (error: Error): void => {
    lost = error;
    indexChannel.publish({ event: 'connection-error', error });
  };
  client.on('error', onError);
  return {
    client,
    release(broken) {
      client.removeListener('error', onError);
      client.release(broken ?? lost);
    },
  };
}

async function rows(client: pg.ClientBase | pg.Pool, s: Stmt, values: Values): Promise<Row[]> {
  const result = await client.query({ name: s.name, text: s.text, values: valuesOf(s, values) });
  return result.rows as Row[];
}

async function one(client: pg.ClientBase | pg.Pool, s: Stmt, values: Values): Promise<Row | undefined> {
  return (await rows(client, s, values))[0];
}

/** The version recorded in the version table (0 when empty). */
async function schemaVersion(client: pg.ClientBase): Promise<number> {
  const result = await client.query('SELECT coalesce(max(version), 0) AS v FROM tessera_schema_migrations');
  return Number(result.rows[0]?.v ?? 0);
}

/**
 * Brings the database to the last of `migrations` (or `target`): each migration in its own
 * transaction that takes the migration advisory lock and re-reads the version first, so concurrent
 * openers are safe. Returns the version reached. Exported for tests (to build an older version).
 */
export async function migratePostgres(
  client: pg.ClientBase,
  migrations: readonly PostgresMigration[] = POSTGRES_MIGRATIONS,
  target = migrations.length,
): Promise<number> {
  const locked = async <T>(fn: () => Promise<T>): Promise<T> => {
    await client.query('BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE');
    try {
      // Another node's migration may take minutes on a large index: wait for it, past lock_timeout.
      await client.query('SET LOCAL lock_timeout = 0');
      await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
      const result = await fn();
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  };
  await locked(() => client.query(VERSION_TABLE_SQL));
  const latest = migrations.length;
  const current = await schemaVersion(client);
  if (current > latest) {
    throw new DicomError(
      'ERR_ARCHIVE_SCHEMA_TOO_NEW',
      `index schema version ${current} is newer than this program's (${latest}); use a newer tessera`,
    );
  }
  for (const m of migrations) {
    if (m.version > target) break;
    await locked(async () => {
      const now = await schemaVersion(client);
      if (now >= m.version) return;
      if (now !== m.version - 1) {
        throw new DicomError('ERR_ARCHIVE_SCHEMA', `migration ${m.version} found schema version ${now}`);
      }
      await client.query(m.sql);
      await client.query('INSERT INTO tessera_schema_migrations (version, description) VALUES ($1, $2)', [
        m.version,
        m.description,
      ]);
    });
  }
  return schemaVersion(client);
}

// ---------------------------------------------------------------------------------------------------
// The write transaction
// ---------------------------------------------------------------------------------------------------

interface SeriesAt {
  seriesFk: number;
  studyFk: number;
  patientFk: number;
  studyInstanceUid: string;
  patientKey: string;
  modality: string | null;
}

interface Placement extends SeriesAt {
  /** Rows this record created (deleted again when its instance is a duplicate). */
  created: { patient: boolean; study: boolean; series: boolean };
}

interface InstanceRow {
  id: number;
  series_fk: number;
  study_fk: number;
  patient_fk: number;
  patient_key: string;
  modality: string | null;
  sop_class_uid: string;
  blob_key: string;
  checksum: string;
  size: number;
}

interface Delta {
  patients: number;
  studies: number;
  series: number;
  instances: number;
  bytes: number;
}

/** One write transaction: its connection, the patient keys it holds locks on, its pending totals. */
class Tx {
  readonly locked = new Set<string>();
  readonly totals: Delta = { patients: 0, studies: 0, series: 0, instances: 0, bytes: 0 };
  /** Series placements looked up or created in this transaction (cleared when rows are removed). */
  readonly seriesCache = new Map<string, SeriesAt>();

  constructor(readonly client: pg.PoolClient) {}

  rows(s: Stmt, values: Values): Promise<Row[]> {
    return rows(this.client, s, values);
  }

  one(s: Stmt, values: Values): Promise<Row | undefined> {
    return one(this.client, s, values);
  }

  /** Locks the patients of `keys` (ascending lock key order). */
  async lock(keys: Iterable<string>): Promise<void> {
    const fresh = [...new Set(keys)].filter((k) => !this.locked.has(k));
    if (fresh.length === 0) return;
    const hashes = [...new Set(fresh.map(patientLockKey))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    await this.rows(S.lock, { keys: hashes.map(String) });
    for (const k of fresh) this.locked.add(k);
  }

  /** Throws MovedError unless this transaction holds the lock of `patientKey`. */
  check(patientKey: unknown, what: string): void {
    if (typeof patientKey !== 'string' || !this.locked.has(patientKey)) {
      throw new MovedError(`${what} is under a patient this transaction did not lock`);
    }
  }

  async flushTotals(): Promise<void> {
    const t = this.totals;
    if (t.patients === 0 && t.studies === 0 && t.series === 0 && t.instances === 0 && t.bytes === 0) return;
    await this.rows(S.addToTotals, { ...t, slot: 1 + Math.floor(Math.random() * TOTALS_SLOTS) });
  }
}

/** `Index` over PostgreSQL. See the module comment for the concurrency design. */
export class PostgresIndex implements Index {
  readonly #pool: pg.Pool;
  readonly #maxAttempts: number;
  readonly dialect: SqlDialect = POSTGRES_DIALECT;
  #closed = false;

  private constructor(pool: pg.Pool, maxAttempts: number) {
    this.#pool = pool;
    this.#maxAttempts = maxAttempts;
  }

  /**
   * Connects (a pool of `poolSize`), checks the server (PostgreSQL 14+, UTF8 database) and runs the
   * migrations of schema-postgres.ts. `url`: `postgres://user:password@host:port/database` (the
   * `pg` connection string; `PG*` environment variables fill in what it leaves out).
   */
  static async open(url: string, options: PostgresIndexOptions = {}): Promise<PostgresIndex> {
    const poolSize = options.poolSize ?? POSTGRES_INDEX_DEFAULTS.poolSize;
    const maxAttempts = options.maxAttempts ?? POSTGRES_INDEX_DEFAULTS.maxAttempts;
    const connectionTimeoutMs = options.connectionTimeoutMs ?? POSTGRES_INDEX_DEFAULTS.connectionTimeoutMs;
    const lockTimeoutMs = options.lockTimeoutMs ?? POSTGRES_INDEX_DEFAULTS.lockTimeoutMs;
    for (const [name, value] of [
      ['poolSize', poolSize],
      ['maxAttempts', maxAttempts],
      ['connectionTimeoutMs', connectionTimeoutMs],
      ['lockTimeoutMs', lockTimeoutMs],
    ] as const) {
      if (!Number.isInteger(value) || value < 1) {
        throw new DicomError('ERR_ARCHIVE_INDEX', `${name} must be a positive integer, not ${String(value)}`);
      }
    }
    const pool = new pg.Pool({
      connectionString: url,
      max: poolSize,
      options: `${SESSION_OPTIONS} -c lock_timeout=${lockTimeoutMs} -c idle_in_transaction_session_timeout=${2 * lockTimeoutMs}`,
      application_name: 'tessera',
      types: TYPES,
      connectionTimeoutMillis: connectionTimeoutMs,
    });
    // An idle connection that fails (server restart) must not crash the process: the pool drops it.
    pool.on('error', (error) => indexChannel.publish({ event: 'pool-error', error }));
    try {
      const { client, release } = await checkout(pool);
      try {
        const info = await client.query(
          "SELECT current_setting('server_version_num')::int AS version, current_setting('server_encoding') AS encoding",
        );
        const { version, encoding } = info.rows[0] as { version: number; encoding: string };
        if (version < 140000) {
          throw new DicomError(
            'ERR_ARCHIVE_INDEX',
            `PostgreSQL 14 or newer is required (server is ${version})`,
          );
        }
        if (encoding !== 'UTF8') {
          throw new DicomError(
            'ERR_ARCHIVE_INDEX',
            `the index database must be UTF8-encoded, not ${encoding}`,
          );
        }
        await migratePostgres(client);
      } finally {
        release();
      }
      return new PostgresIndex(pool, maxAttempts);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw mapPostgresError(err, `open ${redactUrl(url)}`);
    }
  }

  async commit(batch: readonly CommitItem[]): Promise<CommitOutcome[]> {
    if (batch.length === 0) return [];
    return this.#write('commit', async (tx) => {
      const keys = new Set(batch.map(({ record }) => patientKeyOf(record)));
      const known = await tx.rows(S.patientsOfBatch, {
        sops: batch.map(({ record }) => record.instance.sopInstanceUid),
        series: batch.map(({ record }) => record.series.seriesInstanceUid),
        studies: batch.map(({ record }) => record.study.studyInstanceUid),
      });
      for (const row of known) keys.add(row.patient_key as string);
      await tx.lock(keys);
      const outcomes: CommitOutcome[] = [];
      for (const { record, policy } of batch) outcomes.push(await this.#commitOne(tx, record, policy));
      await tx.flushTotals();
      return outcomes;
    });
  }

  async instance(sopInstanceUid: string): Promise<IndexedInstance | undefined> {
    const row = await this.#read('instance', () => one(this.#pool, S.instance, { uid: sopInstanceUid }));
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
    const limit = 1000;
    for (let after = 0; ; ) {
      const page = await this.#read('allBlobKeys', () => rows(this.#pool, S.blobKeysPage, { after, limit }));
      for (const r of page)
        yield { sopInstanceUid: r.sop_instance_uid as string, blobKey: r.blob_key as string };
      const last = page.at(-1);
      if (last === undefined || page.length < limit) return;
      after = last.id as number;
    }
  }

  /**
   * The query engine's statement, alone (extended protocol: one statement) in a read-only
   * transaction; a statement that is not a SELECT / WITH, or that writes, is refused.
   */
  async select(sql: string, params: readonly SqlValue[]): Promise<Record<string, unknown>[]> {
    if (!/^\s*(SELECT|WITH)\b/i.test(sql)) {
      throw new DicomError('ERR_ARCHIVE_INDEX', 'select takes a read-only statement that returns rows');
    }
    try {
      const result = await this.#pool.query({
        text: sql,
        values: [...params],
        queryMode: 'extended',
      } as pg.QueryConfig);
      return result.rows as Row[];
    } catch (err) {
      if (codeOf(err) === '25006') {
        throw new DicomError('ERR_ARCHIVE_INDEX', 'select takes a read-only statement that returns rows', {
          cause: err,
        });
      }
      throw mapPostgresError(err, 'select');
    }
  }

  async counts(): Promise<IndexCounts> {
    const row = await this.#read('counts', () => one(this.#pool, S.totals, {}));
    return row as unknown as IndexCounts;
  }

  async study(studyInstanceUid: string): Promise<Record<string, unknown> | undefined> {
    const row = await this.#read('study', () => one(this.#pool, S.study, { uid: studyInstanceUid }));
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
    const row = await this.#read('series', () => one(this.#pool, S.series, { uid: seriesInstanceUid }));
    if (row === undefined) return undefined;
    const out: Row = { SeriesInstanceUID: row.series_instance_uid, StudyInstanceUID: row.study_instance_uid };
    keywords(row, SERIES_FIELDS, out);
    out.NumberOfSeriesRelatedInstances = row.number_of_instances;
    return out;
  }

  async deleteInstance(sopInstanceUid: string): Promise<{ blobKey: string } | undefined> {
    return this.#write('deleteInstance', async (tx) => {
      const seen = await tx.one(S.instanceBySop, { uid: sopInstanceUid });
      if (seen === undefined) return undefined;
      await tx.lock([seen.patient_key as string]);
      const row = (await tx.one(S.instanceBySop, { uid: sopInstanceUid })) as InstanceRow | undefined;
      if (row === undefined) return undefined;
      tx.check(row.patient_key, `instance ${sopInstanceUid}`);
      await this.#remove(tx, row);
      await tx.flushTotals();
      return { blobKey: row.blob_key };
    });
  }

  /**
   * Recomputes every computed attribute and count from the rows (one REPEATABLE READ snapshot) and
   * lists the differences from the stored ones, and rows that should have been removed.
   */
  async verify(): Promise<string[]> {
    const problems: string[] = [];
    let connection: Awaited<ReturnType<typeof checkout>>;
    try {
      connection = await checkout(this.#pool);
    } catch (err) {
      throw mapPostgresError(err, 'verify');
    }
    const { client, release } = connection;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      for (const [what, sql] of CHECKS) {
        for (const row of (await client.query(sql)).rows as { k: string }[])
          problems.push(`${what}: ${row.k}`);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw mapPostgresError(err, 'verify');
    } finally {
      release();
    }
    return problems;
  }

  /** Ends the pool (waits for the connections in use to be released). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  async #read<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapPostgresError(err, action);
    }
  }

  /** Runs `fn` in a READ COMMITTED read-write transaction, again on a retryable failure. */
  async #write<T>(action: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    let last: unknown;
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      let connection: Awaited<ReturnType<typeof checkout>>;
      try {
        connection = await checkout(this.#pool);
      } catch (err) {
        throw mapPostgresError(err, action);
      }
      const { client } = connection;
      let broken: Error | undefined;
      let committing = false;
      try {
        await client.query('BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE');
        const result = await fn(new Tx(client));
        committing = true;
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch((e: Error) => {
          broken = e;
        });
        // A connection lost before COMMIT was sent (e.g. a pooled connection the server closed):
        // nothing was written, run it again on another one. During COMMIT the outcome is unknown.
        const lost = !committing && isConnectionLoss(err);
        if (!isRetryable(err) && !lost) throw mapPostgresError(err, action);
        last = err;
        if (indexChannel.hasSubscribers) {
          indexChannel.publish({ event: 'retry', action, attempt, reason: (err as Error).message });
        }
      } finally {
        connection.release(broken);
      }
      await sleep(Math.floor(Math.random() * 5 * attempt));
    }
    if (isConnectionLoss(last)) throw mapPostgresError(last, action);
    const reason = last instanceof Error ? last.message : String(last);
    throw new DicomError(
      'ERR_ARCHIVE_INDEX_BUSY',
      `index busy during ${action}: gave up after ${this.#maxAttempts} attempts (${reason})`,
      { cause: last },
    );
  }

  /** One record inside the batch transaction: the outcomes of SqliteIndex. */
  async #commitOne(tx: Tx, record: InstanceRecord, policy: DuplicatePolicy): Promise<CommitOutcome> {
    if (await this.#tryInsert(tx, record)) return { kind: 'stored' };
    const existing = (await tx.one(S.instanceBySop, { uid: record.instance.sopInstanceUid })) as
      | InstanceRow
      | undefined;
    // Deleted by a writer of another patient after our insert met it: read the state again.
    if (existing === undefined) throw new MovedError(`duplicate ${record.instance.sopInstanceUid} vanished`);
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
        tx.check(existing.patient_key, `instance ${record.instance.sopInstanceUid}`);
        await this.#remove(tx, existing);
        if (!(await this.#tryInsert(tx, record))) {
          throw new DicomError('ERR_ARCHIVE_INDEX', `cannot replace ${record.instance.sopInstanceUid}`);
        }
        return { kind: 'replaced', oldBlobKey: existing.blob_key };
      }
      default:
        throw new DicomError('ERR_ARCHIVE_BAD_POLICY', `unknown duplicate policy ${String(policy)}`);
    }
  }

  /** Files the instance and its parents; false (and nothing changed) when its UID is indexed already. */
  async #tryInsert(tx: Tx, record: InstanceRecord): Promise<boolean> {
    const patientKey = patientKeyOf(record);
    const at = await this.#place(tx, record, patientKey);
    const sameStudy = at.studyInstanceUid === record.study.studyInstanceUid;
    const samePatient = sameStudy && at.patientKey === patientKey;
    const patientNorm =
      record.patient.patientName === undefined ? null : normalizePersonName(record.patient.patientName);
    const modalityUp =
      record.series.modality !== undefined && (at.created.series || at.modality === null)
        ? record.series.modality
        : null;
    const nulls = (values: Values): Values =>
      Object.fromEntries(Object.keys(values).map((k) => [k, null])) as Values;
    const studyValues: Values = {
      ...pick(record.study, STUDY_FIELDS, 'st_'),
      st_referringPhysicianNameNorm:
        record.study.referringPhysicianName === undefined
          ? null
          : normalizePersonName(record.study.referringPhysicianName),
    };
    const studyPatientValues: Values = {
      ...pick(record.patient, STUDY_PATIENT_FIELDS, 'sp_'),
      sp_patientNameNorm: patientNorm,
    };
    const patientValues: Values = {
      ...pick(record.patient, PATIENT_FIELDS, 'p_'),
      p_patientNameNorm: patientNorm,
    };
    const result = (await tx.one(S.store, {
      seriesFk: at.seriesFk,
      studyFk: at.studyFk,
      patientFk: at.patientFk,
      ...pick(record.instance, INSTANCE_FIELDS),
      metadata: record.instance.metadata,
      frameOffsets: record.instance.frameOffsets ?? null,
      ...pick(record.series, SERIES_FIELDS, 'se_'),
      ...(sameStudy ? studyValues : nulls(studyValues)),
      ...(samePatient ? studyPatientValues : nulls(studyPatientValues)),
      ...(samePatient ? patientValues : nulls(patientValues)),
      newSeries: at.created.series ? 1 : 0,
      newStudy: at.created.study ? 1 : 0,
      modalityUp,
    }))!;
    if (result.id === null) {
      if (at.created.series || at.created.study || at.created.patient) {
        await tx.rows(S.deleteCreated, {
          seriesFk: at.created.series ? at.seriesFk : null,
          studyFk: at.created.study ? at.studyFk : null,
          patientFk: at.created.patient ? at.patientFk : null,
        });
        tx.seriesCache.delete(record.series.seriesInstanceUid);
      }
      return false;
    }
    if (result.parents !== 3) throw new MovedError(`a parent of ${record.instance.sopInstanceUid} vanished`);
    const cached = tx.seriesCache.get(record.series.seriesInstanceUid);
    if (modalityUp !== null && cached !== undefined) cached.modality = modalityUp;
    if (result.sop_class_count === 1 || result.modality_count === 1) {
      await tx.rows(S.refreshComputed, { study: at.studyFk });
    }
    const t = tx.totals;
    t.instances++;
    t.bytes += record.instance.size;
    if (at.created.series) t.series++;
    if (at.created.study) t.studies++;
    if (at.created.patient) t.patients++;
    return true;
  }

  /**
   * Finds or creates (without counting them yet) the series, study and patient rows of a record:
   * the series of its Series Instance UID wherever that was filed first, else the study of its Study
   * Instance UID, else the patient of its identity.
   */
  async #place(tx: Tx, record: InstanceRecord, patientKey: string): Promise<Placement> {
    const none = { patient: false, study: false, series: false };
    const seriesUid = record.series.seriesInstanceUid;
    const cached = tx.seriesCache.get(seriesUid);
    if (cached !== undefined) return { ...cached, created: none };
    const series = await tx.one(S.seriesByUid, { uid: seriesUid });
    if (series !== undefined) {
      tx.check(series.patient_key, `series ${seriesUid}`);
      const at: SeriesAt = {
        seriesFk: series.id as number,
        studyFk: series.study_fk as number,
        patientFk: series.patient_fk as number,
        studyInstanceUid: series.study_instance_uid as string,
        patientKey: series.patient_key as string,
        modality: series.modality as string | null,
      };
      tx.seriesCache.set(seriesUid, at);
      return { ...at, created: none };
    }

    const created = { patient: false, study: false, series: false };
    const studyUid = record.study.studyInstanceUid;
    let study = (await tx.one(S.studyByUid, { uid: studyUid })) as
      | { id: number; patient_fk: number; patient_key: string }
      | undefined;
    if (study !== undefined) {
      tx.check(study.patient_key, `study ${studyUid}`);
    } else {
      tx.check(patientKey, `patient ${patientKey}`);
      const patientNorm =
        record.patient.patientName === undefined ? null : normalizePersonName(record.patient.patientName);
      let patient = (await tx.one(S.patientByKey, { key: patientKey })) as { id: number } | undefined;
      if (patient === undefined) {
        patient = (await tx.one(S.insertPatient, {
          patientKey,
          patientId: record.patient.patientId,
          issuerOfPatientId: record.patient.issuerOfPatientId ?? null,
          p_patientNameNorm: patientNorm,
          ...pick(record.patient, PATIENT_FIELDS, 'p_'),
        })) as { id: number } | undefined;
        if (patient === undefined) throw new MovedError(`patient ${patientKey} created meanwhile`);
        created.patient = true;
      }
      const inserted = await tx.one(S.insertStudy, {
        patientFk: patient.id,
        studyInstanceUid: studyUid,
        st_referringPhysicianNameNorm:
          record.study.referringPhysicianName === undefined
            ? null
            : normalizePersonName(record.study.referringPhysicianName),
        sp_patientNameNorm: patientNorm,
        ...pick(record.study, STUDY_FIELDS, 'st_'),
        ...pick(record.patient, STUDY_PATIENT_FIELDS, 'sp_'),
      });
      if (inserted === undefined) throw new MovedError(`study ${studyUid} created meanwhile`);
      created.study = true;
      study = { id: inserted.id as number, patient_fk: patient.id, patient_key: patientKey };
    }
    const inserted = await tx.one(S.insertSeries, {
      studyFk: study.id,
      seriesInstanceUid: seriesUid,
      ...pick(record.series, SERIES_FIELDS, 'se_'),
    });
    if (inserted === undefined) throw new MovedError(`series ${seriesUid} created meanwhile`);
    created.series = true;
    const at: SeriesAt = {
      seriesFk: inserted.id as number,
      studyFk: study.id,
      patientFk: study.patient_fk,
      studyInstanceUid: studyUid,
      patientKey: study.patient_key,
      modality: record.series.modality ?? null,
    };
    tx.seriesCache.set(seriesUid, at);
    return { ...at, created };
  }

  /** Removes an instance row, updates the counts and removes emptied series, study and patient rows. */
  async #remove(tx: Tx, row: InstanceRow): Promise<void> {
    tx.seriesCache.clear();
    const t = tx.totals;
    const removed = (await tx.one(S.removeInstance, {
      id: row.id,
      study: row.study_fk,
      sopClass: row.sop_class_uid,
      series: row.series_fk,
    }))!;
    if (removed.deleted !== 1) throw new MovedError(`instance ${row.id} vanished`);
    t.instances--;
    t.bytes -= row.size;
    let refresh = false;
    if (removed.sop_class_count === 0) {
      await tx.rows(S.sopClassDelete, { study: row.study_fk, sopClass: row.sop_class_uid });
      refresh = true;
    }
    let seriesGone = 0;
    if (removed.series_left === 0) {
      if (row.modality !== null) {
        const m = (await tx.one(S.modalityDown, { study: row.study_fk, modality: row.modality }))!;
        if (m.series_count === 0) {
          await tx.rows(S.modalityDelete, { study: row.study_fk, modality: row.modality });
          refresh = true;
        }
      }
      await tx.rows(S.deleteSeries, { id: row.series_fk });
      seriesGone = 1;
      t.series--;
    }
    const study = (await tx.one(S.studyDown, { id: row.study_fk, series: seriesGone }))!;
    let studyGone = 0;
    if (study.number_of_instances === 0) {
      await tx.rows(S.deleteStudy, { id: row.study_fk });
      studyGone = 1;
      t.studies--;
    } else if (refresh) {
      await tx.rows(S.refreshComputed, { study: row.study_fk });
    }
    const patient = (await tx.one(S.patientDown, {
      id: row.patient_fk,
      studies: studyGone,
      series: seriesGone,
    }))!;
    if (patient.number_of_studies === 0) {
      await tx.rows(S.deletePatient, { id: row.patient_fk });
      t.patients--;
    }
  }
}
