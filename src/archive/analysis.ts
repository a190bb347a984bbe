/**
 * What ingest learns from a data set's bytes as they stream in, apart from storing them: the SHA-256
 * of the stored bytes, the parsed data set, its validation (PS3.4 B.2.3) and the index record (index
 * fields, DICOM JSON metadata document, frame offsets). Pure computation over the bytes, no I/O, on
 * the ingest's own thread (a worker thread was measured and gained nothing: docs/architecture.md).
 */
import { createHash, type Hash } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import {
  type Dataset,
  DatasetBuilder,
  datasetToJson,
  decodeDataset,
  type Element,
  type ElementPath,
  frameFragments,
  nativeFrames,
  type Token,
  TokenReader,
  transferSyntax,
} from '../codec/index.ts';
import { CodecError, isValidUid, PixelDataTag, tagToHex } from '../core/index.ts';
import { Tag } from '../dictionary/index.ts';
import { blobKeyFor } from './keys.ts';
import type { InstanceRecord } from './ports.ts';

/** C-STORE statuses of PS3.4 B.2.3 (and the general 0111 of PS3.7 C.5) that ingest answers with. */
export const INGEST_STATUS = {
  Success: 0x0000,
  DuplicateSOPInstance: 0x0111,
  OutOfResources: 0xa700,
  DataSetDoesNotMatchSOPClass: 0xa900,
  CannotUnderstand: 0xc000,
} as const;

export interface IngestSource {
  readonly aeTitle?: string | undefined;
  readonly address?: string | undefined;
}

/** Binary values longer than this are left out of the metadata document (BulkDataURI placeholders). */
const METADATA_BULK_THRESHOLD = 1024;

/** A record computed from the data set as it was when Pixel Data started, and what it saw then. */
interface EarlyRecord {
  readonly elements: number;
  /** The Pixel Data element it saw (a second Pixel Data, malformed, would replace it). */
  readonly pixelData: Element | undefined;
  readonly record: InstanceRecord;
}

/** What a request announced of the instance it carries: the data set must match (else A900). */
export interface ExpectedInstance {
  /** C-STORE Affected SOP Class UID, STOW-RS File Meta. */
  readonly sopClassUid?: string | undefined;
  /** C-STORE Affected SOP Instance UID, STOW-RS File Meta. */
  readonly sopInstanceUid?: string | undefined;
  /** STOW-RS to /studies/{study}: the instance must belong to that study (PS3.18 10.5.3). */
  readonly studyInstanceUid?: string | undefined;
}

/** What an analysis needs to know besides the bytes. */
export interface AnalysisParams {
  /** Transfer syntax of the incoming data set bytes. */
  readonly transferSyntaxUid: string;
  /** Length of the Part 10 header written before the data set in the blob (offsets are in the blob). */
  readonly headerLength: number;
  readonly expected?: ExpectedInstance;
  readonly source: IngestSource;
}

/** An instance refused for what its bytes say (C000 cannot understand, A900 does not match). */
export interface Rejection {
  readonly status: number;
  readonly comment: string;
}

/**
 * The outcome of an analysis: the record to commit (blob key, checksum and size of the blob filled
 * in), or why the instance is refused.
 */
export type AnalysisResult =
  | { readonly kind: 'record'; readonly record: InstanceRecord }
  | ({ readonly kind: 'rejected' } & Rejection);

/**
 * One data set's analysis: `push` every chunk of the data set in order, then `end`. Parsing stops at
 * the first error (reported by `end`); hashing goes on over every byte.
 */
export class InstanceAnalysis {
  readonly #params: AnalysisParams;
  readonly #hash: Hash = createHash('sha256');
  readonly #parser: ChunkParser;
  readonly #deflated: boolean;
  #bytes = 0;
  #early: EarlyRecord | undefined;

