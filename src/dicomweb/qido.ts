/**
 * QIDO-RS query parameters (PS3.18 8.3.4, 10.6.1.2) to a C-FIND style identifier: the one query
 * model shared with C-FIND (archive `prepareQuery` takes the Dataset built here).
 *
 * - `{attributeID}={value}`: a matching key. attributeID is a keyword (`PatientName`), a tag of 8
 *   hex digits (`00100010`), or a dotted path through sequences
 *   (`RequestAttributesSequence.RequestedProcedureID`, `00400275.00401001`), which becomes a key in
 *   the (single) item of the sequence. UI values are UID lists: `,` or `\` separated. A repeated
 *   attribute adds values (UID list / any-of matching).
 * - `includefield`: return keys, comma-separated and/or repeated; `all` asks for every attribute.
 * - `fuzzymatching` (`true`/`false`), `limit` (>= 1), `offset` (>= 0).
 * - `accept`, `charset` (PS3.18 8.3.3.1, 8.3.3.2): request-level parameters for the HTTP layer,
 *   not attributes; left out of the identifier and not reported as ignored.
 *
 * Parameters ignored (and listed in `ignored`, for a `Warning: 299` header, PS3.18 8.3.4.1 lets an
 * origin server ignore what it does not support): names that are neither keyword- nor tag-shaped
 * (e.g. `_=1712` cache busters), private and group-length tags, binary (OB/OW/UN...) matching
 * values, and keys the path already gives (StudyInstanceUID under /studies/{study}).
 */
import { Dataset, type Value } from '../codec/index.ts';
import {
  DicomError,
  isPrivateTag,
  isValidUid,
  type Tag as TagNumber,
  tagToHex,
  type VR,
} from '../core/index.ts';
import { type ElementEntry, lookupKeyword, lookupTag, Tag } from '../dictionary/index.ts';

export type QidoLevel = 'STUDY' | 'SERIES' | 'IMAGE';

export interface QidoScope {
  readonly studyInstanceUid?: string | undefined;
  readonly seriesInstanceUid?: string | undefined;
}

export interface QidoQuery {
  /**
   * QueryRetrieveLevel, the scope's UIDs, every matching key and return key, and the default return
   * attributes of the level (PS3.18 Table 10.6.3-3/-4/-5) as empty keys. SpecificCharacterSet is
   * `ISO_IR 192` when a value is not ASCII (and absent otherwise).
   */
  readonly identifier: Dataset;
  /** `includefield=all`. */
  readonly includeAll: boolean;
  readonly fuzzymatching: boolean;
  readonly limit?: number;
  readonly offset?: number;
  /** Parameters ignored, each as `name: reason`, for a `Warning: 299` header. */
  readonly ignored: string[];
}

/** PS3.18 Table 10.6.3-3: returned for every matching study (Specific Character Set left to the encoder). */
export const QIDO_STUDY_RETURN_KEYS: readonly TagNumber[] = [
  Tag.StudyDate,
  Tag.StudyTime,
  Tag.AccessionNumber,
  Tag.InstanceAvailability,
  Tag.ModalitiesInStudy,
  Tag.ReferringPhysicianName,
  Tag.TimezoneOffsetFromUTC,
  Tag.RetrieveURL,
  Tag.PatientName,
  Tag.PatientID,
  Tag.PatientBirthDate,
  Tag.PatientSex,
  Tag.StudyInstanceUID,
  Tag.StudyID,
  Tag.NumberOfStudyRelatedSeries,
  Tag.NumberOfStudyRelatedInstances,
];

/** PS3.18 Table 10.6.3-4 (RequestAttributesSequence with its two item keys, added separately). */
export const QIDO_SERIES_RETURN_KEYS: readonly TagNumber[] = [
  Tag.Modality,
  Tag.TimezoneOffsetFromUTC,
  Tag.SeriesDescription,
  Tag.RetrieveURL,
  Tag.SeriesInstanceUID,
  Tag.SeriesNumber,
  Tag.NumberOfSeriesRelatedInstances,
  Tag.PerformedProcedureStepStartDate,
  Tag.PerformedProcedureStepStartTime,
  Tag.RequestAttributesSequence,
];

