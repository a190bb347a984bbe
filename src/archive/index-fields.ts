/**
 * The columns of the index schema (the same in SQLite and PostgreSQL): for each level, which record
 * field goes to which column and which DICOM keyword names it. Shared by the two index adapters.
 */
import type { InstanceRecord } from './ports.ts';

/** [record field, column, DICOM keyword] of the attributes each level keeps (besides its identity). */
export const PATIENT_FIELDS = [
  ['patientName', 'patient_name', 'PatientName'],
  ['birthDate', 'birth_date', 'PatientBirthDate'],
  ['birthTime', 'birth_time', 'PatientBirthTime'],
  ['sex', 'sex', 'PatientSex'],
  ['otherPatientIds', 'other_patient_ids', 'OtherPatientIDs'],
  ['ethnicGroup', 'ethnic_group', 'EthnicGroup'],
  ['patientComments', 'patient_comments', 'PatientComments'],
] as const satisfies readonly (readonly [keyof InstanceRecord['patient'], string, string])[];

export const STUDY_FIELDS = [
  ['studyDate', 'study_date', 'StudyDate'],
  ['studyTime', 'study_time', 'StudyTime'],
  ['accessionNumber', 'accession_number', 'AccessionNumber'],
  ['issuerOfAccessionNumber', 'issuer_of_accession_number', 'IssuerOfAccessionNumber'],
  ['studyId', 'study_id', 'StudyID'],
  ['studyDescription', 'study_description', 'StudyDescription'],
  ['referringPhysicianName', 'referring_physician_name', 'ReferringPhysicianName'],
  ['nameOfPhysiciansReadingStudy', 'name_of_physicians_reading_study', 'NameOfPhysiciansReadingStudy'],
  ['admittingDiagnosesDescription', 'admitting_diagnoses_description', 'AdmittingDiagnosesDescription'],
  ['otherStudyNumbers', 'other_study_numbers', 'OtherStudyNumbers'],
  ['timezoneOffsetFromUtc', 'timezone_offset_from_utc', 'TimezoneOffsetFromUTC'],
  ['patientAge', 'patient_age', 'PatientAge'],
  ['patientSize', 'patient_size', 'PatientSize'],
  ['patientWeight', 'patient_weight', 'PatientWeight'],
  ['occupation', 'occupation', 'Occupation'],
  ['additionalPatientHistory', 'additional_patient_history', 'AdditionalPatientHistory'],
] as const satisfies readonly (readonly [keyof InstanceRecord['study'], string, string])[];

/** The patient attributes every study row keeps as its own instances carry them. */
export const STUDY_PATIENT_FIELDS = [
  ['patientName', 'patient_name', 'PatientName'],
  ['birthDate', 'patient_birth_date', 'PatientBirthDate'],
  ['sex', 'patient_sex', 'PatientSex'],
] as const satisfies readonly (readonly [keyof InstanceRecord['patient'], string, string])[];

export const SERIES_FIELDS = [
  ['modality', 'modality', 'Modality'],
  ['seriesNumber', 'series_number', 'SeriesNumber'],
  ['seriesDescription', 'series_description', 'SeriesDescription'],
  ['seriesDate', 'series_date', 'SeriesDate'],
  ['seriesTime', 'series_time', 'SeriesTime'],
  ['bodyPartExamined', 'body_part_examined', 'BodyPartExamined'],
  ['laterality', 'laterality', 'Laterality'],
  ['protocolName', 'protocol_name', 'ProtocolName'],
  ['institutionName', 'institution_name', 'InstitutionName'],
  ['stationName', 'station_name', 'StationName'],
  [
    'performedProcedureStepStartDate',
    'performed_procedure_step_start_date',
    'PerformedProcedureStepStartDate',
  ],
  [
    'performedProcedureStepStartTime',
    'performed_procedure_step_start_time',
    'PerformedProcedureStepStartTime',
  ],
  /** JSON text, as given. */
  ['requestAttributes', 'request_attributes', 'RequestAttributes'],
] as const satisfies readonly (readonly [keyof InstanceRecord['series'], string, string])[];

/** [record field, column] of the instances table. */
export const INSTANCE_FIELDS = [
  ['sopInstanceUid', 'sop_instance_uid'],
  ['sopClassUid', 'sop_class_uid'],
  ['instanceNumber', 'instance_number'],
  ['transferSyntaxUid', 'transfer_syntax_uid'],
  ['numberOfFrames', 'number_of_frames'],
  ['rows', 'rows'],
  ['columns', 'columns'],
  ['bitsAllocated', 'bits_allocated'],
  ['contentDate', 'content_date'],
  ['contentTime', 'content_time'],
  ['blobKey', 'blob_key'],
  ['size', 'size'],
  ['checksum', 'checksum'],
  ['receivedAt', 'received_at'],
  ['sourceAETitle', 'source_ae_title'],
  ['sourceAddress', 'source_address'],
  ['characterSet', 'character_set'],
] as const satisfies readonly (readonly [keyof InstanceRecord['instance'], string])[];