  constructor(params: AnalysisParams) {
    this.#params = params;
    const syntax = transferSyntax(params.transferSyntaxUid);
    this.#deflated = syntax.deflated;
    // Once Pixel Data starts (the header has all arrived), the record is computed while the pixel data
    // streams in, off the path from the last byte to the answer; it stands unless elements follow.
    const onPixelData = (root: Dataset): void => {
      try {
        this.#early = {
          elements: root.size,
          pixelData: root.get(PixelDataTag),
          record: recordOf(root, {
            blobKey: '',
            size: 0,
            checksum: '',
            transferSyntaxUid: params.transferSyntaxUid,
            source: params.source,
            frameOffsets: frameOffsetsOf(root),
            datasetOffset: params.headerLength,
          }),
        };
      } catch {
        this.#early = undefined; // computed again at the end, where its error counts
      }
    };
    this.#parser = syntax.deflated
      ? deflatedParser()
      : streamingParser(syntax, params.headerLength, onPixelData);
  }

  /** Bytes of the data set pushed so far. */
  get bytes(): number {
    return this.#bytes;
  }

  push(chunk: Buffer): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    this.#parser.push(chunk);
  }

  end(): AnalysisResult {
    const checksum = this.#hash.digest('hex');
    let ds: Dataset;
    try {
      ds = this.#parser.end();
    } catch (err) {
      return {
        kind: 'rejected',
        status: INGEST_STATUS.CannotUnderstand,
        comment: `cannot parse the data set: ${(err as Error).message}`,
      };
    }
    const invalid = validate(ds, this.#params.expected);
    if (invalid) return { kind: 'rejected', ...invalid };
    const blobKey = blobKeyFor(ds.string(Tag.SOPInstanceUID)!, checksum);
    const size = this.#params.headerLength + this.#bytes;
    const early = this.#early;
    const record =
      early !== undefined && early.elements === ds.size && early.pixelData === ds.get(PixelDataTag)
        ? { ...early.record, instance: { ...early.record.instance, blobKey, checksum, size } }
        : recordOf(ds, {
            blobKey,
            size,
            checksum,
            transferSyntaxUid: this.#params.transferSyntaxUid,
            source: this.#params.source,
            frameOffsets: this.#deflated ? undefined : frameOffsetsOf(ds),
            datasetOffset: this.#params.headerLength,
          });
    return { kind: 'record', record };
  }
}

/** Parses a data set from the chunks stored, as they arrive; `end` returns it or throws why it cannot. */
interface ChunkParser {
  push(chunk: Buffer): void;
  end(): Dataset;
}

/**
 * Native syntaxes: a token reader parses on the way (bulk values stay references into the blob, small
 * values are copied out of the socket chunks). The first parse error stops parsing; `end` throws it.
 */
function streamingParser(
  syntax: ReturnType<typeof transferSyntax>,
  baseOffset: number,
  onPixelData?: (root: Dataset) => void,
): ChunkParser {
  const builder = new DatasetBuilder({
    bulkThreshold: METADATA_BULK_THRESHOLD,
    bulk: 'reference',
    littleEndian: syntax.littleEndian,
    copyValues: true,
  });
  const reader = new TokenReader({
    explicitVR: syntax.explicitVR,
    littleEndian: syntax.littleEndian,
    baseOffset,
    streamThreshold: METADATA_BULK_THRESHOLD,
  });
  let error: CodecError | undefined;
  const drain = (): void => {
    for (let t: Token | undefined = reader.next(); t !== undefined; t = reader.next()) {
      builder.accept(t);
      if (t.kind === 'element' && t.tag === PixelDataTag && builder.current === builder.root)
        onPixelData?.(builder.root);
    }
  };
  const guarded = (step: () => void): void => {
    if (error) return;
    try {
      step();
    } catch (err) {
      if (err instanceof CodecError) error = err;
      else throw err;
    }
  };
  return {
    push: (chunk) =>
      guarded(() => {
        reader.push(chunk);
        drain();
      }),
    end: () => {
      guarded(() => {
        reader.end();
        drain();
      });
      if (error) throw error;
      return builder.root;
    },
  };
}

/** Deflated data sets are stored as received; a copy is inflated and parsed at the end. */
function deflatedParser(): ChunkParser {
  const parts: Buffer[] = [];
  return {
    push: (chunk) => parts.push(Buffer.from(chunk)),
    end: () => decodeDataset(inflateRawSync(Buffer.concat(parts)), '1.2.840.10008.1.2.1'),
  };
}