/** Item keys of RequestAttributesSequence in Table 10.6.3-4. */
export const QIDO_REQUEST_ATTRIBUTES_ITEM_KEYS: readonly TagNumber[] = [
  Tag.ScheduledProcedureStepID,
  Tag.RequestedProcedureID,
];

/** PS3.18 Table 10.6.3-5. */
export const QIDO_INSTANCE_RETURN_KEYS: readonly TagNumber[] = [
  Tag.SOPClassUID,
  Tag.SOPInstanceUID,
  Tag.InstanceAvailability,
  Tag.TimezoneOffsetFromUTC,
  Tag.RetrieveURL,
  Tag.InstanceNumber,
  Tag.Rows,
  Tag.Columns,
  Tag.BitsAllocated,
  Tag.NumberOfFrames,
];

/** Parameters of PS3.18 8.3.3/8.3.4 that are not attributes. */
const REQUEST_PARAMETERS = new Set(['accept', 'charset']);
const BINARY_VRS: ReadonlySet<VR> = new Set<VR>(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
const NUMERIC_VRS: ReadonlySet<VR> = new Set<VR>(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'UV', 'SV']);
const CHARSET_VRS: ReadonlySet<VR> = new Set<VR>(['SH', 'LO', 'ST', 'LT', 'UC', 'UT', 'PN']);
const HEX8 = /^[0-9A-Fa-f]{8}$/;
const KEYWORD = /^[A-Z][A-Za-z0-9]*$/;

function bad(parameter: string, problem: string): DicomError {
  return new DicomError('ERR_DICOMWEB_BAD_PARAMETER', `query parameter "${parameter}": ${problem}`);
}

/** One component of an attribute path: the dictionary entry, or a reason to ignore it. */
type Step = { entry: ElementEntry; tag: TagNumber } | { ignore: string };

function resolveComponent(component: string, parameter: string): Step {
  if (HEX8.test(component)) {
    const t = Number.parseInt(component, 16) >>> 0;
    if ((t & 0xffff) === 0) return { ignore: 'group length' };
    if (t >>> 16 <= 0x0002) return { ignore: 'command or file meta element' };
    if (isPrivateTag(t)) return { ignore: 'private data element' };
    const entry = lookupTag(t);
    if (!entry) throw bad(parameter, `tag ${component} is not in the data dictionary`);
    return { entry, tag: t };
  }
  if (KEYWORD.test(component)) {
    const entry = lookupKeyword(component);
    if (!entry) throw bad(parameter, `"${component}" is not a DICOM attribute keyword`);
    return { entry, tag: entry.tag };
  }
  throw bad(parameter, `"${component}" is neither a keyword nor a tag of 8 hex digits`);
}

/** Whether a parameter name is meant as an attribute (keyword-, tag- or path-shaped). */
function isAttributeName(name: string): boolean {
  return KEYWORD.test(name) || /^[0-9]/.test(name) || name.includes('.') || HEX8.test(name);
}

class IdentifierBuilder {
  readonly ds = new Dataset();
  /** Values per path key (`00400275.00401001`), in order; `undefined` values list = return key only. */
  private readonly keys = new Map<string, { path: Step[]; values: string[]; parameter: string }>();

  add(parameter: string, path: Step[], value: string | undefined): void {
    const key = path.map((s) => ('tag' in s ? tagToHex(s.tag) : '')).join('.');
    const existing = this.keys.get(key);
    if (existing) {
      if (value !== undefined) existing.values.push(value);
    } else this.keys.set(key, { path, values: value === undefined ? [] : [value], parameter });
  }

  has(t: TagNumber): boolean {
    return this.keys.has(tagToHex(t));
  }

