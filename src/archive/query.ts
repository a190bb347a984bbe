/**
 * The one query engine of the archive: PS3.4 C.2.2.2 attribute matching over the index, for C-FIND
 * (Patient Root, Study Root, Patient/Study Only) and QIDO-RS; and the retrieve selection of C-MOVE,
 * C-GET and WADO-RS (the instances under unique keys).
 *
 * `prepareQuery` validates an identifier and plans it (no I/O); `runQuery` writes the SQL in the
 * index's dialect (`Index.dialect`) and streams one result data set per match, in the order of the
 * query level's row id (order of first receipt), page by page (keyset pagination on the id; OFFSET
 * only for the first page of a QIDO `offset`), never holding more than one page.
 *
 * ## Keys
 * Each element of the identifier is a key: a matching key when it has a value, a return key when it
 * is empty (universal matching; a value of only `*` is universal too). Each result has every key of
 * the identifier (value from the index, else from the stored metadata document of the entity's first
 * received instance, else zero length), plus QueryRetrieveLevel (0008,0052); InstanceAvailability
 * (0008,0056) is `ONLINE` and RetrieveAETitle (0008,0054) the configured AE title when asked.
 * Specific Character Set (0008,0005) is never matched nor returned: result values are held as
 * Unicode (their data set's character set, inherited from a parent, is ISO_IR 192), and the caller
 * declares the character set it encodes them in.
 *
 * Keys of the levels above the query level are matched and returned too (the patient's keys at
 * STUDY level, the study's at SERIES level...). Keys the engine knows to belong to a level below
 * the query level (e.g. Modality at STUDY level) are neither matched nor returned (PS3.4 C.4.1.2.1:
 * they are not part of the level's keys); when they have a value they are listed in
 * `unsupportedKeys`, as are keys with a value that the index has no column for (those are returned
 * from the metadata document, not matched).
 *
 * Matched keys per level (all of them also returned):
 * - PATIENT (patients table; below PATIENT, Name, Birth Date and Sex come from the study row, as that
 *   study's instances carry them, see index-sqlite.ts "Patient identity"): PatientID,
 *   IssuerOfPatientID, PatientName, PatientBirthDate, PatientBirthTime, PatientSex, OtherPatientIDs,
 *   EthnicGroup, PatientComments, NumberOfPatientRelatedStudies/Series/Instances.
 * - STUDY: StudyInstanceUID, StudyDate, StudyTime, AccessionNumber, IssuerOfAccessionNumberSequence
 *   (its item's LocalNamespaceEntityID), StudyID, StudyDescription, ReferringPhysicianName,
 *   NameOfPhysiciansReadingStudy, AdmittingDiagnosesDescription, OtherStudyNumbers,
 *   TimezoneOffsetFromUTC, PatientAge, PatientSize, PatientWeight, Occupation,
 *   AdditionalPatientHistory, ModalitiesInStudy (a study matches when one of its series' Modality
 *   matches one of the values), SOPClassesInStudy (one of its instances' SOP Class UID),
 *   NumberOfStudyRelatedSeries/Instances.
 * - SERIES: SeriesInstanceUID, Modality, SeriesNumber, SeriesDescription, SeriesDate, SeriesTime,
 *   BodyPartExamined, Laterality, ProtocolName, InstitutionName, StationName,
 *   PerformedProcedureStepStartDate/Time, RequestAttributesSequence (its item's RequestedProcedureID
 *   and ScheduledProcedureStepID), NumberOfSeriesRelatedInstances.
 * - IMAGE: SOPInstanceUID, SOPClassUID, InstanceNumber, NumberOfFrames, Rows, Columns,
 *   BitsAllocated, ContentDate, ContentTime, AvailableTransferSyntaxUID (the stored syntax).
 *
 * ## Matching (PS3.4 C.2.2.2)
 * - Single value: exact and case-sensitive, except PN (below). Numeric VRs (IS, DS, US...) compare
 *   as numbers (SeriesNumber `2` matches a stored `02`).
 * - List of UID (UI keys): backslash-separated UIDs, any of them.
 * - Several values in a key of another VR (undefined by the standard without Multiple Value
 *   Matching, C.2.2.2.8): a match of any value (OR), e.g. ModalitiesInStudy `CT\MR`.
 * - Wild card `*` and `?` for AE, CS, LO, LT, PN, SH, ST, UC, UR, UT; every other character,
 *   including SQL's `%`, `_`, `[`, `\`, is literal. For a multi-valued column (OtherPatientIDs...),
 *   a value matches one stored value; a `*` may span the separator.
 * - Range for DA and TM: `A-B`, `-B`, `A-`. Dates are validated as YYYYMMDD (ERR_QUERY_BAD_VALUE,
 *   status C000, otherwise). A TM value matches with its precision: `10` is 10:00:00 to 10:59:59.999999,
 *   as lower bound 10:00, as upper bound 10:59:59.999999; single TM values are such ranges.
 *   Combined date and time range matching (C.2.2.2.5.1; StudyDate+StudyTime, SeriesDate+SeriesTime,
 *   ContentDate+ContentTime, PerformedProcedureStepStartDate+Time, PatientBirthDate+Time) with the
 *   `combinedDateTime` option (negotiated by extended negotiation), when both keys are ranges of the
 *   same form; else each key is matched on its own. No DT key is indexed.
 * - PN: case-insensitive by default, on the normalized form of keys.ts `normalizePersonName`
 *   (NFKC, upper case, trailing empty components dropped); a value without `=` matches the
 *   alphabetic group alone (`Yamada^Taro` matches `Yamada^Taro=山田^太郎`). With
 *   `caseInsensitivePersonNames: false`, exact on the stored text. With `fuzzyPersonNames` (QIDO
 *   fuzzymatching): each word of the value must start a word or component of the name.
 * - Sequence (C.2.2.2.6): RequestAttributesSequence and IssuerOfAccessionNumberSequence match on
 *   the item keys named above, and return only the stored items that match, with only the
 *   requested item keys (all of them when the query item is empty). Other sequences are returned
 *   from the metadata document and are unsupported for matching.
 * - Empty value matching (`""`) and Multiple Value Matching (AND) are not supported.
 *
 * ## Hierarchy (PS3.4 C.4.1.2.1, C.4.2.2.1)
 * Without relational queries, the unique keys of the levels above the query level must be present
 * with a single value (no list, no wild card): Study Root SERIES needs StudyInstanceUID, IMAGE also
 * SeriesInstanceUID; Patient Root STUDY needs PatientID, SERIES also StudyInstanceUID, IMAGE also
 * SeriesInstanceUID. Errors are `QueryError`s with status A900 naming the attribute.
 */
import { Dataset, datasetFromJson, type Element } from '../codec/index.ts';
import { DicomError, formatTag, isGroupLength, isStringVR, tagToHex, type VR } from '../core/index.ts';
import { lookupTag, Tag } from '../dictionary/index.ts';
import { normalizePersonName } from './keys.ts';
import type { Index, PatternToken, SqlDialect, SqlValue } from './ports.ts';

export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';
export type QueryModel = 'PATIENT_ROOT' | 'STUDY_ROOT' | 'PATIENT_STUDY_ONLY';

