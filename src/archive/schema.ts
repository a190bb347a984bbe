/**
 * The SQLite index schema as a list of migrations. `SqliteIndex.open` runs the ones above the file's
 * `PRAGMA user_version`, each in its own IMMEDIATE transaction that also sets user_version, so a
 * crash mid-migration leaves the previous version intact and two processes opening one file
 * never run a migration twice.
 *
 * Rules for adding one: append, never edit a released migration; plain SQL run with `exec`; data
 * backfills in SQL (the connection provides `tessera_pn_norm(text)`, see keys.ts
 * `normalizePersonName`). Tables are STRICT. Integer String (IS) values (series/instance number,
 * number of frames) are REAL so that a malformed non-integer value is kept rather than refused.
 *
 * Model: patients 1-n studies 1-n series 1-n instances; instance_documents holds the large
 * per-instance texts (metadata JSON, frame offsets) apart, so that scans of `instances` stay small.
 */

export interface Migration {
  /** The user_version after this migration. Migrations are numbered 1, 2, 3... without gaps. */
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'patient / study / series / instance hierarchy',
    sql: `
CREATE TABLE patients (
  id INTEGER PRIMARY KEY,
  -- identity: JSON [PatientID, IssuerOfPatientID] (see index-sqlite.ts, "Patient identity")
  patient_key TEXT NOT NULL UNIQUE,
  patient_id TEXT NOT NULL,
  issuer_of_patient_id TEXT,
  patient_name TEXT,
  birth_date TEXT,
  birth_time TEXT,
  sex TEXT,
  other_patient_ids TEXT,
  ethnic_group TEXT,
  patient_comments TEXT
) STRICT;

CREATE TABLE studies (
  id INTEGER PRIMARY KEY,
  patient_fk INTEGER NOT NULL REFERENCES patients(id),
  study_instance_uid TEXT NOT NULL UNIQUE,
  study_date TEXT,
  study_time TEXT,
  accession_number TEXT,
  issuer_of_accession_number TEXT,
  study_id TEXT,
  study_description TEXT,
  referring_physician_name TEXT,
  name_of_physicians_reading_study TEXT,
  admitting_diagnoses_description TEXT,
  other_study_numbers TEXT,
  timezone_offset_from_utc TEXT,
  patient_age TEXT,
  patient_size TEXT,
  patient_weight TEXT,
  occupation TEXT,
  additional_patient_history TEXT,
  -- the patient's attributes as this study's instances carry them (Study Root study level)
  patient_name TEXT,
  patient_birth_date TEXT,
  patient_sex TEXT
) STRICT;
CREATE INDEX studies_patient ON studies(patient_fk);

CREATE TABLE series (
  id INTEGER PRIMARY KEY,
  study_fk INTEGER NOT NULL REFERENCES studies(id),
  series_instance_uid TEXT NOT NULL UNIQUE,
  modality TEXT,
  series_number REAL,
  series_description TEXT,
  series_date TEXT,
  series_time TEXT,
  body_part_examined TEXT,
  laterality TEXT,
  protocol_name TEXT,
  institution_name TEXT,
  station_name TEXT,
  performed_procedure_step_start_date TEXT,
  performed_procedure_step_start_time TEXT,
  request_attributes TEXT
) STRICT;
CREATE INDEX series_study ON series(study_fk);

CREATE TABLE instances (
  id INTEGER PRIMARY KEY,
  series_fk INTEGER NOT NULL REFERENCES series(id),
  sop_instance_uid TEXT NOT NULL UNIQUE,
  sop_class_uid TEXT NOT NULL,
  instance_number REAL,
  transfer_syntax_uid TEXT NOT NULL,
  number_of_frames REAL,
  rows INTEGER,
  columns INTEGER,
  bits_allocated INTEGER,
  content_date TEXT,
  content_time TEXT,
  blob_key TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  checksum TEXT NOT NULL,
  received_at TEXT NOT NULL,
  source_ae_title TEXT,
  source_address TEXT,
  character_set TEXT
) STRICT;
CREATE INDEX instances_series ON instances(series_fk);

CREATE TABLE instance_documents (
  instance_fk INTEGER PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
  metadata TEXT NOT NULL,
  frame_offsets TEXT
) STRICT;
`,
  },
  {
    version: 2,
    description: 'matching keys of C-FIND / QIDO-RS: normalized person names, indexes',
    sql: `
ALTER TABLE patients ADD COLUMN patient_name_norm TEXT;
ALTER TABLE studies ADD COLUMN patient_name_norm TEXT;
ALTER TABLE studies ADD COLUMN referring_physician_name_norm TEXT;
UPDATE patients SET patient_name_norm = tessera_pn_norm(patient_name) WHERE patient_name IS NOT NULL;
UPDATE studies SET patient_name_norm = tessera_pn_norm(patient_name) WHERE patient_name IS NOT NULL;
UPDATE studies SET referring_physician_name_norm = tessera_pn_norm(referring_physician_name)
  WHERE referring_physician_name IS NOT NULL;

CREATE INDEX patients_patient_id ON patients(patient_id);
CREATE INDEX patients_name_norm ON patients(patient_name_norm);
CREATE INDEX studies_patient_name_norm ON studies(patient_name_norm);
CREATE INDEX studies_referring_norm ON studies(referring_physician_name_norm);
CREATE INDEX studies_study_date ON studies(study_date, study_time);
CREATE INDEX studies_accession ON studies(accession_number);
CREATE INDEX studies_study_id ON studies(study_id);
-- ModalitiesInStudy matching: EXISTS (SELECT 1 FROM series WHERE modality = ? AND study_fk = studies.id)
CREATE INDEX series_modality ON series(modality, study_fk);
CREATE INDEX instances_sop_class ON instances(sop_class_uid);
`,
  },
  {
    version: 3,
    description:
      'computed attributes (Number of ... Related ..., ModalitiesInStudy, SOPClassesInStudy), totals',
    sql: `
ALTER TABLE patients ADD COLUMN number_of_studies INTEGER NOT NULL DEFAULT 0;
ALTER TABLE patients ADD COLUMN number_of_series INTEGER NOT NULL DEFAULT 0;
ALTER TABLE patients ADD COLUMN number_of_instances INTEGER NOT NULL DEFAULT 0;
ALTER TABLE studies ADD COLUMN number_of_series INTEGER NOT NULL DEFAULT 0;
ALTER TABLE studies ADD COLUMN number_of_instances INTEGER NOT NULL DEFAULT 0;
-- sorted distinct values joined with a backslash, kept in step with the tables below
ALTER TABLE studies ADD COLUMN modalities_in_study TEXT;
ALTER TABLE studies ADD COLUMN sop_classes_in_study TEXT;
ALTER TABLE series ADD COLUMN number_of_instances INTEGER NOT NULL DEFAULT 0;

-- how many series of the study have this modality / instances this SOP class
CREATE TABLE study_modalities (
  study_fk INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
  modality TEXT NOT NULL,
  series_count INTEGER NOT NULL,
  PRIMARY KEY (study_fk, modality)
) STRICT, WITHOUT ROWID;
CREATE TABLE study_sop_classes (
  study_fk INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
  sop_class_uid TEXT NOT NULL,
  instance_count INTEGER NOT NULL,
  PRIMARY KEY (study_fk, sop_class_uid)
) STRICT, WITHOUT ROWID;

CREATE TABLE totals (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  patients INTEGER NOT NULL,
  studies INTEGER NOT NULL,
  series INTEGER NOT NULL,
  instances INTEGER NOT NULL,
  bytes INTEGER NOT NULL
) STRICT;

UPDATE series SET number_of_instances = (SELECT count(*) FROM instances WHERE series_fk = series.id);
UPDATE studies SET
  number_of_series = (SELECT count(*) FROM series WHERE study_fk = studies.id),
  number_of_instances = (SELECT coalesce(sum(number_of_instances), 0) FROM series WHERE study_fk = studies.id);
UPDATE patients SET
  number_of_studies = (SELECT count(*) FROM studies WHERE patient_fk = patients.id),
  number_of_series = (SELECT coalesce(sum(number_of_series), 0) FROM studies WHERE patient_fk = patients.id),
  number_of_instances = (SELECT coalesce(sum(number_of_instances), 0) FROM studies WHERE patient_fk = patients.id);
INSERT INTO study_modalities (study_fk, modality, series_count)
  SELECT study_fk, modality, count(*) FROM series WHERE modality IS NOT NULL GROUP BY study_fk, modality;
INSERT INTO study_sop_classes (study_fk, sop_class_uid, instance_count)
  SELECT s.study_fk, i.sop_class_uid, count(*) FROM instances i JOIN series s ON s.id = i.series_fk
  GROUP BY s.study_fk, i.sop_class_uid;
UPDATE studies SET
  modalities_in_study = (SELECT group_concat(modality, '\\' ORDER BY modality) FROM study_modalities
    WHERE study_fk = studies.id),
  sop_classes_in_study = (SELECT group_concat(sop_class_uid, '\\' ORDER BY sop_class_uid) FROM study_sop_classes
    WHERE study_fk = studies.id);
INSERT INTO totals (id, patients, studies, series, instances, bytes) VALUES (1,
  (SELECT count(*) FROM patients), (SELECT count(*) FROM studies), (SELECT count(*) FROM series),
  (SELECT count(*) FROM instances), (SELECT coalesce(sum(size), 0) FROM instances));
`,
  },
];

/** The user_version of a file with every migration applied. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;