  /** Writes every key into the Dataset (after SpecificCharacterSet, which encodes the values). */
  build(): Dataset {
    const nonAscii = [...this.keys.values()].some((k) => k.values.some((v) => /[^\x20-\x7e]/.test(v)));
    if (nonAscii) this.ds.setValues(Tag.SpecificCharacterSet, ['ISO_IR 192'], 'CS');
    for (const { path, values, parameter } of this.keys.values()) this.write(path, values, parameter);
    return this.ds;
  }

  private write(path: Step[], values: string[], parameter: string): void {
    let ds = this.ds;
    for (let i = 0; i < path.length - 1; i++) {
      const step = path[i] as { entry: ElementEntry; tag: TagNumber };
      const existing = ds.items(step.tag)[0];
      if (existing) ds = existing;
      else {
        const item = new Dataset({ parent: ds });
        ds.setSequence(step.tag, [item]);
        ds = item;
      }
    }
    const last = path[path.length - 1] as { entry: ElementEntry; tag: TagNumber };
    const vr = last.entry.vr;
    if (vr === 'SQ') {
      if (!ds.has(last.tag)) ds.setSequence(last.tag, []);
      return;
    }
    if (values.length === 0) {
      if (BINARY_VRS.has(vr)) ds.setBytes(last.tag, vr, Buffer.alloc(0));
      else ds.setValues(last.tag, [], vr);
      return;
    }
    ds.setValues(last.tag, encodeKeyValues(parameter, vr, values), vr);
  }
}

function encodeKeyValues(parameter: string, vr: VR, values: string[]): Value[] {
  if (vr === 'UI') {
    return values.flatMap((v) => v.split(/[,\\]/).map((u) => u.trim())).filter((u) => u !== '');
  }
  if (NUMERIC_VRS.has(vr)) {
    return values.flatMap((v) =>
      v.split('\\').map((n) => {
        const x = Number(n.trim());
        if (n.trim() === '' || !Number.isFinite(x)) throw bad(parameter, `"${n}" is not a number (VR ${vr})`);
        return x;
      }),
    );
  }
  if (vr === 'AT') {
    return values.flatMap((v) =>
      v.split('\\').map((n) => {
        if (!HEX8.test(n.trim())) throw bad(parameter, `"${n}" is not a tag of 8 hex digits (VR AT)`);
        return Number.parseInt(n.trim(), 16) >>> 0;
      }),
    );
  }
  if (!CHARSET_VRS.has(vr) && values.some((v) => /[^\x20-\x7e]/.test(v))) {
    throw bad(parameter, `VR ${vr} values are ASCII (PS3.5 6.1.2.3)`);
  }
  return values;
}

function integer(parameter: string, text: string, min: number): number {
  if (!/^\d{1,15}$/.test(text) || Number(text) < min) {
    throw bad(parameter, `"${text}" is not an integer >= ${min}`);
  }
  return Number(text);
}

/**
 * Parses the query of a QIDO-RS search (PS3.18 10.6.1) at `level` under `scope` (the UIDs of the
 * path: /studies/{study}/series...). Throws ERR_DICOMWEB_BAD_PARAMETER, naming the parameter, for
 * an unknown keyword, a malformed tag, a bad limit/offset/fuzzymatching, a value that cannot be of
 * its VR (non-numeric US, non-ASCII DA...), a sequence given a value, a path through a non-sequence.
 * Values are otherwise left to the query engine (date ranges, wild cards).
 */
