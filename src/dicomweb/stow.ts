/**
 * The STOW-RS response: the Store Instances Response Module (PS3.18 Annex I) as DICOM JSON, its
 * parsing on the client side, and the HTTP status of PS3.18 10.5.3.1.
 *
 * Plain objects (the DICOM JSON model of PS3.18 Annex F), no Node API: the browser client parses
 * responses with the same code.
 */
import type { JsonAttribute, JsonDataset } from '../codec/index.ts';

/** PS3.18 I.2.1 Warning Reason (0008,1196) values. */
export const StowWarningReason = {
  /** B000: Coercion of data elements. */
  CoercionOfDataElements: 0xb000,
  /** B006: Elements discarded. */
  ElementsDiscarded: 0xb006,
  /** B007: Data set does not match SOP Class. */
  DataSetDoesNotMatchSopClass: 0xb007,
} as const;

/** PS3.18 I.2.2 Failure Reason (0008,1197) values (C-STORE statuses of PS3.4 B.2.3 and PS3.7 C). */
export const StowFailureReason = {
  /** 0110: Processing failure. */
  ProcessingFailure: 0x0110,
  /** 0122: Referenced SOP Class not supported. */
  SopClassNotSupported: 0x0122,
  /** 0124: Refused: not authorized. */
  NotAuthorized: 0x0124,
  /** A700: Refused: out of resources. */
  OutOfResources: 0xa700,
  /** A900: Error: data set does not match SOP Class. */
  DataSetDoesNotMatchSopClass: 0xa900,
  /** C000: Error: cannot understand. */
  CannotUnderstand: 0xc000,
  /** C122: Referenced Transfer Syntax not supported. */
  TransferSyntaxNotSupported: 0xc122,
} as const;

/** An instance stored (an item of Referenced SOP Sequence). */
export interface StowReferenced {
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  /** Where the instance can be retrieved (WADO-RS). */
  readonly retrieveUrl?: string | undefined;
  /** Set when it was stored with a warning (StowWarningReason). */
  readonly warningReason?: number | undefined;
}

/** An instance not stored (an item of Failed SOP Sequence). UIDs are absent when the part could not be read. */
export interface StowFailed {
  readonly sopClassUid?: string | undefined;
  readonly sopInstanceUid?: string | undefined;
  /** StowFailureReason. */
  readonly failureReason: number;
}

export interface StowOutcome {
  /**
   * Retrieve URL (0008,1190) of the response: the URL of the study the instances were stored in
   * (Type 2: an empty value when absent, e.g. instances of several studies).
   */
  readonly retrieveBase?: string | undefined;
  readonly referenced: readonly StowReferenced[];
  readonly failed: readonly StowFailed[];
}

const RetrieveURL = '00081190';
const FailedSOPSequence = '00081198';
const ReferencedSOPSequence = '00081199';
const ReferencedSOPClassUID = '00081150';
const ReferencedSOPInstanceUID = '00081155';
const WarningReason = '00081196';
const FailureReason = '00081197';

const text = (vr: 'UI' | 'UR', value: string | undefined): JsonAttribute =>
  value === undefined || value === '' ? { vr } : { vr, Value: [value] };

/** The Store Instances Response Module (PS3.18 Table I.1-1) of a STOW-RS response, as DICOM JSON. */
export function stowResponse(outcome: StowOutcome): JsonDataset {
  const json: JsonDataset = { [RetrieveURL]: text('UR', outcome.retrieveBase) };
  if (outcome.failed.length > 0) {
    json[FailedSOPSequence] = {
      vr: 'SQ',
      Value: outcome.failed.map((f) => ({
        ...(f.sopClassUid ? { [ReferencedSOPClassUID]: text('UI', f.sopClassUid) } : {}),
        ...(f.sopInstanceUid ? { [ReferencedSOPInstanceUID]: text('UI', f.sopInstanceUid) } : {}),
        [FailureReason]: { vr: 'US', Value: [f.failureReason] },
      })),
    };
  }
  if (outcome.referenced.length > 0) {
    json[ReferencedSOPSequence] = {
      vr: 'SQ',
      Value: outcome.referenced.map((r) => ({
        [ReferencedSOPClassUID]: text('UI', r.sopClassUid),
        [ReferencedSOPInstanceUID]: text('UI', r.sopInstanceUid),
        [RetrieveURL]: text('UR', r.retrieveUrl),
        ...(r.warningReason === undefined ? {} : { [WarningReason]: { vr: 'US', Value: [r.warningReason] } }),
      })),
    };
  }
  return json;
}

/**
 * The HTTP status of a STOW-RS response (PS3.18 Table 10.5.3-1): 200 all stored; 202 some stored
 * but failures or warnings for others; 409 none stored (failures); 400 nothing to store at all
 * (an empty request). Warnings alone give 202 ("warnings or failures exist").
 */
export function stowHttpStatus(
  referencedCount: number,
  failedCount: number,
  warningCount = 0,
): 200 | 202 | 400 | 409 {
  if (referencedCount === 0) return failedCount > 0 ? 409 : 400;
  return failedCount > 0 || warningCount > 0 ? 202 : 200;
}

function attr(ds: unknown, key: string): JsonAttribute | undefined {
  if (typeof ds !== 'object' || ds === null) return undefined;
  const record = ds as Record<string, unknown>;
  const a = record[key] ?? record[key.toLowerCase()];
  return typeof a === 'object' && a !== null ? (a as JsonAttribute) : undefined;
}

function first(ds: unknown, key: string): string | number | undefined {
  const v = attr(ds, key)?.Value?.[0];
  return typeof v === 'string' || typeof v === 'number' ? v : undefined;
}

function str(ds: unknown, key: string): string | undefined {
  const v = first(ds, key);
  return v === undefined ? undefined : String(v);
}

function num(ds: unknown, key: string): number | undefined {
  const v = first(ds, key);
  return typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
}

function items(ds: unknown, key: string): unknown[] {
  const v = attr(ds, key)?.Value;
  return Array.isArray(v) ? v : [];
}

/**
 * Reads a Store Instances Response Module (the inverse of stowResponse). Lenient: what is missing
 * or of the wrong type is left out. Also accepts a one-element array (some servers wrap it).
 */
export function parseStowResponse(json: unknown): StowOutcome {
  const ds = Array.isArray(json) ? json[0] : json;
  return {
    retrieveBase: str(ds, RetrieveURL),
    referenced: items(ds, ReferencedSOPSequence).map((item) => ({
      sopClassUid: str(item, ReferencedSOPClassUID) ?? '',
      sopInstanceUid: str(item, ReferencedSOPInstanceUID) ?? '',
      retrieveUrl: str(item, RetrieveURL),
      warningReason: num(item, WarningReason),
    })),
    failed: items(ds, FailedSOPSequence).map((item) => ({
      sopClassUid: str(item, ReferencedSOPClassUID),
      sopInstanceUid: str(item, ReferencedSOPInstanceUID),
      failureReason: num(item, FailureReason) ?? StowFailureReason.ProcessingFailure,
    })),
  };
}