export interface QueryOptions {
  readonly level: QueryLevel;
  readonly model: QueryModel;
  /** Relational queries negotiated (PS3.4 C.4.1.3.2 / extended negotiation): no unique-key checks above the level. Default false. */
  readonly relational?: boolean;
  /** PN matching case-insensitive (default true), on the *_norm columns with normalizePersonName. */
  readonly caseInsensitivePersonNames?: boolean;
  /** QIDO fuzzymatching=true for PN keys: each word of the query value matches a prefix of any word/component of the name, case-insensitive. */
  readonly fuzzyPersonNames?: boolean;
  /** Combined date-time range matching (PS3.4 C.2.2.2.5.1), when negotiated. Default false. */
  readonly combinedDateTime?: boolean;
  /** Stop after this many matches (result limit) / skip this many (QIDO offset). */
  readonly limit?: number;
  readonly offset?: number;
  /** Rows fetched per SQL page (default 256, at most 10000): matches stream page by page, never all in memory. */
  readonly pageSize?: number;
  /** Put this in RetrieveAETitle (0008,0054) when the identifier asks for it. */
  readonly retrieveAETitle?: string;
}

/** The statuses a QueryError carries (PS3.4 Table C.4-1). */
export const QUERY_STATUS = {
  /** A900: Identifier does not match SOP Class (hierarchy, unique keys, level). */
  IdentifierDoesNotMatchSOPClass: 0xa900,
  /** C000: Unable to process (a malformed value). */
  UnableToProcess: 0xc000,
} as const;

export const QUERY_DEFAULTS = { pageSize: 256, maxPageSize: 10_000 } as const;

/** A request the engine refuses; `status` is the C-FIND/C-MOVE/C-GET status, `tag` the attribute at fault. */
export class QueryError extends DicomError {
  readonly status: number;
  readonly tag: number | undefined;

  constructor(code: string, status: number, message: string, tag?: number, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'QueryError';
    this.status = status;
    this.tag = tag;
  }
}

/** `Keyword (gggg,eeee)`. */
function named(t: number): string {
  const keyword = lookupTag(t)?.keyword;
  return keyword ? `${keyword} ${formatTag(t)}` : formatTag(t);
}

function identifierError(code: string, t: number, message: string): QueryError {
  return new QueryError(code, QUERY_STATUS.IdentifierDoesNotMatchSOPClass, `${named(t)} ${message}`, t);
}

function valueError(t: number, message: string): QueryError {
  return new QueryError('ERR_QUERY_BAD_VALUE', QUERY_STATUS.UnableToProcess, `${named(t)} ${message}`, t);
}

// ---------------------------------------------------------------------------------------------------
// SQL dialects
// ---------------------------------------------------------------------------------------------------

/** SQLite: `?` placeholders, GLOB for case-sensitive wild cards (LIKE ignores ASCII case there). */
export const SQLITE_DIALECT: SqlDialect = {
  name: 'sqlite',
  placeholder: () => '?',
  like: (expr, param) => `${expr} GLOB ${param}`,
  pattern: (tokens) =>
    tokens.map((t) => (t === '*' || t === '?' ? t : t.literal.replace(/[*?[\]]/g, (c) => `[${c}]`))).join(''),
  personNameNorm: (expr) => `tessera_pn_norm(${expr})`,
  timeKey: (expr) => {
    const t = `replace(${expr}, ':', '')`;
    return (
      `(CASE WHEN instr(${t}, '.') > 0 THEN substr(substr(${t}, 1, instr(${t}, '.') - 1) || '000000', 1, 6)` +
      ` || '.' || substr(substr(${t}, instr(${t}, '.') + 1) || '000000', 1, 6)` +
      ` ELSE substr(${t} || '000000', 1, 6) || '.000000' END)`
    );
  },
  decimal: (expr) =>
    `(CASE WHEN trim(${expr}) GLOB '*[0-9]*' AND trim(${expr}) NOT GLOB '*[^0-9eE.+-]*' THEN CAST(trim(${expr}) AS REAL) END)`,
  jsonArray: (expr, alias) => ({
    from: `json_each(CASE WHEN json_valid(${expr}) THEN ${expr} END) AS ${alias}`,
    field: (name) => `json_extract(${alias}.value, '$.${name}')`,
  }),
};

/**
 * PostgreSQL (same schema): `$n` placeholders, LIKE with `\` as escape (case-sensitive there). The
 * adapter must provide `tessera_pn_norm(text)` as an SQL function (normalizePersonName).
 */
export const POSTGRES_DIALECT: SqlDialect = {
  name: 'postgres',
  placeholder: (n) => `$${n}`,
  like: (expr, param) => `${expr} LIKE ${param} ESCAPE '\\'`,
  pattern: (tokens) =>
    tokens
      .map((t) => (t === '*' ? '%' : t === '?' ? '_' : t.literal.replace(/[\\%_]/g, (c) => `\\${c}`)))
      .join(''),
  personNameNorm: (expr) => `tessera_pn_norm(${expr})`,
  timeKey: (expr) => {
    const t = `replace(${expr}, ':', '')`;
    return `(rpad(split_part(${t}, '.', 1), 6, '0') || '.' || rpad(split_part(${t}, '.', 2), 6, '0'))`;
  },
  decimal: (expr) =>
    `(CASE WHEN ${expr} ~ '^\\s*[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?\\s*$' THEN CAST(${expr} AS double precision) END)`,
  jsonArray: (expr, alias) => ({
    from: `jsonb_array_elements(CAST(${expr} AS jsonb)) AS ${alias}(value)`,
    field: (name) => `(${alias}.value ->> '${name}')`,
  }),
};

/** Collects parameters while a statement is written (in text order, as `?` needs). */
class SqlBuilder {
  readonly params: SqlValue[] = [];

  constructor(readonly dialect: SqlDialect) {}

  param(value: SqlValue): string {
    this.params.push(value);
    return this.dialect.placeholder(this.params.length);
  }

  like(expr: string, tokens: readonly PatternToken[]): string {
    return this.dialect.like(expr, this.param(this.dialect.pattern(tokens)));
  }

  in(expr: string, values: readonly SqlValue[]): string {
    if (values.length === 1) return `${expr} = ${this.param(values[0]!)}`;
    return `${expr} IN (${values.map((v) => this.param(v)).join(', ')})`;
  }
}

/** A WHERE term, written when the statement is (in the index's dialect). */
type Cond = (b: SqlBuilder) => string;
type Expr = string | ((d: SqlDialect) => string);

// ---------------------------------------------------------------------------------------------------
// Levels and models
// ---------------------------------------------------------------------------------------------------

const RANK: Record<QueryLevel, number> = { PATIENT: 0, STUDY: 1, SERIES: 2, IMAGE: 3 };

const MODEL_LEVELS: Record<QueryModel, readonly QueryLevel[]> = {
  PATIENT_ROOT: ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'],
  STUDY_ROOT: ['STUDY', 'SERIES', 'IMAGE'],
  PATIENT_STUDY_ONLY: ['PATIENT', 'STUDY'],
};

const UNIQUE_KEY: Record<QueryLevel, number> = {
  PATIENT: Tag.PatientID,
  STUDY: Tag.StudyInstanceUID,
  SERIES: Tag.SeriesInstanceUID,
  IMAGE: Tag.SOPInstanceUID,
};

const UNIQUE_COLUMN: Record<QueryLevel, string> = {
  PATIENT: 'p.patient_id',
  STUDY: 'st.study_instance_uid',
  SERIES: 'se.series_instance_uid',
  IMAGE: 'i.sop_instance_uid',
};

/** Table aliases, one per level: p patients, st studies, se series, i instances. */
type Alias = 'p' | 'st' | 'se' | 'i';
const ALIASES: readonly Alias[] = ['p', 'st', 'se', 'i'];
const ALIAS_OF: Record<QueryLevel, Alias> = { PATIENT: 'p', STUDY: 'st', SERIES: 'se', IMAGE: 'i' };
const TABLE_OF: Record<QueryLevel, string> = {
  PATIENT: 'patients p',
  STUDY: 'studies st',
  SERIES: 'series se',
  IMAGE: 'instances i',
};
/** The join bringing in the parent of the entity of each rank. */
const JOIN_PARENT: readonly string[] = [
  '',
  'JOIN patients p ON p.id = st.patient_fk',
  'JOIN studies st ON st.id = se.study_fk',
  'JOIN series se ON se.id = i.series_fk',
];