/** Required UIDs present and valid, and the data set is what the request announced (PS3.4 B.2.3). */
function validate(ds: Dataset, expected: AnalysisParams['expected'] = {}): Rejection | undefined {
  const uids: [string, number][] = [
    ['SOP Class UID', Tag.SOPClassUID],
    ['SOP Instance UID', Tag.SOPInstanceUID],
    ['Study Instance UID', Tag.StudyInstanceUID],
    ['Series Instance UID', Tag.SeriesInstanceUID],
  ];
  for (const [name, t] of uids) {
    const v = ds.string(t);
    if (!v)
      return {
        status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
        comment: `${name} (${tagToHex(t)}) is missing`,
      };
    if (!isValidUid(v))
      return {
        status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
        comment: `${name} (${tagToHex(t)}) is not a valid UID`,
      };
  }
  if (expected.sopClassUid && ds.string(Tag.SOPClassUID) !== expected.sopClassUid) {
    return {
      status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
      comment: 'SOP Class UID of the data set differs from the request',
    };
  }
  if (expected.sopInstanceUid && ds.string(Tag.SOPInstanceUID) !== expected.sopInstanceUid) {
    return {
      status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
      comment: 'SOP Instance UID of the data set differs from the request',
    };
  }
  if (expected.studyInstanceUid && ds.string(Tag.StudyInstanceUID) !== expected.studyInstanceUid) {
    return {
      status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
      comment: `Study Instance UID (0020,000D) ${ds.string(Tag.StudyInstanceUID)} is not the study of the request`,
    };
  }
  return undefined;
}

/** Byte ranges of each frame in the blob: [offset, length] per frame, or per fragment of each frame. */
function frameOffsetsOf(ds: Dataset): string | undefined {
  const pixel = ds.get(PixelDataTag);
  if (!pixel) return undefined;
  try {
    if (pixel.kind === 'encapsulated') {
      const frames = frameFragments(ds, pixel);
      return JSON.stringify(
        frames.map((indexes) => indexes.map((i) => [pixel.fragments[i]!.offset, pixel.fragments[i]!.length])),
      );
    }
    const offset = pixel.kind === 'bulk' ? pixel.bulk.offset : undefined;
    const length =
      pixel.kind === 'bulk' ? pixel.bulk.length : pixel.kind === 'value' ? pixel.bytes.length : 0;
    if (offset === undefined) return undefined;
    return JSON.stringify(nativeFrames(ds, length).map((f) => [offset + f.offset, f.length]));
  } catch {
    // Frames that cannot be located at ingest are located at retrieval by parsing.
    return undefined;
  }
}

function str(ds: Dataset, t: number): string | undefined {
  try {
    const v = ds.string(t);
    return v === undefined || v === '' ? undefined : v;
  } catch {
    return undefined;
  }
}

/** Every value, joined with DICOM's backslash (multi-valued strings as the index keeps them). */
function all(ds: Dataset, t: number): string | undefined {
  try {
    const v = ds.strings(t).join('\\');
    return v.replace(/\\+$/u, '') === '' ? undefined : v;
  } catch {
    return undefined;
  }
}

function num(ds: Dataset, t: number): number | undefined {
  try {
    const n = ds.number(t);
    return n === undefined || Number.isNaN(n) ? undefined : n;
  } catch {
    return undefined;
  }
}

/** BulkDataURI placeholders of the metadata document: `bulk/<tag>[/<item>/<tag>...]`, resolved by the web layer. */
function bulkPlaceholder(_el: Element, path: ElementPath): string {
  return `bulk/${path.map((p, i) => (i % 2 === 0 ? tagToHex(p) : String(p))).join('/')}`;
}