export function parseQidoQuery(params: URLSearchParams, level: QidoLevel, scope: QidoScope = {}): QidoQuery {
  const builder = new IdentifierBuilder();
  const ignored: string[] = [];
  let includeAll = false;
  let fuzzymatching = false;
  let limit: number | undefined;
  let offset: number | undefined;

  const scoped = new Map<TagNumber, string>();
  if (level !== 'STUDY' && scope.studyInstanceUid !== undefined)
    scoped.set(Tag.StudyInstanceUID, scope.studyInstanceUid);
  if (level === 'IMAGE' && scope.seriesInstanceUid !== undefined)
    scoped.set(Tag.SeriesInstanceUID, scope.seriesInstanceUid);
  for (const [t, uid] of scoped) {
    if (!isValidUid(uid))
      throw bad(
        t === Tag.StudyInstanceUID ? 'StudyInstanceUID' : 'SeriesInstanceUID',
        `"${uid}" in the path is not a UID`,
      );
  }

  const resolvePath = (parameter: string, name: string): Step[] | undefined => {
    const path = name.split('.').map((c) => resolveComponent(c, parameter));
    const skip = path.find((s): s is { ignore: string } => 'ignore' in s);
    if (skip) {
      ignored.push(`${parameter}: ${skip.ignore}`);
      return undefined;
    }
    path.slice(0, -1).forEach((s) => {
      if ('entry' in s && s.entry.vr !== 'SQ') throw bad(parameter, `${s.entry.keyword} is not a sequence`);
    });
    return path;
  };

  for (const [name, value] of params) {
    if (name === '') continue;
    switch (name) {
      case 'includefield':
        for (const field of value.split(',').map((f) => f.trim())) {
          if (field === '') continue;
          if (field === 'all') {
            includeAll = true;
            continue;
          }
          const path = resolvePath(name, field);
          if (path) builder.add(name, path, undefined);
        }
        continue;
      case 'fuzzymatching':
        if (value !== 'true' && value !== 'false') throw bad(name, `"${value}" is not true or false`);
        fuzzymatching = value === 'true';
        continue;
      case 'limit':
        limit = integer(name, value, 1);
        continue;
      case 'offset':
        offset = integer(name, value, 0);
        continue;
    }
    if (REQUEST_PARAMETERS.has(name)) continue;
    if (!isAttributeName(name)) {
      ignored.push(`${name}: not a query parameter of PS3.18 10.6.1.2`);
      continue;
    }
    const path = resolvePath(name, name);
    if (!path) continue;
    const last = path[path.length - 1] as { entry: ElementEntry; tag: TagNumber };
    if (path.length === 1 && scoped.has(last.tag)) {
      if (value !== '' && value !== scoped.get(last.tag))
        ignored.push(`${name}: the path already gives ${scoped.get(last.tag)}`);
      continue;
    }
    if (value !== '' && last.entry.vr === 'SQ') {
      throw bad(name, `a sequence is matched through its item attributes (${name}.Keyword=value)`);
    }
    if (value !== '' && BINARY_VRS.has(last.entry.vr)) {
      ignored.push(`${name}: values of VR ${last.entry.vr} cannot be matched`);
      builder.add(name, path, undefined);
      continue;
    }
    builder.add(name, path, value === '' ? undefined : value);
  }

  // Default return keys (PS3.18 10.6.3.3): the level's, and those of the levels above that the path
  // does not fix (All Series also return study attributes; All Instances study and series ones).
  const defaults: TagNumber[] = [];
  if (level === 'STUDY' || scope.studyInstanceUid === undefined) defaults.push(...QIDO_STUDY_RETURN_KEYS);
  if (level === 'SERIES' || (level === 'IMAGE' && scope.seriesInstanceUid === undefined))
    defaults.push(...QIDO_SERIES_RETURN_KEYS);
  if (level === 'IMAGE') defaults.push(...QIDO_INSTANCE_RETURN_KEYS);
  for (const t of defaults) {
    if (scoped.has(t) || builder.has(t)) continue;
    const entry = lookupTag(t)!;
    builder.add('', [{ entry, tag: t }], undefined);
    if (t === Tag.RequestAttributesSequence) {
      for (const item of QIDO_REQUEST_ATTRIBUTES_ITEM_KEYS)
        builder.add(
          '',
          [
            { entry, tag: t },
            { entry: lookupTag(item)!, tag: item },
          ],
          undefined,
        );
    }
  }

  const identifier = builder.build();
  identifier.setValues(Tag.QueryRetrieveLevel, [level], 'CS');
  for (const [t, uid] of scoped) identifier.setValues(t, [uid], 'UI');
  return {
    identifier,
    includeAll,
    fuzzymatching,
    ...(limit === undefined ? {} : { limit }),
    ...(offset === undefined ? {} : { offset }),
    ignored,
  };
}