/** The id of an entity's first received instance (whose metadata document answers keys without a column). */
const REPRESENTATIVE: Record<QueryLevel, string> = {
  PATIENT:
    '(SELECT min(i2.id) FROM studies t2 JOIN series s2 ON s2.study_fk = t2.id JOIN instances i2 ON i2.series_fk = s2.id WHERE t2.patient_fk = p.id)',
  STUDY:
    '(SELECT min(i2.id) FROM series s2 JOIN instances i2 ON i2.series_fk = s2.id WHERE s2.study_fk = st.id)',
  SERIES: '(SELECT min(i2.id) FROM instances i2 WHERE i2.series_fk = se.id)',
  IMAGE: 'i.id',
};

function aliasOf(column: string): Alias {
  const alias = column.slice(0, column.indexOf('.')) as Alias;
  if (!ALIASES.includes(alias)) throw new Error(`query: column ${column} has no table alias`);
  return alias;
}

/** `FROM` of a level's table and the parents the plan uses. */
function fromClause(level: QueryLevel, needed: ReadonlySet<Alias>): string {
  let top = RANK[level];
  for (const alias of needed) top = Math.min(top, ALIASES.indexOf(alias));
  const parts = [TABLE_OF[level]];
  for (let r = RANK[level]; r > top; r--) parts.push(JOIN_PARENT[r]!);
  return parts.join(' ');
}

function checkLevel(identifier: Dataset, level: QueryLevel, model: QueryModel): void {
  const levels = Object.hasOwn(MODEL_LEVELS, model) ? MODEL_LEVELS[model] : undefined;
  if (levels === undefined) {
    throw identifierError(
      'ERR_QUERY_BAD_LEVEL',
      Tag.QueryRetrieveLevel,
      `cannot be used: ${String(model)} is not a Query/Retrieve information model`,
    );
  }
  if (!levels.includes(level)) {
    throw identifierError(
      'ERR_QUERY_BAD_LEVEL',
      Tag.QueryRetrieveLevel,
      `${String(level)} is not a level of the ${model} information model (${levels.join(', ')})`,
    );
  }
  const stated = stringsOf(identifier, Tag.QueryRetrieveLevel)[0];
  if (stated !== undefined && stated !== '' && stated !== level) {
    throw identifierError(
      'ERR_QUERY_BAD_LEVEL',
      Tag.QueryRetrieveLevel,
      `is ${stated} in the identifier but the request is at ${level} level`,
    );
  }
}

/** PS3.4 C.4.1.2.1 / C.4.2.2.1: a single value for the unique key of every level above `level`. */
function requireUniqueKeysAbove(
  identifier: Dataset,
  level: QueryLevel,
  model: QueryModel,
  section: string,
): void {
  for (const above of MODEL_LEVELS[model]) {
    if (RANK[above] >= RANK[level]) break;
    const t = UNIQUE_KEY[above];
    const values = stringsOf(identifier, t);
    if (values.every((v) => v === '')) {
      throw identifierError(
        'ERR_QUERY_MISSING_KEY',
        t,
        `is required with a single value at ${level} level of the ${model} model (${section})`,
      );
    }
    if (values.length !== 1 || /[*?]/.test(values[0]!)) {
      throw identifierError(
        'ERR_QUERY_NOT_SINGLE_VALUE',
        t,
        `must be a single value (no list, no wild card) at ${level} level of the ${model} model (${section})`,
      );
    }
  }
}