export function recordOf(
  ds: Dataset,
  stored: {
    blobKey: string;
    size: number;
    checksum: string;
    transferSyntaxUid: string;
    source: IngestSource;
    frameOffsets: string | undefined;
    datasetOffset: number;
    /** Kept as they were (a record rebuilt from a stored instance, e.g. by a migration). */
    receivedAt?: string;
    metadata?: string;
  },
): InstanceRecord {
  const requestAttributes = ds.items(Tag.RequestAttributesSequence).map((item) => ({
    RequestedProcedureID: str(item, Tag.RequestedProcedureID),
    ScheduledProcedureStepID: str(item, Tag.ScheduledProcedureStepID),
  }));
  const metadata =
    stored.metadata ??
    JSON.stringify(
      datasetToJson(ds, { bulkDataUri: bulkPlaceholder, bulkThreshold: METADATA_BULK_THRESHOLD }),
    );
  const patient: InstanceRecord['patient'] = { patientId: str(ds, Tag.PatientID) ?? '' };
  put(patient, 'patientName', str(ds, Tag.PatientName));
  put(patient, 'birthDate', str(ds, Tag.PatientBirthDate));
  put(patient, 'sex', str(ds, Tag.PatientSex));
  put(patient, 'issuerOfPatientId', str(ds, Tag.IssuerOfPatientID));
  put(patient, 'birthTime', str(ds, Tag.PatientBirthTime));
  put(patient, 'otherPatientIds', all(ds, Tag.OtherPatientIDs));
  put(patient, 'ethnicGroup', str(ds, Tag.EthnicGroup));
  put(patient, 'patientComments', str(ds, Tag.PatientComments));
  const study: InstanceRecord['study'] = { studyInstanceUid: ds.string(Tag.StudyInstanceUID)! };
  put(study, 'studyDate', str(ds, Tag.StudyDate));
  put(study, 'studyTime', str(ds, Tag.StudyTime));
  put(study, 'accessionNumber', str(ds, Tag.AccessionNumber));
  put(study, 'studyId', str(ds, Tag.StudyID));
  put(study, 'studyDescription', str(ds, Tag.StudyDescription));
  put(study, 'referringPhysicianName', str(ds, Tag.ReferringPhysicianName));
  const issuer = ds.items(Tag.IssuerOfAccessionNumberSequence)[0];
  if (issuer) put(study, 'issuerOfAccessionNumber', str(issuer, Tag.LocalNamespaceEntityID));
  put(study, 'nameOfPhysiciansReadingStudy', all(ds, Tag.NameOfPhysiciansReadingStudy));
  put(study, 'admittingDiagnosesDescription', all(ds, Tag.AdmittingDiagnosesDescription));
  put(study, 'otherStudyNumbers', all(ds, Tag.OtherStudyNumbers));
  put(study, 'timezoneOffsetFromUtc', str(ds, Tag.TimezoneOffsetFromUTC));
  put(study, 'patientAge', str(ds, Tag.PatientAge));
  put(study, 'patientSize', str(ds, Tag.PatientSize));
  put(study, 'patientWeight', str(ds, Tag.PatientWeight));
  put(study, 'occupation', str(ds, Tag.Occupation));
  put(study, 'additionalPatientHistory', str(ds, Tag.AdditionalPatientHistory));
  const series: InstanceRecord['series'] = { seriesInstanceUid: ds.string(Tag.SeriesInstanceUID)! };
  put(series, 'modality', str(ds, Tag.Modality));
  put(series, 'seriesNumber', num(ds, Tag.SeriesNumber));
  put(series, 'seriesDescription', str(ds, Tag.SeriesDescription));
  put(series, 'seriesDate', str(ds, Tag.SeriesDate));
  put(series, 'seriesTime', str(ds, Tag.SeriesTime));
  put(series, 'bodyPartExamined', str(ds, Tag.BodyPartExamined));
  put(series, 'laterality', str(ds, Tag.Laterality));
  put(series, 'protocolName', str(ds, Tag.ProtocolName));
  put(series, 'institutionName', str(ds, Tag.InstitutionName));
  put(series, 'stationName', str(ds, Tag.StationName));
  put(series, 'performedProcedureStepStartDate', str(ds, Tag.PerformedProcedureStepStartDate));
  put(series, 'performedProcedureStepStartTime', str(ds, Tag.PerformedProcedureStepStartTime));
  if (requestAttributes.length) series.requestAttributes = JSON.stringify(requestAttributes);
  const instance: InstanceRecord['instance'] = {
    sopInstanceUid: ds.string(Tag.SOPInstanceUID)!,
    sopClassUid: ds.string(Tag.SOPClassUID)!,
    transferSyntaxUid: stored.transferSyntaxUid,
    blobKey: stored.blobKey,
    size: stored.size,
    checksum: stored.checksum,
    receivedAt: stored.receivedAt ?? new Date().toISOString(),
    metadata,
  };
  put(instance, 'instanceNumber', num(ds, Tag.InstanceNumber));
  put(instance, 'numberOfFrames', num(ds, Tag.NumberOfFrames));
  put(instance, 'rows', num(ds, Tag.Rows));
  put(instance, 'columns', num(ds, Tag.Columns));
  put(instance, 'bitsAllocated', num(ds, Tag.BitsAllocated));
  put(instance, 'contentDate', str(ds, Tag.ContentDate));
  put(instance, 'contentTime', str(ds, Tag.ContentTime));
  put(instance, 'sourceAETitle', stored.source.aeTitle);
  put(instance, 'sourceAddress', stored.source.address);
  put(instance, 'frameOffsets', stored.frameOffsets);
  put(instance, 'characterSet', ds.strings(Tag.SpecificCharacterSet).join('\\') || undefined);
  return { patient, study, series, instance };
}

/** Sets an optional field only when it has a value (the record leaves absent fields out). */
function put<O extends object, K extends keyof O>(o: O, key: K, value: O[K] | undefined): void {
  if (value !== undefined) o[key] = value;
}