function checkPaging(options: QueryOptions): void {
  const checks: [string, number | undefined, number, number][] = [
    ['limit', options.limit, 0, Number.MAX_SAFE_INTEGER],
    ['offset', options.offset, 0, Number.MAX_SAFE_INTEGER],
    ['pageSize', options.pageSize, 1, QUERY_DEFAULTS.maxPageSize],
  ];
  for (const [name, value, min, max] of checks) {
    if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= max)) {
      throw new QueryError(
        'ERR_QUERY_BAD_OPTIONS',
        QUERY_STATUS.UnableToProcess,
        `${name} must be an integer from ${min} to ${max}, not ${String(value)}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The keys the index has columns for
// ---------------------------------------------------------------------------------------------------

type MatchKind =
  | 'text'
  | 'pn'
  | 'date'
  | 'time'
  | 'uid'
  | 'number'
  | 'decimal'
  | 'modalities'
  | 'sopClasses'
  | 'sequence';

interface AttrDef {
  readonly tag: number;
  readonly vr: VR;
  /** The level the attribute belongs to. */
  readonly level: QueryLevel;
  readonly match: MatchKind;
  /** Its column in a query at `at` level (patient attributes below PATIENT: the study row's). */
  readonly column: (at: QueryLevel) => string;
  /** PN: the normalized column; without it the dialect normalizes in SQL. */
  readonly norm: ((at: QueryLevel) => string) | undefined;
  /** Values joined with a backslash in the column. */
  readonly multi: boolean;
}

const DEFS = new Map<number, AttrDef>();

function define(
  keyword: keyof typeof Tag,
  level: QueryLevel,
  match: MatchKind,
  column: string | readonly [patientLevel: string, belowPatient: string],
  extra: { norm?: string | readonly [string, string]; multi?: boolean } = {},
): void {
  const t = Tag[keyword];
  const byLevel = (c: string | readonly [string, string]) =>
    typeof c === 'string' ? () => c : (at: QueryLevel) => (at === 'PATIENT' ? c[0] : c[1]);
  DEFS.set(t, {
    tag: t,
    vr: lookupTag(t)!.vr,
    level,
    match,
    column: byLevel(column),
    norm: extra.norm === undefined ? undefined : byLevel(extra.norm),
    multi: extra.multi ?? false,
  });
}

define('PatientID', 'PATIENT', 'text', 'p.patient_id');
define('IssuerOfPatientID', 'PATIENT', 'text', 'p.issuer_of_patient_id');
define('PatientName', 'PATIENT', 'pn', ['p.patient_name', 'st.patient_name'], {
  norm: ['p.patient_name_norm', 'st.patient_name_norm'],
});
define('PatientBirthDate', 'PATIENT', 'date', ['p.birth_date', 'st.patient_birth_date']);
define('PatientBirthTime', 'PATIENT', 'time', 'p.birth_time');
define('PatientSex', 'PATIENT', 'text', ['p.sex', 'st.patient_sex']);
define('OtherPatientIDs', 'PATIENT', 'text', 'p.other_patient_ids', { multi: true });
define('EthnicGroup', 'PATIENT', 'text', 'p.ethnic_group');
define('PatientComments', 'PATIENT', 'text', 'p.patient_comments');
define('NumberOfPatientRelatedStudies', 'PATIENT', 'number', 'p.number_of_studies');
define('NumberOfPatientRelatedSeries', 'PATIENT', 'number', 'p.number_of_series');
define('NumberOfPatientRelatedInstances', 'PATIENT', 'number', 'p.number_of_instances');

define('StudyInstanceUID', 'STUDY', 'uid', 'st.study_instance_uid');
define('StudyDate', 'STUDY', 'date', 'st.study_date');
define('StudyTime', 'STUDY', 'time', 'st.study_time');
define('AccessionNumber', 'STUDY', 'text', 'st.accession_number');
define('IssuerOfAccessionNumberSequence', 'STUDY', 'sequence', 'st.issuer_of_accession_number');
define('StudyID', 'STUDY', 'text', 'st.study_id');
define('StudyDescription', 'STUDY', 'text', 'st.study_description');
define('ReferringPhysicianName', 'STUDY', 'pn', 'st.referring_physician_name', {
  norm: 'st.referring_physician_name_norm',
});
define('NameOfPhysiciansReadingStudy', 'STUDY', 'pn', 'st.name_of_physicians_reading_study', {
  multi: true,
});
define('AdmittingDiagnosesDescription', 'STUDY', 'text', 'st.admitting_diagnoses_description', {
  multi: true,
});
define('OtherStudyNumbers', 'STUDY', 'text', 'st.other_study_numbers', { multi: true });
define('TimezoneOffsetFromUTC', 'STUDY', 'text', 'st.timezone_offset_from_utc');
define('PatientAge', 'STUDY', 'text', 'st.patient_age');
define('PatientSize', 'STUDY', 'decimal', 'st.patient_size');
define('PatientWeight', 'STUDY', 'decimal', 'st.patient_weight');
define('Occupation', 'STUDY', 'text', 'st.occupation');
define('AdditionalPatientHistory', 'STUDY', 'text', 'st.additional_patient_history');
define('ModalitiesInStudy', 'STUDY', 'modalities', 'st.modalities_in_study', { multi: true });
define('SOPClassesInStudy', 'STUDY', 'sopClasses', 'st.sop_classes_in_study', { multi: true });
define('NumberOfStudyRelatedSeries', 'STUDY', 'number', 'st.number_of_series');
define('NumberOfStudyRelatedInstances', 'STUDY', 'number', 'st.number_of_instances');

define('SeriesInstanceUID', 'SERIES', 'uid', 'se.series_instance_uid');
define('Modality', 'SERIES', 'text', 'se.modality');
define('SeriesNumber', 'SERIES', 'number', 'se.series_number');
define('SeriesDescription', 'SERIES', 'text', 'se.series_description');
define('SeriesDate', 'SERIES', 'date', 'se.series_date');
define('SeriesTime', 'SERIES', 'time', 'se.series_time');
define('BodyPartExamined', 'SERIES', 'text', 'se.body_part_examined');
define('Laterality', 'SERIES', 'text', 'se.laterality');
define('ProtocolName', 'SERIES', 'text', 'se.protocol_name');
define('InstitutionName', 'SERIES', 'text', 'se.institution_name');
define('StationName', 'SERIES', 'text', 'se.station_name');
define('PerformedProcedureStepStartDate', 'SERIES', 'date', 'se.performed_procedure_step_start_date');
define('PerformedProcedureStepStartTime', 'SERIES', 'time', 'se.performed_procedure_step_start_time');
define('RequestAttributesSequence', 'SERIES', 'sequence', 'se.request_attributes');
define('NumberOfSeriesRelatedInstances', 'SERIES', 'number', 'se.number_of_instances');

define('SOPInstanceUID', 'IMAGE', 'uid', 'i.sop_instance_uid');
define('SOPClassUID', 'IMAGE', 'uid', 'i.sop_class_uid');
define('InstanceNumber', 'IMAGE', 'number', 'i.instance_number');
define('NumberOfFrames', 'IMAGE', 'number', 'i.number_of_frames');
define('Rows', 'IMAGE', 'number', 'i.rows');
define('Columns', 'IMAGE', 'number', 'i.columns');
define('BitsAllocated', 'IMAGE', 'number', 'i.bits_allocated');
define('ContentDate', 'IMAGE', 'date', 'i.content_date');
define('ContentTime', 'IMAGE', 'time', 'i.content_time');
define('AvailableTransferSyntaxUID', 'IMAGE', 'uid', 'i.transfer_syntax_uid');

/** The item keys matched inside the sequences the index knows: sequence -> item tag -> JSON member. */
const SEQUENCE_ITEM_KEYS: ReadonlyMap<number, ReadonlyMap<number, string>> = new Map<
  number,
  ReadonlyMap<number, string>
>([
  [
    Tag.RequestAttributesSequence,
    new Map<number, string>([
      [Tag.RequestedProcedureID, 'RequestedProcedureID'],
      [Tag.ScheduledProcedureStepID, 'ScheduledProcedureStepID'],
    ]),
  ],
  [Tag.IssuerOfAccessionNumberSequence, new Map<number, string>([[Tag.LocalNamespaceEntityID, '']])],
]);

/** Date and time keys matched as one datetime under combined datetime matching (C.2.2.2.5.1). */
const DATE_TIME_PAIRS: readonly (readonly [number, number])[] = [
  [Tag.PatientBirthDate, Tag.PatientBirthTime],
  [Tag.StudyDate, Tag.StudyTime],
  [Tag.SeriesDate, Tag.SeriesTime],
  [Tag.PerformedProcedureStepStartDate, Tag.PerformedProcedureStepStartTime],
  [Tag.ContentDate, Tag.ContentTime],
];

// ---------------------------------------------------------------------------------------------------
// Values of keys
// ---------------------------------------------------------------------------------------------------

/** One value of a matching key. */
type Term =
  | { readonly kind: 'eq'; readonly value: string }
  | { readonly kind: 'num'; readonly value: number }
  | { readonly kind: 'wild'; readonly tokens: readonly PatternToken[] }
  /** Inclusive bounds; `explicit` when the key was written as a range (`-`). */
  | { readonly kind: 'range'; readonly low?: string; readonly high?: string; readonly explicit: boolean };

const WILDCARD_VRS: ReadonlySet<VR> = new Set<VR>([
  'AE',
  'CS',
  'LO',
  'LT',
  'PN',
  'SH',
  'ST',
  'UC',
  'UR',
  'UT',
]);
const BINARY_VRS: ReadonlySet<VR> = new Set<VR>(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

function stringsOf(ds: Dataset, t: number): string[] {
  try {
    return ds.strings(t);
  } catch (err) {
    throw new QueryError(
      'ERR_QUERY_BAD_VALUE',
      QUERY_STATUS.UnableToProcess,
      `${named(t)} cannot be decoded: ${(err as Error).message}`,
      t,
      { cause: err },
    );
  }
}

/** The non-empty values of a key, or undefined for universal matching (empty, or a value of only `*`). */
function matchValues(ds: Dataset, t: number): string[] | undefined {
  const el = ds.get(t);
  if (el === undefined || el.kind !== 'value' || el.bytes.length === 0) return undefined;
  const values = stringsOf(ds, t).filter((v) => v !== '');
  if (values.length === 0 || values.some((v) => /^\*+$/.test(v))) return undefined;
  return values;
}

/** Whether an element is a matching key (has a value other than universal), recursively for sequences. */
function hasMatchingValue(ds: Dataset, el: Element): boolean {
  if (el.kind === 'sequence')
    return el.items.some((item) => [...item].some((e) => hasMatchingValue(item, e)));
  if (el.kind !== 'value') return true;
  if (el.bytes.length === 0) return false;
  if (!isStringVR(el.vr)) return true;
  return matchValues(ds, el.tag) !== undefined;
}

/** `*` and `?` as tokens, the rest literal. */
function tokenize(value: string): PatternToken[] {
  const out: PatternToken[] = [];
  let literal = '';
  for (const ch of value) {
    if (ch === '*' || ch === '?') {
      if (literal) out.push({ literal });
      literal = '';
      if (!(ch === '*' && out.at(-1) === '*')) out.push(ch);
    } else literal += ch;
  }
  if (literal) out.push({ literal });
  return out;
}

function textTerm(value: string, vr: VR): Term {
  return WILDCARD_VRS.has(vr) && /[*?]/.test(value)
    ? { kind: 'wild', tokens: tokenize(value) }
    : { kind: 'eq', value };
}

function checkDate(t: number, value: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(value);
  const month = Number(m?.[2]);
  const day = Number(m?.[3]);
  if (!m || month < 1 || month > 12 || day < 1 || day > 31) {
    throw valueError(t, `has a malformed date "${value}" (DA is YYYYMMDD; ranges A-B, -B, A-)`);
  }
  return value;
}

function dateTerm(t: number, value: string): Term {
  if (!value.includes('-')) return { kind: 'eq', value: checkDate(t, value) };
  const parts = value.split('-');
  if (parts.length !== 2 || (parts[0] === '' && parts[1] === '')) {
    throw valueError(t, `has a malformed date range "${value}" (A-B, -B or A-)`);
  }
  const [low, high] = parts as [string, string];
  return {
    kind: 'range',
    ...(low === '' ? {} : { low: checkDate(t, low) }),
    ...(high === '' ? {} : { high: checkDate(t, high) }),
    explicit: true,
  };
}

/** A TM value's first and last instant at its precision, as `HHMMSS.FFFFFF`. */
function timeBounds(t: number, value: string): { low: string; high: string } {
  const m = /^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?$/.exec(value.replaceAll(':', ''));
  if (!m || Number(m[1]) > 23 || Number(m[2] ?? 0) > 59 || Number(m[3] ?? 0) > 60) {
    throw valueError(t, `has a malformed time "${value}" (TM is HH[MM[SS[.F{1,6}]]]; ranges A-B, -B, A-)`);
  }
  const [, hh, mm, ss, frac] = m;
  return {
    low: `${hh}${mm ?? '00'}${ss ?? '00'}.${(frac ?? '').padEnd(6, '0')}`,
    high: `${hh}${mm ?? '59'}${ss ?? '59'}.${(frac ?? '').padEnd(6, '9')}`,
  };
}

function timeTerm(t: number, value: string): Term {
  if (!value.includes('-')) return { kind: 'range', ...timeBounds(t, value), explicit: false };
  const parts = value.split('-');
  if (parts.length !== 2 || (parts[0] === '' && parts[1] === '')) {
    throw valueError(t, `has a malformed time range "${value}" (A-B, -B or A-)`);
  }
  const [low, high] = parts as [string, string];
  return {
    kind: 'range',
    ...(low === '' ? {} : { low: timeBounds(t, low).low }),
    ...(high === '' ? {} : { high: timeBounds(t, high).high }),
    explicit: true,
  };
}

const IS_PATTERN = /^[+-]?\d+$/;
const DS_PATTERN = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function numberTerm(t: number, value: string, vr: VR): Term {
  const ok = vr === 'IS' ? IS_PATTERN.test(value) : vr === 'DS' ? DS_PATTERN.test(value) : true;
  const n = Number(value);
  if (!ok || !Number.isFinite(n)) throw valueError(t, `has a value "${value}" that is not a number (${vr})`);
  return { kind: 'num', value: n };
}

/** The terms of a matching key (any of them matches), or undefined for universal matching. */
function termsOf(ds: Dataset, t: number, match: MatchKind, vr: VR): Term[] | undefined {
  const values = matchValues(ds, t);
  if (values === undefined) return undefined;
  switch (match) {
    case 'date':
      return values.map((v) => dateTerm(t, v));
    case 'time':
      return values.map((v) => timeTerm(t, v));
    case 'number':
    case 'decimal':
      return values.map((v) => numberTerm(t, v, vr));
    case 'uid':
    case 'sopClasses':
      return values.map((value) => ({ kind: 'eq', value }));
    default:
      return values.map((v) => textTerm(v, vr));
  }
}

/** Whether a stored text value matches (for sequence items, filtered after reading). */
function termsMatch(terms: readonly Term[], value: string | undefined): boolean {
  if (value === undefined || value === '') return false;
  return terms.some((term) => {
    switch (term.kind) {
      case 'eq':
        return term.value === value;
      case 'num':
        return Number(value) === term.value;
      case 'wild':
        return patternRegExp(term.tokens).test(value);
      case 'range':
        return (
          (term.low === undefined || value >= term.low) && (term.high === undefined || value <= term.high)
        );
    }
    return false;
  });
}

function patternRegExp(tokens: readonly PatternToken[]): RegExp {
  const source = tokens
    .map((t) => (t === '*' ? '.*' : t === '?' ? '.' : t.literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, 'su');
}

// ---------------------------------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------------------------------

interface TermOptions {
  /** The column holds backslash-separated values: a term matches one of them. */
  readonly multi?: boolean;
  /** PN: a value without `=` matches the alphabetic group alone too. */
  readonly alphabeticGroup?: boolean;
  /** Ranges compare the dialect's time key. */
  readonly time?: boolean;
}

/** Any of the terms matches `column`. */
function termsCond(column: Expr, terms: readonly Term[], o: TermOptions = {}): Cond {
  return (b) => {
    const e = typeof column === 'string' ? column : column(b.dialect);
    const parts: string[] = [];
    if (o.multi) {
      const wrapped = `('\\' || ${e} || '\\')`;
      for (const term of terms) {
        if (term.kind === 'eq') parts.push(b.like(wrapped, ['*', { literal: `\\${term.value}\\` }, '*']));
        else if (term.kind === 'wild')
          parts.push(b.like(wrapped, ['*', { literal: '\\' }, ...term.tokens, { literal: '\\' }, '*']));
        else if (term.kind === 'num')
          parts.push(b.like(wrapped, ['*', { literal: `\\${term.value}\\` }, '*']));
      }
    } else {
      const eq = terms.flatMap((t): SqlValue[] => (t.kind === 'eq' || t.kind === 'num' ? [t.value] : []));
      if (eq.length > 0) parts.push(b.in(e, eq));
      for (const term of terms) {
        if (term.kind === 'eq' && o.alphabeticGroup && !term.value.includes('=')) {
          parts.push(b.like(e, [{ literal: `${term.value}=` }, '*']));
        } else if (term.kind === 'wild') {
          parts.push(b.like(e, term.tokens));
          const hasGroups = term.tokens.some((t) => typeof t === 'object' && t.literal.includes('='));
          if (o.alphabeticGroup && !hasGroups) parts.push(b.like(e, [...term.tokens, { literal: '=' }, '*']));
        } else if (term.kind === 'range') {
          const k = o.time ? b.dialect.timeKey(e) : e;
          const bounds: string[] = [];
          if (term.low !== undefined) bounds.push(`${k} >= ${b.param(term.low)}`);
          if (term.high !== undefined) bounds.push(`${k} <= ${b.param(term.high)}`);
          parts.push(bounds.length === 1 ? bounds[0]! : `(${bounds.join(' AND ')})`);
        }
      }
    }
    if (parts.length === 0) return '1 = 0';
    return parts.length === 1 ? parts[0]! : `(${parts.join(' OR ')})`;
  };
}

/** Fuzzy PN (QIDO fuzzymatching): every word of a value starts a word or component of the name. */
function fuzzyCond(norm: Expr, values: readonly string[]): Cond | undefined {
  const perValue = values
    .map((v) =>
      normalizePersonName(v)
        .split(/[\s^=,]+/u)
        .filter((w) => w !== '' && !/^\*+$/.test(w)),
    )
    .filter((words) => words.length > 0);
  if (perValue.length < values.length) return undefined;
  return (b) => {
    const e = typeof norm === 'string' ? norm : norm(b.dialect);
    const spaced = `(' ' || replace(replace(replace(${e}, '^', ' '), '=', ' '), '\\', ' '))`;
    const alternatives = perValue.map((words) =>
      words.map((w) => b.like(spaced, ['*', { literal: ' ' }, ...tokenize(w), '*'])).join(' AND '),
    );
    return alternatives.length === 1 ? `(${alternatives[0]})` : `((${alternatives.join(') OR (')}))`;
  };
}

const NEVER: Cond = () => '1 = 0';

// ---------------------------------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------------------------------

/** What one key puts in each result. */
type Output =
  | {
      readonly kind: 'column';
      readonly tag: number;
      readonly vr: VR;
      readonly key: string;
      readonly multi: boolean;
    }
  | { readonly kind: 'const'; readonly tag: number; readonly vr: VR; readonly value: string | undefined }
  | {
      readonly kind: 'metadata';
      readonly tag: number;
      readonly vr: VR;
      /** Sequence: the requested item keys (empty: all), and the item keys items must match. */
      readonly itemTags: readonly number[];
      readonly itemFilters: readonly { readonly tag: number; readonly terms: readonly Term[] }[];
    };

/** The plan of a query (internal; its shape may change). */
export interface QueryPlan {
  readonly level: QueryLevel;
  /** @internal */
  readonly conds: readonly Cond[];
  /** @internal */
  readonly needed: ReadonlySet<Alias>;
  /** @internal Selected expressions, read back as `c0`, `c1`... */
  readonly columns: readonly string[];
  /** @internal */
  readonly outputs: readonly Output[];
  /** @internal Whether rows carry the metadata document of the entity's first instance (`doc`). */
  readonly needsDocument: boolean;
}

export interface PreparedQuery {
  readonly options: QueryOptions;
  /** Tags of identifier keys with a non-universal value that are not supported for matching (ignored). The C-FIND SCP answers Pending FF01 when non-empty; QIDO puts them in a Warning header. */
  readonly unsupportedKeys: readonly number[];
  readonly plan: QueryPlan;
}

class Planner {
  readonly conds = new Map<number, Cond>();
  readonly terms = new Map<number, readonly Term[]>();
  readonly needed = new Set<Alias>();
  readonly columns: string[] = [];
  readonly outputs: Output[] = [];
  readonly unsupported: number[] = [];
  needsDocument = false;

  constructor(
    readonly level: QueryLevel,
    readonly options: QueryOptions,
  ) {}

  key(identifier: Dataset, el: Element): void {
    const t = el.tag;
    if (t === Tag.QueryRetrieveLevel || t === Tag.SpecificCharacterSet || isGroupLength(t)) return;
    if (t === Tag.InstanceAvailability) {
      this.constant(identifier, t, 'CS', 'ONLINE');
      return;
    }
    if (t === Tag.RetrieveAETitle) {
      this.constant(identifier, t, 'AE', this.options.retrieveAETitle);
      return;
    }
    const def = DEFS.get(t);
    if (def === undefined) {
      this.fromMetadata(identifier, el);
      return;
    }
    if (RANK[def.level] > RANK[this.level]) {
      // A key of a level below the query level: not a key of this level (neither matched nor returned).
      if (hasMatchingValue(identifier, el)) this.unsupported.push(t);
      return;
    }
    if (def.match === 'sequence') {
      this.sequence(identifier, def);
      return;
    }
    const column = def.column(this.level);
    this.need(column);
    this.outputs.push({
      kind: 'column',
      tag: t,
      vr: def.vr,
      key: `c${this.columns.length}`,
      multi: def.multi,
    });
    this.columns.push(column);
    this.match(identifier, def, column);
  }

  /** InstanceAvailability, RetrieveAETitle: a value of ours; a key that does not match it matches nothing. */
  private constant(identifier: Dataset, t: number, vr: VR, value: string | undefined): void {
    this.outputs.push({ kind: 'const', tag: t, vr, value });
    const terms = termsOf(identifier, t, 'text', vr);
    if (terms === undefined) return;
    if (value === undefined) this.unsupported.push(t);
    else if (!termsMatch(terms, value)) this.conds.set(t, NEVER);
  }

  private fromMetadata(identifier: Dataset, el: Element): void {
    const itemTags = el.kind === 'sequence' ? [...(el.items[0] ?? [])].map((e) => e.tag) : [];
    this.outputs.push({ kind: 'metadata', tag: el.tag, vr: el.vr, itemTags, itemFilters: [] });
    this.needsDocument = true;
    if (hasMatchingValue(identifier, el)) this.unsupported.push(el.tag);
  }

  private need(column: string): void {
    this.needed.add(aliasOf(column));
  }

  private match(identifier: Dataset, def: AttrDef, column: string): void {
    const t = def.tag;
    if (def.match === 'pn') {
      const cond = this.personName(identifier, def, column);
      if (cond) this.conds.set(t, cond);
      return;
    }
    const terms = termsOf(identifier, t, def.match, def.vr);
    if (terms === undefined) return;
    this.terms.set(t, terms);
    switch (def.match) {
      case 'modalities':
        this.needed.add('st');
        this.conds.set(
          t,
          (b) =>
            `EXISTS (SELECT 1 FROM study_modalities sm WHERE sm.study_fk = st.id AND ${termsCond('sm.modality', terms)(b)})`,
        );
        return;
      case 'sopClasses':
        this.needed.add('st');
        this.conds.set(
          t,
          (b) =>
            `EXISTS (SELECT 1 FROM study_sop_classes sc WHERE sc.study_fk = st.id AND ${termsCond('sc.sop_class_uid', terms)(b)})`,
        );
        return;
      case 'decimal':
        this.conds.set(
          t,
          termsCond((d) => d.decimal(column), terms),
        );
        return;
      default:
        this.conds.set(t, termsCond(column, terms, { multi: def.multi, time: def.match === 'time' }));
    }
  }

  private personName(identifier: Dataset, def: AttrDef, column: string): Cond | undefined {
    const values = matchValues(identifier, def.tag);
    if (values === undefined) return undefined;
    const normColumn = def.norm?.(this.level);
    if (normColumn) this.need(normColumn);
    const norm: Expr = normColumn ?? ((d) => d.personNameNorm(column));
    if (this.options.fuzzyPersonNames) return fuzzyCond(norm, values);
    const caseInsensitive = this.options.caseInsensitivePersonNames !== false;
    const terms = values.map((v) => textTerm(caseInsensitive ? normalizePersonName(v) : v, 'PN'));
    return termsCond(caseInsensitive ? norm : column, terms, {
      multi: def.multi,
      alphabeticGroup: !def.multi,
    });
  }

  /** RequestAttributesSequence, IssuerOfAccessionNumberSequence: item keys matched, items from metadata. */
  private sequence(identifier: Dataset, def: AttrDef): void {
    const t = def.tag;
    const item = identifier.items(t)[0];
    const itemKeys = SEQUENCE_ITEM_KEYS.get(t)!;
    const itemTags: number[] = [];
    const itemFilters: { tag: number; terms: readonly Term[] }[] = [];
    let unsupported = false;
    for (const e of item ?? []) {
      itemTags.push(e.tag);
      if (!hasMatchingValue(item!, e)) continue;
      const member = itemKeys.get(e.tag);
      const terms =
        e.kind === 'value' && member !== undefined ? termsOf(item!, e.tag, 'text', e.vr) : undefined;
      if (terms === undefined) unsupported = true;
      else itemFilters.push({ tag: e.tag, terms });
    }
    this.outputs.push({ kind: 'metadata', tag: t, vr: 'SQ', itemTags, itemFilters });
    this.needsDocument = true;
    if (unsupported) this.unsupported.push(t);
    if (itemFilters.length === 0) return;
    const column = def.column(this.level);
    this.need(column);
    if (t === Tag.IssuerOfAccessionNumberSequence) {
      this.conds.set(t, termsCond(column, itemFilters[0]!.terms));
      return;
    }
    this.conds.set(t, (b) => {
      const { from, field } = b.dialect.jsonArray(column, 'ra');
      const where = itemFilters.map((f) => termsCond(field(itemKeys.get(f.tag)!), f.terms)(b));
      return `EXISTS (SELECT 1 FROM ${from} WHERE ${where.join(' AND ')})`;
    });
  }

  /** C.2.2.2.5.1: a date range and a time range of the same form match as one datetime range. */
  combineDateTime(): void {
    for (const [dateTag, timeTag] of DATE_TIME_PAIRS) {
      const date = this.terms.get(dateTag);
      const time = this.terms.get(timeTag);
      if (date?.length !== 1 || time?.length !== 1) continue;
      const [d] = date as [Term];
      const [tm] = time as [Term];
      if (d.kind !== 'range' || tm.kind !== 'range' || !tm.explicit) continue;
      if (
        (d.low === undefined) !== (tm.low === undefined) ||
        (d.high === undefined) !== (tm.high === undefined)
      )
        continue;
      const dateColumn = DEFS.get(dateTag)!.column(this.level);
      const timeColumn = DEFS.get(timeTag)!.column(this.level);
      this.need(timeColumn);
      this.conds.delete(timeTag);
      this.conds.set(dateTag, (b) => {
        const k = b.dialect.timeKey(timeColumn);
        const parts: string[] = [];
        if (d.low !== undefined && tm.low !== undefined) {
          parts.push(
            `(${dateColumn} > ${b.param(d.low)} OR (${dateColumn} = ${b.param(d.low)} AND ${k} >= ${b.param(tm.low)}))`,
          );
        }
        if (d.high !== undefined && tm.high !== undefined) {
          parts.push(
            `(${dateColumn} < ${b.param(d.high)} OR (${dateColumn} = ${b.param(d.high)} AND ${k} <= ${b.param(tm.high)}))`,
          );
        }
        return parts.join(' AND ');
      });
    }
  }

  plan(): QueryPlan {
    return {
      level: this.level,
      conds: [...this.conds.values()],
      needed: this.needed,
      columns: this.columns,
      outputs: this.outputs,
      needsDocument: this.needsDocument,
    };
  }
}

/** Validates and plans. Throws QueryError (status 0xA900 "identifier does not match SOP class" for hierarchy/unique-key violations, 0xC000 for malformed values e.g. a bad DA range), always naming the attribute (keyword and (gggg,eeee)) in the message and in `tag`. */
export function prepareQuery(identifier: Dataset, options: QueryOptions): PreparedQuery {
  const { level, model } = options;
  checkLevel(identifier, level, model);
  checkPaging(options);
  if (!options.relational) requireUniqueKeysAbove(identifier, level, model, 'PS3.4 C.4.1.2.1');
  const planner = new Planner(level, options);
  for (const el of identifier) planner.key(identifier, el);
  if (options.combinedDateTime) planner.combineDateTime();
  return { options, unsupportedKeys: planner.unsupported, plan: planner.plan() };
}

/** One page of a query: rows with `id` greater than `after`, at most `limit`, skipping `offset`. */
export interface QueryPage {
  readonly after: number;
  readonly limit: number;
  readonly offset: number;
}

/** The SQL of one page of a query in `dialect` (what `runQuery` runs; for tests and diagnostics). */
export function querySql(
  query: PreparedQuery,
  dialect: SqlDialect,
  page: QueryPage = { after: 0, limit: query.options.pageSize ?? QUERY_DEFAULTS.pageSize, offset: 0 },
): { sql: string; params: SqlValue[] } {
  const plan = query.plan;
  const b = new SqlBuilder(dialect);
  const a = ALIAS_OF[plan.level];
  const select = [`${a}.id AS id`, ...plan.columns.map((c, i) => `${c} AS c${i}`)];
  if (plan.needsDocument) {
    select.push(
      `(SELECT d.metadata FROM instance_documents d WHERE d.instance_fk = ${REPRESENTATIVE[plan.level]}) AS doc`,
    );
  }
  const where = plan.conds.map((c) => c(b));
  where.push(`${a}.id > ${b.param(page.after)}`);
  const sql =
    `SELECT ${select.join(', ')} FROM ${fromClause(plan.level, plan.needed)}` +
    ` WHERE ${where.join(' AND ')} ORDER BY ${a}.id LIMIT ${b.param(page.limit)} OFFSET ${b.param(page.offset)}`;
  return { sql, params: b.params };
}

/** Runs it: yields one result Dataset per match (ordered by the level's row id), reading SQL page by page (keyset pagination on id, not OFFSET scans when avoidable), checking `signal` between rows (stop silently when aborted). */
export async function* runQuery(
  index: Index,
  query: PreparedQuery,
  signal?: AbortSignal,
): AsyncGenerator<Dataset> {
  const { options, plan } = query;
  const pageSize = options.pageSize ?? QUERY_DEFAULTS.pageSize;
  let remaining = options.limit ?? Number.POSITIVE_INFINITY;
  let offset = options.offset ?? 0;
  let after = 0;
  while (remaining > 0) {
    if (signal?.aborted) return;
    const limit = Math.min(pageSize, remaining);
    const { sql, params } = querySql(query, index.dialect, { after, limit, offset });
    const rows = await index.select(sql, params);
    offset = 0;
    for (const row of rows) {
      if (signal?.aborted) return;
      yield resultOf(plan, row);
      remaining--;
    }
    if (rows.length < limit) return;
    after = Number(rows.at(-1)!.id);
  }
}

// ---------------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------------

/**
 * The parent of every result: its Specific Character Set (ISO_IR 192) is the one result values are
 * held in, so any Unicode text can be set and read back; the result itself has no (0008,0005).
 */
const UNICODE_PARENT = new Dataset();
UNICODE_PARENT.setValues(Tag.SpecificCharacterSet, ['ISO_IR 192'], 'CS');

function setEmpty(ds: Dataset, t: number, vr: VR): void {
  if (vr === 'SQ') ds.setSequence(t, []);
  else ds.setBytes(t, vr, Buffer.alloc(0));
}

function resultOf(plan: QueryPlan, row: Record<string, unknown>): Dataset {
  const ds = new Dataset({ parent: UNICODE_PARENT });
  ds.setValues(Tag.QueryRetrieveLevel, [plan.level], 'CS');
  let doc: Record<string, unknown> | undefined | null = null;
  for (const out of plan.outputs) {
    switch (out.kind) {
      case 'column': {
        const v = row[out.key];
        if (typeof v === 'number') ds.setValues(out.tag, [v], out.vr);
        else if (typeof v === 'string' && v !== '')
          ds.setValues(out.tag, out.multi ? v.split('\\') : [v], out.vr);
        else setEmpty(ds, out.tag, out.vr);
        break;
      }
      case 'const':
        if (out.value === undefined) setEmpty(ds, out.tag, out.vr);
        else ds.setValues(out.tag, [out.value], out.vr);
        break;
      case 'metadata':
        if (doc === null) doc = parseDocument(row.doc);
        copyFromDocument(doc, out, ds);
        break;
    }
  }
  return ds;
}

function parseDocument(text: unknown): Record<string, unknown> | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    const doc: unknown = JSON.parse(text);
    return typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function copyFromDocument(
  doc: Record<string, unknown> | undefined,
  out: Extract<Output, { kind: 'metadata' }>,
  ds: Dataset,
): void {
  const key = tagToHex(out.tag);
  const attr = doc?.[key];
  let source: Dataset | undefined;
  if (attr !== undefined) {
    try {
      source = datasetFromJson({ [key]: attr });
    } catch {
      source = undefined;
    }
  }
  if (source === undefined || !source.has(out.tag)) {
    setEmpty(ds, out.tag, out.vr === 'UN' ? (lookupTag(out.tag)?.vr ?? 'UN') : out.vr);
    return;
  }
  copyElement(source, out.tag, ds, out.itemTags, out.itemFilters);
}

/** Copies an element, re-encoding text in the target's character set; sequence items filtered and trimmed. */
function copyElement(
  from: Dataset,
  t: number,
  to: Dataset,
  itemTags: readonly number[] = [],
  itemFilters: readonly { readonly tag: number; readonly terms: readonly Term[] }[] = [],
): void {
  const el = from.get(t);
  if (el === undefined) {
    setEmpty(to, t, lookupTag(t)?.vr ?? 'UN');
    return;
  }
  if (el.kind === 'sequence') {
    const items: Dataset[] = [];
    for (const item of el.items) {
      if (!itemFilters.every((f) => termsMatch(f.terms, safeString(item, f.tag)))) continue;
      const copy = new Dataset({ parent: to });
      if (itemTags.length > 0) for (const it of itemTags) copyElement(item, it, copy);
      else for (const e of item) copyElement(item, e.tag, copy);
      items.push(copy);
    }
    to.setSequence(t, items);
    return;
  }
  if (el.kind !== 'value') {
    setEmpty(to, t, el.vr);
    return;
  }
  if (BINARY_VRS.has(el.vr)) to.setBytes(t, el.vr, el.bytes);
  else to.setValues(t, from.values(t), el.vr);
}

function safeString(ds: Dataset, t: number): string | undefined {
  try {
    return ds.string(t);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// Retrieve selection
// ---------------------------------------------------------------------------------------------------

/** Retrieval selection (C-MOVE / C-GET identifier, WADO-RS paths): the instances under the given unique keys. */
export interface RetrieveItem {
  sopInstanceUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  blobKey: string;
  size: number;
  studyInstanceUid: string;
  seriesInstanceUid: string;
}

export interface RetrieveOptions {
  readonly level: QueryLevel;
  readonly model: QueryModel;
  /** Relational retrieve negotiated: unique keys above the level may be absent. Default false. */
  readonly relational?: boolean;
  /** Instances read per SQL page by `selectInstances` (default 256). */
  readonly pageSize?: number;
}

export interface PreparedRetrieve {
  readonly level: QueryLevel;
  readonly model: QueryModel;
  readonly pageSize: number;
  /** @internal */
  readonly conds: readonly Cond[];
  /** @internal */
  readonly needed: ReadonlySet<Alias>;
}

/** Validates a C-MOVE/C-GET identifier per PS3.4 C.4.2.2.1 / C.4.3.2.1: QueryRetrieveLevel's unique key present (UID lists allowed at that level: StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, PatientID at PATIENT level), unique keys of the levels above single-valued when present (required per model: e.g. Study Root SERIES needs StudyInstanceUID; Patient Root STUDY needs PatientID); throws QueryError naming the attribute. */
export function prepareRetrieve(identifier: Dataset, options: RetrieveOptions): PreparedRetrieve {
  const { level, model } = options;
  checkLevel(identifier, level, model);
  checkPaging({ level, model, ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }) });
  const conds: Cond[] = [];
  const needed = new Set<Alias>();
  for (const at of MODEL_LEVELS[model]) {
    if (RANK[at] > RANK[level]) break;
    const t = UNIQUE_KEY[at];
    const values = stringsOf(identifier, t).filter((v) => v !== '');
    if (values.length === 0) {
      if (at !== level && options.relational) continue;
      throw identifierError(
        'ERR_QUERY_MISSING_KEY',
        t,
        at === level
          ? `is required: the unique key of the ${level} retrieve level (PS3.4 C.4.2.2.1)`
          : `is required with a single value at ${level} retrieve level of the ${model} model (PS3.4 C.4.2.2.1)`,
      );
    }
    if (values.some((v) => /[*?]/.test(v)) || (at !== level && values.length > 1)) {
      throw identifierError(
        'ERR_QUERY_NOT_SINGLE_VALUE',
        t,
        at === level
          ? 'takes unique key values (a list of them at most), not wild cards, in a retrieve identifier'
          : `must be a single value above the ${level} retrieve level (PS3.4 C.4.2.2.1)`,
      );
    }
    const column = UNIQUE_COLUMN[at];
    needed.add(aliasOf(column));
    conds.push((b) => b.in(column, [...new Set(values)]));
  }
  return { level, model, pageSize: options.pageSize ?? QUERY_DEFAULTS.pageSize, conds, needed };
}

/** The SQL of one page of a retrieve selection (for tests and diagnostics). */
export function retrieveSql(
  retrieve: PreparedRetrieve,
  dialect: SqlDialect,
  page: { after: number; limit: number } = { after: 0, limit: retrieve.pageSize },
): { sql: string; params: SqlValue[] } {
  const b = new SqlBuilder(dialect);
  const where = retrieve.conds.map((c) => c(b));
  where.push(`i.id > ${b.param(page.after)}`);
  const sql =
    'SELECT i.id AS id, i.sop_instance_uid, i.sop_class_uid, i.transfer_syntax_uid, i.blob_key, i.size,' +
    ' se.series_instance_uid, st.study_instance_uid' +
    ` FROM ${fromClause('IMAGE', new Set([...retrieve.needed, 'st']))}` +
    ` WHERE ${where.join(' AND ')} ORDER BY i.id LIMIT ${b.param(page.limit)}`;
  return { sql, params: b.params };
}

export async function* selectInstances(
  index: Index,
  retrieve: PreparedRetrieve,
  signal?: AbortSignal,
): AsyncGenerator<RetrieveItem> {
  let after = 0;
  for (;;) {
    if (signal?.aborted) return;
    const { sql, params } = retrieveSql(retrieve, index.dialect, { after, limit: retrieve.pageSize });
    const rows = await index.select(sql, params);
    for (const r of rows) {
      if (signal?.aborted) return;
      yield {
        sopInstanceUid: String(r.sop_instance_uid),
        sopClassUid: String(r.sop_class_uid),
        transferSyntaxUid: String(r.transfer_syntax_uid),
        blobKey: String(r.blob_key),
        size: Number(r.size),
        studyInstanceUid: String(r.study_instance_uid),
        seriesInstanceUid: String(r.series_instance_uid),
      };
    }
    if (rows.length < retrieve.pageSize) return;
    after = Number(rows.at(-1)!.id);
  }
}

/** The instance counts kept on each level's rows (exact, updated with every commit and delete). */
const COUNT_COLUMN: Record<QueryLevel, string> = {
  PATIENT: 'p.number_of_instances',
  STUDY: 'st.number_of_instances',
  SERIES: 'se.number_of_instances',
  IMAGE: '1',
};

/** Count without reading all rows (for C-MOVE "remaining"): */
export async function countInstances(index: Index, retrieve: PreparedRetrieve): Promise<number> {
  const b = new SqlBuilder(index.dialect);
  const where = retrieve.conds.map((c) => c(b));
  const sql =
    `SELECT coalesce(sum(${COUNT_COLUMN[retrieve.level]}), 0) AS n` +
    ` FROM ${fromClause(retrieve.level, retrieve.needed)}` +
    (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '');
  const rows = await index.select(sql, b.params);
  return Number(rows[0]?.n ?? 0);
}
