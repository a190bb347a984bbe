/**
 * The query engine over a real SqliteIndex in a temp folder: every matching type at each level and
 * model, escaping, person names, ranges, hierarchy errors, metadata fallback, computed attributes,
 * paging and streaming, cancellation, the retrieve selection, and the SQL of both dialects.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Dataset, datasetToJson, type Value } from '../codec/index.ts';
import { Tag } from '../dictionary/index.ts';
import { SqliteIndex } from './index-sqlite.ts';
import { blobKeyFor } from './keys.ts';
import type { Index, InstanceRecord, SqlValue } from './ports.ts';
import {
  countInstances,
  POSTGRES_DIALECT,
  type PreparedQuery,
  prepareQuery,
  prepareRetrieve,
  QueryError,
  type QueryLevel,
  type QueryModel,
  type QueryOptions,
  querySql,
  type RetrieveItem,
  retrieveSql,
  runQuery,
  SQLITE_DIALECT,
  selectInstances,
} from './query.ts';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const SR = '1.2.840.10008.5.1.4.1.1.88.11';
const OT = '1.2.840.10008.5.1.4.1.1.7';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const JPEG_LOSSLESS = '1.2.840.10008.1.2.4.70';

// ---------------------------------------------------------------------------------------------------
// Fixture: 4 patients, 5 studies, 6 series, 15 instances
// ---------------------------------------------------------------------------------------------------

type Attrs = Partial<Record<keyof typeof Tag, Value | readonly Value[] | readonly Attrs[] | undefined>>;

interface PatientSpec {
  id: string;
  name?: string;
  birthDate?: string;
  sex?: string;
}
interface StudySpec {
  uid: string;
  date?: string;
  time?: string;
  accession?: string;
  issuerOfAccession?: string;
  description?: string;
  referring?: string;
  meta?: Attrs;
}
interface SeriesSpec {
  uid: string;
  modality: string;
  number?: number;
  description?: string;
  requestAttributes?: { RequestedProcedureID: string; ScheduledProcedureStepID: string }[];
  meta?: Attrs;
}
interface InstanceSpec {
  uid: string;
  number: number;
  sopClass: string;
  transferSyntax?: string;
  rows?: number;
}

function fill(ds: Dataset, attrs: Attrs): void {
  for (const [keyword, value] of Object.entries(attrs)) {
    const t = Tag[keyword as keyof typeof Tag];
    if (Array.isArray(value) && value.length > 0 && typeof value[0] === 'object' && value[0] !== null) {
      ds.setSequence(
        t,
        (value as Attrs[]).map((item) => {
          const child = new Dataset({ parent: ds });
          fill(child, item);
          return child;
        }),
      );
    } else if (value !== undefined) {
      ds.setValues(t, (Array.isArray(value) ? value : [value]) as Value[]);
    }
  }
}

function record(p: PatientSpec, st: StudySpec, se: SeriesSpec, i: InstanceSpec): InstanceRecord {
  const ds = new Dataset();
  ds.setValues(Tag.SpecificCharacterSet, ['ISO_IR 192'], 'CS');
  fill(ds, {
    PatientID: p.id,
    PatientName: p.name,
    PatientBirthDate: p.birthDate,
    PatientSex: p.sex,
    StudyInstanceUID: st.uid,
    StudyDate: st.date,
    StudyTime: st.time,
    AccessionNumber: st.accession,
    StudyDescription: st.description,
    ReferringPhysicianName: st.referring,
    SeriesInstanceUID: se.uid,
    Modality: se.modality,
    SeriesNumber: se.number,
    SeriesDescription: se.description,
    RequestAttributesSequence: se.requestAttributes,
    SOPInstanceUID: i.uid,
    SOPClassUID: i.sopClass,
    InstanceNumber: i.number,
    Rows: i.rows,
    ...st.meta,
    ...se.meta,
  });
  const checksum = Buffer.from(i.uid).toString('hex').padEnd(64, '0').slice(0, 64);
  const opt = <T>(key: string, v: T | undefined) => (v === undefined ? {} : { [key]: v });
  return {
    patient: {
      patientId: p.id,
      ...opt('patientName', p.name),
      ...opt('birthDate', p.birthDate),
      ...opt('sex', p.sex),
    },
    study: {
      studyInstanceUid: st.uid,
      ...opt('studyDate', st.date),
      ...opt('studyTime', st.time),
      ...opt('accessionNumber', st.accession),
      ...opt('issuerOfAccessionNumber', st.issuerOfAccession),
      ...opt('studyDescription', st.description),
      ...opt('referringPhysicianName', st.referring),
    },
    series: {
      seriesInstanceUid: se.uid,
      modality: se.modality,
      ...opt('seriesNumber', se.number),
      ...opt('seriesDescription', se.description),
      ...opt('requestAttributes', se.requestAttributes && JSON.stringify(se.requestAttributes)),
    },
    instance: {
      sopInstanceUid: i.uid,
      sopClassUid: i.sopClass,
      instanceNumber: i.number,
      transferSyntaxUid: i.transferSyntax ?? EXPLICIT_LE,
      ...opt('rows', i.rows),
      blobKey: blobKeyFor(i.uid, checksum),
      size: 1000 + i.number,
      checksum,
      receivedAt: '2024-05-01T10:00:00.000Z',
      metadata: JSON.stringify(datasetToJson(ds)),
    },
  };
}

const P1: PatientSpec = { id: 'PID1', name: 'Doe^John', birthDate: '19700101', sex: 'M' };
const P2: PatientSpec = { id: 'PID2', name: 'Müller^Jürgen', sex: 'M' };
const P3: PatientSpec = { id: 'PID_3', name: 'Yamada^Hanako=山田^花子', sex: 'F' };
const P4: PatientSpec = { id: 'PID4', name: 'Paging^Test' };

const S1: StudySpec = {
  uid: '1.2.840.1.1',
  date: '20240105',
  time: '101500',
  accession: 'ACC%1',
  description: 'CT chest [contrast]',
  referring: 'Welby^Marcus',
  meta: { RequestedProcedureDescription: 'Chest CT' },
};
const S2: StudySpec = {
  uid: '1.2.840.1.2',
  date: '20240210',
  time: '083000',
  accession: 'ACC_2',
  issuerOfAccession: 'HOSP_A',
  description: 'MR head',
  meta: {
    IssuerOfAccessionNumberSequence: [
      { LocalNamespaceEntityID: 'HOSP_A', UniversalEntityID: '1.2.3.4', UniversalEntityIDType: 'ISO' },
    ],
  },
};
const S3: StudySpec = {
  uid: '1.2.840.2.1',
  date: '20231231',
  time: '235959',
  accession: 'X[1]',
  description: '100% done',
  referring: 'Yamada^Taro=山田^太郎',
};
const S4: StudySpec = { uid: '1.2.840.3.1', accession: 'ACC-3', description: 'follow up' };
const S5: StudySpec = { uid: '1.2.840.4.1', date: '20220101', accession: 'PAGE' };

const SE11: SeriesSpec = {
  uid: '1.2.840.1.1.1',
  modality: 'CT',
  number: 1,
  description: 'Axial_1',
  meta: { Manufacturer: 'ACME' },
};
const SE12: SeriesSpec = { uid: '1.2.840.1.1.2', modality: 'SR', number: 2, description: 'Report' };
const SE21: SeriesSpec = { uid: '1.2.840.1.2.1', modality: 'MR', number: 1, description: 'T1 sag' };
const SE31: SeriesSpec = { uid: '1.2.840.2.1.1', modality: 'CT', number: 10, description: 'Scout' };
const SE41: SeriesSpec = {
  uid: '1.2.840.3.1.1',
  modality: 'MR',
  number: 3,
  requestAttributes: [
    { RequestedProcedureID: 'RP1', ScheduledProcedureStepID: 'SPS1' },
    { RequestedProcedureID: 'RP2', ScheduledProcedureStepID: 'SPS2' },
  ],
};
const SE51: SeriesSpec = { uid: '1.2.840.4.1.1', modality: 'OT', number: 1 };

function fixture(): InstanceRecord[] {
  const out: InstanceRecord[] = [];
  for (let n = 1; n <= 3; n++)
    out.push(record(P1, S1, SE11, { uid: `${SE11.uid}.${n}`, number: n, sopClass: CT, rows: 512 }));
  out.push(record(P1, S1, SE12, { uid: `${SE12.uid}.1`, number: 1, sopClass: SR }));
  out.push(record(P1, S2, SE21, { uid: `${SE21.uid}.1`, number: 1, sopClass: MR, rows: 256 }));
  out.push(
    record(P1, S2, SE21, { uid: `${SE21.uid}.2`, number: 2, sopClass: MR, transferSyntax: JPEG_LOSSLESS }),
  );
  out.push(record(P2, S3, SE31, { uid: `${SE31.uid}.1`, number: 1, sopClass: CT }));
  out.push(record(P3, S4, SE41, { uid: `${SE41.uid}.1`, number: 1, sopClass: MR }));
  for (let n = 1; n <= 7; n++)
    out.push(record(P4, S5, SE51, { uid: `${SE51.uid}.${n}`, number: n, sopClass: OT }));
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

let dir: string;
let index: SqliteIndex;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-query-'));
  index = SqliteIndex.open(join(dir, 'index.sqlite'));
  const outcomes = index.commitSync(fixture().map((r) => ({ record: r, policy: 'reject' as const })));
  assert.ok(outcomes.every((o) => o.kind === 'stored'));
});
after(() => {
  index.close();
  rmSync(dir, { recursive: true, force: true });
});

/** An identifier: keyword -> value ('' for a return key), sequences as arrays of items. */
function identifier(attrs: Attrs, level?: QueryLevel): Dataset {
  const ds = new Dataset();
  // As the codec decodes a real identifier: its values in its Specific Character Set.
  ds.setValues(Tag.SpecificCharacterSet, ['ISO_IR 192'], 'CS');
  if (level) ds.setValues(Tag.QueryRetrieveLevel, [level], 'CS');
  for (const [keyword, value] of Object.entries(attrs)) {
    const t = Tag[keyword as keyof typeof Tag];
    if (value === '') ds.setValues(t, []);
    else if (Array.isArray(value) && (value.length === 0 || typeof value[0] === 'object')) {
      ds.setSequence(
        t,
        (value as Attrs[]).map((item) => {
          const child = new Dataset({ parent: ds });
          for (const [k, v] of Object.entries(item))
            child.setValues(Tag[k as keyof typeof Tag], v === '' ? [] : [v as Value]);
          return child;
        }),
      );
    } else ds.setValues(t, (Array.isArray(value) ? value : [value]) as Value[]);
  }
  return ds;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

type Opts = Partial<QueryOptions>;

async function find(level: QueryLevel, attrs: Attrs, opts: Opts = {}, on: Index = index): Promise<Dataset[]> {
  const model: QueryModel = opts.model ?? (level === 'PATIENT' ? 'PATIENT_ROOT' : 'STUDY_ROOT');
  return collect(runQuery(on, prepareQuery(identifier(attrs, level), { level, model, ...opts })));
}

/** The values of one key in each result. */
async function findValues(
  level: QueryLevel,
  key: keyof typeof Tag,
  attrs: Attrs,
  opts: Opts = {},
): Promise<(string | undefined)[]> {
  const results = await find(level, { [key]: '', ...attrs }, opts);
  return results.map((r) => r.string(Tag[key]));
}

const studies = (attrs: Attrs, opts: Opts = {}) => findValues('STUDY', 'StudyInstanceUID', attrs, opts);

function throwsQuery(fn: () => unknown, code: string, status: number, t: number, text: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof QueryError, String(err));
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    assert.equal(err.tag, t);
    assert.match(err.message, text);
    return true;
  });
}

/** An Index that counts `select` calls and the rows each returned. */
function spy(inner: Index): Index & { calls: number[] } {
  const calls: number[] = [];
  return Object.assign(Object.create(inner) as Index, {
    calls,
    dialect: inner.dialect,
    async select(sql: string, params: readonly SqlValue[]) {
      const rows = await inner.select(sql, params);
      calls.push(rows.length);
      return rows;
    },
  });
}

// ---------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------

describe('study level (Study Root)', () => {
  test('universal matching returns every study with every key, computed attributes, QueryRetrieveLevel', async () => {
    const results = await find(
      'STUDY',
      {
        StudyInstanceUID: '',
        PatientName: '',
        PatientID: '',
        StudyDate: '',
        AccessionNumber: '',
        ModalitiesInStudy: '',
        SOPClassesInStudy: '',
        NumberOfStudyRelatedSeries: '',
        NumberOfStudyRelatedInstances: '',
        NumberOfPatientRelatedStudies: '',
        NumberOfPatientRelatedInstances: '',
        InstanceAvailability: '',
        RetrieveAETitle: '',
        SpecificCharacterSet: 'ISO_IR 192',
      },
      { retrieveAETitle: 'TESSERA' },
    );
    assert.deepEqual(
      results.map((r) => r.string(Tag.StudyInstanceUID)),
      [S1.uid, S2.uid, S3.uid, S4.uid, S5.uid],
    );
    const s1 = results[0]!;
    assert.equal(s1.string(Tag.QueryRetrieveLevel), 'STUDY');
    assert.equal(s1.string(Tag.PatientName), 'Doe^John');
    assert.equal(s1.string(Tag.PatientID), 'PID1');
    assert.equal(s1.string(Tag.StudyDate), '20240105');
    assert.equal(s1.string(Tag.AccessionNumber), 'ACC%1');
    assert.deepEqual(s1.strings(Tag.ModalitiesInStudy), ['CT', 'SR']);
    assert.deepEqual(s1.strings(Tag.SOPClassesInStudy), [CT, SR].sort());
    assert.equal(s1.number(Tag.NumberOfStudyRelatedSeries), 2);
    assert.equal(s1.number(Tag.NumberOfStudyRelatedInstances), 4);
    assert.equal(s1.number(Tag.NumberOfPatientRelatedStudies), 2);
    assert.equal(s1.number(Tag.NumberOfPatientRelatedInstances), 6);
    assert.equal(s1.string(Tag.InstanceAvailability), 'ONLINE');
    assert.equal(s1.string(Tag.RetrieveAETitle), 'TESSERA');
    // The caller declares the character set: none in the result, values held as Unicode.
    assert.equal(s1.has(Tag.SpecificCharacterSet), false);
    assert.equal(results[2]!.string(Tag.PatientName), 'Müller^Jürgen');
    // Every key of the identifier (but Specific Character Set) is in every result, plus the level.
    for (const r of results) {
      assert.deepEqual(
        [...r].map((e) => e.tag),
        [
          Tag.StudyDate,
          Tag.AccessionNumber,
          Tag.QueryRetrieveLevel,
          Tag.RetrieveAETitle,
          Tag.InstanceAvailability,
          Tag.ModalitiesInStudy,
          Tag.SOPClassesInStudy,
          Tag.PatientName,
          Tag.PatientID,
          Tag.StudyInstanceUID,
          Tag.NumberOfPatientRelatedStudies,
          Tag.NumberOfPatientRelatedInstances,
          Tag.NumberOfStudyRelatedSeries,
          Tag.NumberOfStudyRelatedInstances,
        ],
      );
    }
    // Absent values are zero length.
    assert.equal(results[3]!.get(Tag.StudyDate)?.kind, 'value');
    assert.equal(results[3]!.string(Tag.StudyDate), undefined);
  });

  test('single value matching is exact and case-sensitive', async () => {
    assert.deepEqual(await studies({ AccessionNumber: 'ACC_2' }), [S2.uid]);
    assert.deepEqual(await studies({ StudyDescription: 'MR head' }), [S2.uid]);
    assert.deepEqual(await studies({ StudyDescription: 'mr head' }), []);
    assert.deepEqual(await studies({ StudyDescription: 'MR' }), []);
    assert.deepEqual(await studies({ PatientID: 'PID1', StudyDescription: 'MR head' }), [S2.uid]);
    assert.deepEqual(await studies({ PatientID: 'PID2', StudyDescription: 'MR head' }), []);
  });

  test('wild cards, with SQL metacharacters literal', async () => {
    assert.deepEqual(await studies({ StudyDescription: 'CT*' }), [S1.uid]);
    assert.deepEqual(await studies({ StudyDescription: '?R head' }), [S2.uid]);
    assert.deepEqual(await studies({ AccessionNumber: 'ACC%1' }), [S1.uid]);
    assert.deepEqual(await studies({ AccessionNumber: 'ACC_*' }), [S2.uid]);
    assert.deepEqual(await studies({ AccessionNumber: 'ACC?1' }), [S1.uid]);
    assert.deepEqual(await studies({ AccessionNumber: 'ACC*' }), [S1.uid, S2.uid, S4.uid]);
    assert.deepEqual(await studies({ AccessionNumber: 'X[1]' }), [S3.uid]);
    assert.deepEqual(await studies({ AccessionNumber: 'X[*' }), [S3.uid]);
    assert.deepEqual(await studies({ AccessionNumber: '*]' }), [S3.uid]);
    assert.deepEqual(await studies({ AccessionNumber: '[1]' }), []);
    assert.deepEqual(await studies({ StudyDescription: '100%*' }), [S3.uid]);
    assert.deepEqual(await studies({ StudyDescription: '*%*' }), [S3.uid]);
    assert.deepEqual(await studies({ StudyDescription: '*[contrast]' }), [S1.uid]);
    assert.deepEqual(await studies({ StudyDescription: '*[c*' }), [S1.uid]);
    // `*` alone is universal matching.
    assert.equal((await studies({ StudyDescription: '*' })).length, 5);
  });

  test('person names: case-insensitive by default, alphabetic group, case-sensitive, fuzzy', async () => {
    assert.deepEqual(await studies({ PatientName: 'doe^john' }), [S1.uid, S2.uid]);
    assert.deepEqual(await studies({ PatientName: 'DOE^JOHN^^^' }), [S1.uid, S2.uid]);
    assert.deepEqual(await studies({ PatientName: 'do*' }), [S1.uid, S2.uid]);
    assert.deepEqual(await studies({ PatientName: 'doe' }), []);
    assert.deepEqual(await studies({ PatientName: 'müller^jürgen' }), [S3.uid]);
    assert.deepEqual(await studies({ PatientName: 'yamada^hanako' }), [S4.uid]);
    assert.deepEqual(await studies({ PatientName: 'Yamada^Hanako=山田^花子' }), [S4.uid]);
    assert.deepEqual(await studies({ PatientName: 'Yamada^Hanako=山田^太郎' }), []);
    assert.deepEqual(await studies({ PatientName: 'yam*' }), [S4.uid]);
    assert.deepEqual(await studies({ ReferringPhysicianName: 'welby*' }), [S1.uid]);
    assert.deepEqual(await studies({ ReferringPhysicianName: 'YAMADA^TARO' }), [S3.uid]);

    const exact = { caseInsensitivePersonNames: false };
    assert.deepEqual(await studies({ PatientName: 'doe^john' }, exact), []);
    assert.deepEqual(await studies({ PatientName: 'Doe^John' }, exact), [S1.uid, S2.uid]);
    assert.deepEqual(await studies({ PatientName: 'Yamada^Hanako' }, exact), [S4.uid]);

    const fuzzy = { fuzzyPersonNames: true };
    assert.deepEqual(await studies({ PatientName: 'jo' }, fuzzy), [S1.uid, S2.uid]);
    assert.deepEqual(await studies({ PatientName: 'joh do' }, fuzzy), [S1.uid, S2.uid]);
    assert.deepEqual(await studies({ PatientName: 'ohn' }, fuzzy), []);
    assert.deepEqual(await studies({ PatientName: 'hana' }, fuzzy), [S4.uid]);
    assert.deepEqual(await studies({ PatientName: '山田' }, fuzzy), [S4.uid]);
    assert.deepEqual(await studies({ PatientName: 'jür mü' }, fuzzy), [S3.uid]);
  });

  test('date and time ranges, open ranges, precision of times', async () => {
    assert.deepEqual(await studies({ StudyDate: '20240105' }), [S1.uid]);
    assert.deepEqual(await studies({ StudyDate: '20240101-20240131' }), [S1.uid]);
    assert.deepEqual(await studies({ StudyDate: '-20231231' }), [S3.uid, S5.uid]);
    assert.deepEqual(await studies({ StudyDate: '20240201-' }), [S2.uid]);
    assert.deepEqual(await studies({ StudyDate: '20240201-20240101' }), []);
    assert.deepEqual(await studies({ StudyDate: '20240105\\20231231' }), [S1.uid, S3.uid]);
    assert.deepEqual(await studies({ StudyTime: '0800-1000' }), [S2.uid]);
    assert.deepEqual(await studies({ StudyTime: '0800-10' }), [S1.uid, S2.uid]);
    assert.deepEqual(await studies({ StudyTime: '10' }), [S1.uid]);
    assert.deepEqual(await studies({ StudyTime: '1015' }), [S1.uid]);
    assert.deepEqual(await studies({ StudyTime: '101501' }), []);
    assert.deepEqual(await studies({ StudyTime: '2359-' }), [S3.uid]);
    assert.deepEqual(await studies({ StudyTime: '-08:30' }), [S2.uid]);
    assert.deepEqual(await studies({ StudyDate: '20240101-', StudyTime: '-0900' }), [S2.uid]);
  });

  test('combined date-time ranges (C.2.2.2.5.1) only when asked', async () => {
    const keys = { StudyDate: '20240105-20240210', StudyTime: '120000-090000' };
    assert.deepEqual(await studies(keys), []);
    assert.deepEqual(await studies(keys, { combinedDateTime: true }), [S2.uid]);
    assert.deepEqual(
      await studies({ StudyDate: '20240105-', StudyTime: '1000-' }, { combinedDateTime: true }),
      [S1.uid, S2.uid],
    );
    assert.deepEqual(
      await studies({ StudyDate: '20240105-', StudyTime: '1100-' }, { combinedDateTime: true }),
      [S2.uid],
    );
  });

  test('malformed dates and times: C000 naming the attribute', () => {
    const q = (attrs: Attrs) => () =>
      prepareQuery(identifier(attrs, 'STUDY'), { level: 'STUDY', model: 'STUDY_ROOT' });
    for (const bad of ['2024013', '20241301', '20240132', '2024-01-01', '20240101-2024', '-', 'today']) {
      throwsQuery(
        q({ StudyDate: bad }),
        'ERR_QUERY_BAD_VALUE',
        0xc000,
        Tag.StudyDate,
        /StudyDate \(0008,0020\)/,
      );
    }
    throwsQuery(
      q({ StudyTime: '25' }),
      'ERR_QUERY_BAD_VALUE',
      0xc000,
      Tag.StudyTime,
      /StudyTime \(0008,0030\)/,
    );
    throwsQuery(
      q({ PatientBirthDate: '1970' }),
      'ERR_QUERY_BAD_VALUE',
      0xc000,
      Tag.PatientBirthDate,
      /PatientBirthDate \(0010,0030\)/,
    );
  });

  test('list of UIDs, ModalitiesInStudy and SOPClassesInStudy matching', async () => {
    assert.deepEqual(await studies({ StudyInstanceUID: `${S3.uid}\\${S1.uid}` }), [S1.uid, S3.uid]);
    assert.deepEqual(await studies({ ModalitiesInStudy: 'MR' }), [S2.uid, S4.uid]);
    assert.deepEqual(await studies({ ModalitiesInStudy: 'SR\\MR' }), [S1.uid, S2.uid, S4.uid]);
    assert.deepEqual(await studies({ ModalitiesInStudy: 'S*' }), [S1.uid]);
    assert.deepEqual(await studies({ ModalitiesInStudy: 'XA' }), []);
    assert.deepEqual(await studies({ SOPClassesInStudy: SR }), [S1.uid]);
    assert.deepEqual(await studies({ SOPClassesInStudy: `${OT}\\${SR}` }), [S1.uid, S5.uid]);
  });

  test('InstanceAvailability and RetrieveAETitle as matching keys', async () => {
    assert.equal((await studies({ InstanceAvailability: 'ONLINE' })).length, 5);
    assert.deepEqual(await studies({ InstanceAvailability: 'NEARLINE' }), []);
    const q = prepareQuery(identifier({ RetrieveAETitle: 'OTHER' }, 'STUDY'), {
      level: 'STUDY',
      model: 'STUDY_ROOT',
    });
    assert.deepEqual(q.unsupportedKeys, [Tag.RetrieveAETitle]);
    assert.deepEqual(await studies({ RetrieveAETitle: 'OTHER' }, { retrieveAETitle: 'TESSERA' }), []);
  });

  test('return keys without a column come from the metadata document; matching on them is unsupported', async () => {
    const results = await find('STUDY', { RequestedProcedureDescription: '', StudyComments: '' });
    assert.deepEqual(
      results.map((r) => r.string(Tag.RequestedProcedureDescription)),
      ['Chest CT', undefined, undefined, undefined, undefined],
    );
    assert.ok(results.every((r) => r.has(Tag.StudyComments) && r.string(Tag.StudyComments) === undefined));
    const q = prepareQuery(identifier({ RequestedProcedureDescription: 'Chest*', StudyDate: '' }, 'STUDY'), {
      level: 'STUDY',
      model: 'STUDY_ROOT',
    });
    assert.deepEqual(q.unsupportedKeys, [Tag.RequestedProcedureDescription]);
    assert.equal((await collect(runQuery(index, q))).length, 5);
  });

  test('keys of lower levels are neither matched nor returned; listed as unsupported when valued', async () => {
    const q = prepareQuery(identifier({ StudyInstanceUID: '', Modality: 'MR', SeriesNumber: '' }, 'STUDY'), {
      level: 'STUDY',
      model: 'STUDY_ROOT',
    });
    assert.deepEqual(q.unsupportedKeys, [Tag.Modality]);
    const results = await collect(runQuery(index, q));
    assert.equal(results.length, 5);
    assert.ok(results.every((r) => !r.has(Tag.Modality) && !r.has(Tag.SeriesNumber)));
  });

  test('IssuerOfAccessionNumberSequence: item matching, matching items with the requested keys', async () => {
    const [s2, ...rest] = await find('STUDY', {
      StudyInstanceUID: '',
      IssuerOfAccessionNumberSequence: [{ LocalNamespaceEntityID: 'HOSP_A', UniversalEntityID: '' }],
    });
    assert.equal(rest.length, 0);
    assert.equal(s2!.string(Tag.StudyInstanceUID), S2.uid);
    const items = s2!.items(Tag.IssuerOfAccessionNumberSequence);
    assert.equal(items.length, 1);
    assert.deepEqual(
      [...items[0]!].map((e) => e.tag),
      [Tag.LocalNamespaceEntityID, Tag.UniversalEntityID],
    );
    assert.equal(items[0]!.string(Tag.UniversalEntityID), '1.2.3.4');
    assert.deepEqual(
      await studies({ IssuerOfAccessionNumberSequence: [{ LocalNamespaceEntityID: 'HOSP*' }] }),
      [S2.uid],
    );
    assert.deepEqual(
      await studies({ IssuerOfAccessionNumberSequence: [{ LocalNamespaceEntityID: 'X' }] }),
      [],
    );
    // An empty sequence is universal and returns whole items.
    const all = await find('STUDY', { IssuerOfAccessionNumberSequence: [] });
    assert.equal(all.length, 5);
    assert.equal(
      all[1]!.items(Tag.IssuerOfAccessionNumberSequence)[0]!.string(Tag.UniversalEntityIDType),
      'ISO',
    );
    assert.equal(all[0]!.items(Tag.IssuerOfAccessionNumberSequence).length, 0);
  });
});

describe('series and image levels', () => {
  test('Study Root SERIES: StudyInstanceUID required with a single value (A900 naming it)', () => {
    const q =
      (attrs: Attrs, opts: Opts = {}) =>
      () =>
        prepareQuery(identifier(attrs, 'SERIES'), { level: 'SERIES', model: 'STUDY_ROOT', ...opts });
    throwsQuery(
      q({ SeriesInstanceUID: '' }),
      'ERR_QUERY_MISSING_KEY',
      0xa900,
      Tag.StudyInstanceUID,
      /^StudyInstanceUID \(0020,000D\) is required/,
    );
    throwsQuery(
      q({ StudyInstanceUID: '' }),
      'ERR_QUERY_MISSING_KEY',
      0xa900,
      Tag.StudyInstanceUID,
      /StudyInstanceUID \(0020,000D\)/,
    );
    throwsQuery(
      q({ StudyInstanceUID: `${S1.uid}\\${S2.uid}` }),
      'ERR_QUERY_NOT_SINGLE_VALUE',
      0xa900,
      Tag.StudyInstanceUID,
      /StudyInstanceUID \(0020,000D\) must be a single value/,
    );
    throwsQuery(
      q({ StudyInstanceUID: '1.2.840.1.*' }),
      'ERR_QUERY_NOT_SINGLE_VALUE',
      0xa900,
      Tag.StudyInstanceUID,
      /single value/,
    );
    assert.doesNotThrow(q({ SeriesInstanceUID: '' }, { relational: true }));
  });

  test('series keys, numeric matching, computed counts, metadata fallback', async () => {
    const uid = (attrs: Attrs, opts: Opts = {}) =>
      findValues('SERIES', 'SeriesInstanceUID', { StudyInstanceUID: S1.uid, ...attrs }, opts);
    assert.deepEqual(await uid({}), [SE11.uid, SE12.uid]);
    assert.deepEqual(await uid({ SeriesNumber: '2' }), [SE12.uid]);
    assert.deepEqual(await uid({ SeriesNumber: '02' }), [SE12.uid]);
    assert.deepEqual(await uid({ SeriesNumber: '1\\2' }), [SE11.uid, SE12.uid]);
    assert.deepEqual(await uid({ Modality: 'SR' }), [SE12.uid]);
    assert.deepEqual(await uid({ Modality: 'sr' }), []);
    assert.deepEqual(await uid({ SeriesDescription: 'Axial?1' }), [SE11.uid]);
    assert.deepEqual(await uid({ SeriesDescription: 'Axial%1' }), []);
    assert.throws(
      () =>
        prepareQuery(identifier({ StudyInstanceUID: S1.uid, SeriesNumber: 'two' }, 'SERIES'), {
          level: 'SERIES',
          model: 'STUDY_ROOT',
        }),
      {
        code: 'ERR_QUERY_BAD_VALUE',
        status: 0xc000,
        tag: Tag.SeriesNumber,
        message: /SeriesNumber \(0020,0011\)/,
      },
    );

    const [first] = await find('SERIES', {
      StudyInstanceUID: S1.uid,
      SeriesNumber: '1',
      NumberOfSeriesRelatedInstances: '',
      Manufacturer: '',
      PatientName: '',
      StudyDate: '',
      ModalitiesInStudy: '',
      SOPInstanceUID: '',
    });
    assert.equal(first!.string(Tag.QueryRetrieveLevel), 'SERIES');
    assert.equal(first!.number(Tag.SeriesNumber), 1);
    assert.equal(first!.number(Tag.NumberOfSeriesRelatedInstances), 3);
    assert.equal(first!.string(Tag.Manufacturer), 'ACME');
    assert.equal(first!.string(Tag.PatientName), 'Doe^John');
    assert.equal(first!.string(Tag.StudyDate), '20240105');
    assert.deepEqual(first!.strings(Tag.ModalitiesInStudy), ['CT', 'SR']);
    assert.equal(first!.has(Tag.SOPInstanceUID), false);

    const q = prepareQuery(identifier({ StudyInstanceUID: S1.uid, Manufacturer: 'ACME' }, 'SERIES'), {
      level: 'SERIES',
      model: 'STUDY_ROOT',
    });
    assert.deepEqual(q.unsupportedKeys, [Tag.Manufacturer]);
  });

  test('relational SERIES query across studies, with higher-level keys', async () => {
    const relational = { relational: true };
    assert.deepEqual(await findValues('SERIES', 'SeriesInstanceUID', { Modality: 'MR' }, relational), [
      SE21.uid,
      SE41.uid,
    ]);
    assert.deepEqual(
      await findValues('SERIES', 'SeriesInstanceUID', { PatientName: 'doe*', Modality: 'CT' }, relational),
      [SE11.uid],
    );
    assert.deepEqual(await findValues('SERIES', 'StudyInstanceUID', { Modality: 'CT' }, relational), [
      S1.uid,
      S3.uid,
    ]);
  });

  test('RequestAttributesSequence matching on the JSON column, items filtered and trimmed', async () => {
    const relational = { relational: true };
    const [hit, ...none] = await find(
      'SERIES',
      {
        SeriesInstanceUID: '',
        RequestAttributesSequence: [{ RequestedProcedureID: 'RP1', ScheduledProcedureStepID: '' }],
      },
      relational,
    );
    assert.equal(none.length, 0);
    assert.equal(hit!.string(Tag.SeriesInstanceUID), SE41.uid);
    const items = hit!.items(Tag.RequestAttributesSequence);
    assert.equal(items.length, 1);
    assert.equal(items[0]!.string(Tag.RequestedProcedureID), 'RP1');
    assert.equal(items[0]!.string(Tag.ScheduledProcedureStepID), 'SPS1');
    const seq = (item: Attrs) =>
      findValues('SERIES', 'SeriesInstanceUID', { RequestAttributesSequence: [item] }, relational);
    assert.deepEqual(await seq({ ScheduledProcedureStepID: 'SPS2' }), [SE41.uid]);
    assert.deepEqual(await seq({ RequestedProcedureID: 'RP?' }), [SE41.uid]);
    assert.deepEqual(await seq({ RequestedProcedureID: 'RP1', ScheduledProcedureStepID: 'SPS2' }), []);
    assert.deepEqual(await seq({ RequestedProcedureID: 'RP9' }), []);
    // An item key we cannot match: ignored and reported.
    const q = prepareQuery(
      identifier({ RequestAttributesSequence: [{ RequestedProcedureDescription: 'x' }] }, 'SERIES'),
      { level: 'SERIES', model: 'STUDY_ROOT', relational: true },
    );
    assert.deepEqual(q.unsupportedKeys, [Tag.RequestAttributesSequence]);
    assert.equal((await collect(runQuery(index, q))).length, 6);
  });

  test('Study Root IMAGE: study and series required; image keys and AvailableTransferSyntaxUID', async () => {
    throwsQuery(
      () =>
        prepareQuery(identifier({ StudyInstanceUID: S2.uid, SOPInstanceUID: '' }, 'IMAGE'), {
          level: 'IMAGE',
          model: 'STUDY_ROOT',
        }),
      'ERR_QUERY_MISSING_KEY',
      0xa900,
      Tag.SeriesInstanceUID,
      /SeriesInstanceUID \(0020,000E\)/,
    );
    const keys = { StudyInstanceUID: S2.uid, SeriesInstanceUID: SE21.uid };
    const results = await find('IMAGE', {
      ...keys,
      SOPInstanceUID: '',
      SOPClassUID: '',
      InstanceNumber: '',
      AvailableTransferSyntaxUID: '',
      Rows: '',
      NumberOfFrames: '',
    });
    assert.deepEqual(
      results.map((r) => [
        r.string(Tag.SOPInstanceUID),
        r.number(Tag.InstanceNumber),
        r.string(Tag.AvailableTransferSyntaxUID),
      ]),
      [
        [`${SE21.uid}.1`, 1, EXPLICIT_LE],
        [`${SE21.uid}.2`, 2, JPEG_LOSSLESS],
      ],
    );
    assert.equal(results[0]!.number(Tag.Rows), 256);
    assert.equal(results[0]!.string(Tag.QueryRetrieveLevel), 'IMAGE');
    assert.equal(results[1]!.has(Tag.Rows), true);
    assert.equal(results[1]!.number(Tag.Rows), undefined);
    const sop = (attrs: Attrs) => findValues('IMAGE', 'SOPInstanceUID', { ...keys, ...attrs });
    assert.deepEqual(await sop({ InstanceNumber: '2' }), [`${SE21.uid}.2`]);
    assert.deepEqual(await sop({ AvailableTransferSyntaxUID: JPEG_LOSSLESS }), [`${SE21.uid}.2`]);
    assert.deepEqual(await sop({ SOPInstanceUID: `${SE21.uid}.2\\${SE21.uid}.1\\1.2.3` }), [
      `${SE21.uid}.1`,
      `${SE21.uid}.2`,
    ]);
    const ct = { StudyInstanceUID: S1.uid, SeriesInstanceUID: SE11.uid };
    assert.equal((await findValues('IMAGE', 'SOPInstanceUID', { ...ct, Rows: 512 })).length, 3);
    assert.equal((await findValues('IMAGE', 'SOPInstanceUID', { ...ct, Rows: 256 })).length, 0);
    assert.deepEqual(await findValues('IMAGE', 'SOPInstanceUID', { SOPClassUID: SR }, { relational: true }), [
      `${SE12.uid}.1`,
    ]);
  });
});

describe('patient level and models', () => {
  test('Patient Root PATIENT: patient keys, counts, wild cards with `_` literal', async () => {
    const results = await find('PATIENT', {
      PatientID: '',
      PatientName: '',
      PatientSex: '',
      NumberOfPatientRelatedStudies: '',
      NumberOfPatientRelatedSeries: '',
      NumberOfPatientRelatedInstances: '',
    });
    assert.deepEqual(
      results.map((r) => [
        r.string(Tag.PatientID),
        r.string(Tag.PatientName),
        r.number(Tag.NumberOfPatientRelatedStudies),
        r.number(Tag.NumberOfPatientRelatedSeries),
        r.number(Tag.NumberOfPatientRelatedInstances),
      ]),
      [
        ['PID1', 'Doe^John', 2, 3, 6],
        ['PID2', 'Müller^Jürgen', 1, 1, 1],
        ['PID_3', 'Yamada^Hanako=山田^花子', 1, 1, 1],
        ['PID4', 'Paging^Test', 1, 1, 7],
      ],
    );
    assert.equal(results[0]!.string(Tag.QueryRetrieveLevel), 'PATIENT');
    const ids = (attrs: Attrs) => findValues('PATIENT', 'PatientID', attrs);
    assert.deepEqual(await ids({ PatientID: 'PID_3' }), ['PID_3']);
    assert.deepEqual(await ids({ PatientID: 'PID_*' }), ['PID_3']);
    assert.deepEqual(await ids({ PatientID: 'PID?' }), ['PID1', 'PID2', 'PID4']);
    assert.deepEqual(await ids({ PatientSex: 'F' }), ['PID_3']);
    assert.deepEqual(await ids({ PatientBirthDate: '19600101-19791231' }), ['PID1']);
    assert.deepEqual(await ids({ PatientName: 'MÜLLER*' }), ['PID2']);
    // A study key at patient level: dropped, reported.
    const q = prepareQuery(identifier({ PatientID: '', StudyDescription: 'MR head' }, 'PATIENT'), {
      level: 'PATIENT',
      model: 'PATIENT_ROOT',
    });
    assert.deepEqual(q.unsupportedKeys, [Tag.StudyDescription]);
    const all = await collect(runQuery(index, q));
    assert.equal(all.length, 4);
    assert.ok(all.every((r) => !r.has(Tag.StudyDescription)));
  });

  test('Patient Root STUDY needs PatientID; SERIES needs PatientID and StudyInstanceUID', async () => {
    const model = { model: 'PATIENT_ROOT' as const };
    throwsQuery(
      () => prepareQuery(identifier({ StudyInstanceUID: '' }, 'STUDY'), { level: 'STUDY', ...model }),
      'ERR_QUERY_MISSING_KEY',
      0xa900,
      Tag.PatientID,
      /PatientID \(0010,0020\) is required/,
    );
    throwsQuery(
      () => prepareQuery(identifier({ PatientID: 'PID*' }, 'STUDY'), { level: 'STUDY', ...model }),
      'ERR_QUERY_NOT_SINGLE_VALUE',
      0xa900,
      Tag.PatientID,
      /PatientID \(0010,0020\)/,
    );
    throwsQuery(
      () => prepareQuery(identifier({ PatientID: 'PID1' }, 'SERIES'), { level: 'SERIES', ...model }),
      'ERR_QUERY_MISSING_KEY',
      0xa900,
      Tag.StudyInstanceUID,
      /StudyInstanceUID/,
    );
    assert.deepEqual(await studies({ PatientID: 'PID1' }, model), [S1.uid, S2.uid]);
    assert.deepEqual(
      await findValues('SERIES', 'SeriesInstanceUID', { PatientID: 'PID1', StudyInstanceUID: S2.uid }, model),
      [SE21.uid],
    );
    assert.deepEqual(
      await findValues('SERIES', 'SeriesInstanceUID', { PatientID: 'PID2', StudyInstanceUID: S2.uid }, model),
      [],
    );
    assert.deepEqual(
      await findValues(
        'IMAGE',
        'SOPInstanceUID',
        { PatientID: 'PID2', StudyInstanceUID: S3.uid, SeriesInstanceUID: SE31.uid },
        model,
      ),
      [`${SE31.uid}.1`],
    );
  });

  test('levels of each model; the identifier level must agree', () => {
    throwsQuery(
      () => prepareQuery(identifier({ PatientID: '' }), { level: 'PATIENT', model: 'STUDY_ROOT' }),
      'ERR_QUERY_BAD_LEVEL',
      0xa900,
      Tag.QueryRetrieveLevel,
      /QueryRetrieveLevel \(0008,0052\) PATIENT is not a level of the STUDY_ROOT/,
    );
    for (const level of ['SERIES', 'IMAGE'] as const) {
      throwsQuery(
        () =>
          prepareQuery(identifier({ PatientID: 'PID1' }), {
            level,
            model: 'PATIENT_STUDY_ONLY',
            relational: true,
          }),
        'ERR_QUERY_BAD_LEVEL',
        0xa900,
        Tag.QueryRetrieveLevel,
        /PATIENT_STUDY_ONLY/,
      );
    }
    throwsQuery(
      () => prepareQuery(identifier({ PatientID: '' }, 'SERIES'), { level: 'STUDY', model: 'STUDY_ROOT' }),
      'ERR_QUERY_BAD_LEVEL',
      0xa900,
      Tag.QueryRetrieveLevel,
      /is SERIES in the identifier/,
    );
    assert.throws(() => prepareQuery(identifier({}), { level: 'STUDY', model: 'STUDY_ROOT', pageSize: 0 }), {
      code: 'ERR_QUERY_BAD_OPTIONS',
      status: 0xc000,
    });
    assert.throws(() => prepareQuery(identifier({}), { level: 'STUDY', model: 'STUDY_ROOT', limit: -1 }), {
      code: 'ERR_QUERY_BAD_OPTIONS',
    });
  });

  test('Patient/Study Only: PATIENT and STUDY', async () => {
    const model = { model: 'PATIENT_STUDY_ONLY' as const };
    assert.deepEqual(await findValues('PATIENT', 'PatientID', { PatientName: 'doe^john' }, model), ['PID1']);
    assert.deepEqual(await studies({ PatientID: 'PID1', StudyDate: '20240201-' }, model), [S2.uid]);
  });
});

describe('paging, limits and cancellation', () => {
  const page7 = { StudyInstanceUID: S5.uid, SeriesInstanceUID: SE51.uid, SOPInstanceUID: '' };
  const uids = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, k) => `${SE51.uid}.${from + k}`);

  async function image(opts: Opts, on: Index = index, signal?: AbortSignal): Promise<string[]> {
    const q = prepareQuery(identifier(page7, 'IMAGE'), { level: 'IMAGE', model: 'STUDY_ROOT', ...opts });
    const out: string[] = [];
    for await (const r of runQuery(on, q, signal)) out.push(r.string(Tag.SOPInstanceUID)!);
    return out;
  }

  test('pageSize 2 with 7 matches yields all 7 exactly once, in 4 pages', async () => {
    const s = spy(index);
    assert.deepEqual(await image({ pageSize: 2 }, s), uids(1, 7));
    assert.deepEqual(s.calls, [2, 2, 2, 1]);
  });

  test('limit and offset', async () => {
    const s = spy(index);
    assert.deepEqual(await image({ pageSize: 2, limit: 3, offset: 2 }, s), uids(3, 5));
    assert.deepEqual(s.calls, [2, 1]);
    assert.deepEqual(await image({ offset: 6, pageSize: 2 }), uids(7, 7));
    assert.deepEqual(await image({ offset: 7 }), []);
    assert.deepEqual(await image({ limit: 7, pageSize: 7 }, s), uids(1, 7));
    assert.deepEqual(s.calls, [2, 1, 7]);
    const none = spy(index);
    assert.deepEqual(await image({ limit: 0 }, none), []);
    assert.deepEqual(none.calls, []);
  });

  test('an aborted signal stops the stream silently', async () => {
    const before = new AbortController();
    before.abort();
    const s = spy(index);
    assert.deepEqual(await image({}, s, before.signal), []);
    assert.deepEqual(s.calls, []);

    const controller = new AbortController();
    const q = prepareQuery(identifier(page7, 'IMAGE'), { level: 'IMAGE', model: 'STUDY_ROOT', pageSize: 5 });
    const seen: string[] = [];
    for await (const r of runQuery(index, q, controller.signal)) {
      seen.push(r.string(Tag.SOPInstanceUID)!);
      if (seen.length === 2) controller.abort();
    }
    assert.deepEqual(seen, uids(1, 2));
  });

  test('2000 matches are streamed page by page, never fetched at once', async () => {
    const big = SqliteIndex.open(join(dir, 'big.sqlite'), { synchronous: 'NORMAL' });
    try {
      const p = { id: 'BIG' };
      const st = { uid: '1.2.840.9.1' };
      const se = { uid: '1.2.840.9.1.1', modality: 'CT' };
      const records = Array.from({ length: 2000 }, (_, k) =>
        record(p, st, se, { uid: `1.2.840.9.1.1.${k + 1}`, number: k + 1, sopClass: CT }),
      );
      big.commitSync(records.map((r) => ({ record: r, policy: 'reject' as const })));
      const s = spy(big);
      const q = prepareQuery(
        identifier({ StudyInstanceUID: st.uid, SeriesInstanceUID: se.uid, InstanceNumber: '' }, 'IMAGE'),
        {
          level: 'IMAGE',
          model: 'STUDY_ROOT',
        },
      );
      const it = runQuery(s, q);
      const first = await it.next();
      assert.equal((first.value as Dataset).number(Tag.InstanceNumber), 1);
      assert.deepEqual(s.calls, [256]);
      let count = 1;
      let last = 1;
      for await (const r of it) {
        const n = r.number(Tag.InstanceNumber)!;
        assert.equal(n, last + 1);
        last = n;
        count++;
      }
      assert.equal(count, 2000);
      assert.deepEqual(s.calls, [256, 256, 256, 256, 256, 256, 256, 208]);
    } finally {
      big.close();
    }
  });
});

describe('retrieve selection', () => {
  const select = async (attrs: Attrs, level: QueryLevel, model: QueryModel = 'STUDY_ROOT') => {
    const r = prepareRetrieve(identifier(attrs, level), { level, model });
    const items = await collect(selectInstances(index, r));
    assert.equal(await countInstances(index, r), items.length);
    return items;
  };
  const sops = (items: readonly RetrieveItem[]) => items.map((i) => i.sopInstanceUid);

  test('STUDY level with a UID list; items carry what C-MOVE/C-GET/WADO need', async () => {
    const items = await select({ StudyInstanceUID: `${S3.uid}\\${S2.uid}` }, 'STUDY');
    assert.deepEqual(sops(items), [`${SE21.uid}.1`, `${SE21.uid}.2`, `${SE31.uid}.1`]);
    const jpeg = items[1]!;
    assert.equal(jpeg.sopClassUid, MR);
    assert.equal(jpeg.transferSyntaxUid, JPEG_LOSSLESS);
    assert.equal(jpeg.studyInstanceUid, S2.uid);
    assert.equal(jpeg.seriesInstanceUid, SE21.uid);
    assert.equal(jpeg.size, 1002);
    assert.equal(jpeg.blobKey, index.instanceSync(jpeg.sopInstanceUid)!.blobKey);
    assert.deepEqual(await select({ StudyInstanceUID: '9.9.9' }, 'STUDY'), []);
  });

  test('SERIES and IMAGE levels: UID lists at the level, single values above', async () => {
    assert.deepEqual(
      sops(await select({ StudyInstanceUID: S1.uid, SeriesInstanceUID: SE12.uid }, 'SERIES')),
      [`${SE12.uid}.1`],
    );
    assert.equal(
      (await select({ StudyInstanceUID: S1.uid, SeriesInstanceUID: `${SE11.uid}\\${SE12.uid}` }, 'SERIES'))
        .length,
      4,
    );
    // A series that is not in the named study selects nothing.
    assert.deepEqual(await select({ StudyInstanceUID: S2.uid, SeriesInstanceUID: SE12.uid }, 'SERIES'), []);
    assert.deepEqual(
      sops(
        await select(
          {
            StudyInstanceUID: S1.uid,
            SeriesInstanceUID: SE11.uid,
            SOPInstanceUID: `${SE11.uid}.3\\${SE11.uid}.1`,
          },
          'IMAGE',
        ),
      ),
      [`${SE11.uid}.1`, `${SE11.uid}.3`],
    );
  });

  test('Patient Root: PATIENT level lists, PatientID required above', async () => {
    const items = await select({ PatientID: 'PID1\\PID2' }, 'PATIENT', 'PATIENT_ROOT');
    assert.equal(items.length, 7);
    assert.equal(
      await countInstances(
        index,
        prepareRetrieve(identifier({ PatientID: 'PID4' }), { level: 'PATIENT', model: 'PATIENT_ROOT' }),
      ),
      7,
    );
    assert.equal(
      (await select({ PatientID: 'PID1', StudyInstanceUID: S2.uid }, 'STUDY', 'PATIENT_ROOT')).length,
      2,
    );
    assert.deepEqual(
      await select({ PatientID: 'PID2', StudyInstanceUID: S2.uid }, 'STUDY', 'PATIENT_ROOT'),
      [],
    );
  });

  test('validation errors name the attribute', () => {
    const r =
      (attrs: Attrs, level: QueryLevel, model: QueryModel = 'STUDY_ROOT', relational = false) =>
      () =>
        prepareRetrieve(identifier(attrs, level), { level, model, relational });
    throwsQuery(
      r({}, 'STUDY'),
      'ERR_QUERY_MISSING_KEY',
      0xa900,
      Tag.StudyInstanceUID,
      /StudyInstanceUID \(0020,000D\) is required/,
    );
    throwsQuery(
      r({ SeriesInstanceUID: SE11.uid }, 'SERIES'),
      'ERR_QUERY_MISSING_KEY',
      0xa900,
      Tag.StudyInstanceUID,
      /StudyInstanceUID \(0020,000D\)/,
    );
    throwsQuery(
      r({ StudyInstanceUID: `${S1.uid}\\${S2.uid}`, SeriesInstanceUID: SE11.uid }, 'SERIES'),
      'ERR_QUERY_NOT_SINGLE_VALUE',
      0xa900,
      Tag.StudyInstanceUID,
      /single value/,
    );
    throwsQuery(
      r({ StudyInstanceUID: '1.2.*' }, 'STUDY'),
      'ERR_QUERY_NOT_SINGLE_VALUE',
      0xa900,
      Tag.StudyInstanceUID,
      /wild cards/,
    );
    throwsQuery(
      r({ StudyInstanceUID: S1.uid }, 'STUDY', 'PATIENT_ROOT'),
      'ERR_QUERY_MISSING_KEY',
      0xa900,
      Tag.PatientID,
      /PatientID \(0010,0020\)/,
    );
    throwsQuery(
      r({ StudyInstanceUID: S1.uid, SeriesInstanceUID: SE11.uid }, 'IMAGE'),
      'ERR_QUERY_MISSING_KEY',
      0xa900,
      Tag.SOPInstanceUID,
      /SOPInstanceUID \(0008,0018\)/,
    );
    throwsQuery(
      r({ PatientID: 'PID1' }, 'PATIENT'),
      'ERR_QUERY_BAD_LEVEL',
      0xa900,
      Tag.QueryRetrieveLevel,
      /STUDY_ROOT/,
    );
    assert.doesNotThrow(r({ SeriesInstanceUID: SE11.uid }, 'SERIES', 'STUDY_ROOT', true));
  });

  test('selection pages by id', async () => {
    const r = prepareRetrieve(identifier({ StudyInstanceUID: S5.uid }), {
      level: 'STUDY',
      model: 'STUDY_ROOT',
      pageSize: 3,
    });
    const s = spy(index);
    const items = await collect(selectInstances(s, r));
    assert.deepEqual(
      sops(items),
      Array.from({ length: 7 }, (_, k) => `${SE51.uid}.${k + 1}`),
    );
    assert.deepEqual(s.calls, [3, 3, 1]);
  });
});

describe('SQL dialects and the index port', () => {
  test('wild card patterns are escaped per dialect', () => {
    assert.equal(SQLITE_DIALECT.pattern([{ literal: 'a*b?[c]%_\\' }, '*', '?']), 'a[*]b[?][[]c[]]%_\\*?');
    assert.equal(POSTGRES_DIALECT.pattern([{ literal: 'a%b_c\\d*[' }, '*', '?']), 'a\\%b\\_c\\\\d*[%_');
    assert.equal(SQLITE_DIALECT.like('x', '?'), 'x GLOB ?');
    assert.equal(POSTGRES_DIALECT.like('x', '$3'), "x LIKE $3 ESCAPE '\\'");
  });

  test('PostgreSQL SQL text: numbered placeholders in order, LIKE with ESCAPE', () => {
    const q: PreparedQuery = prepareQuery(
      identifier(
        {
          PatientName: 'doe*',
          AccessionNumber: 'A%_*',
          StudyDate: '20240101-',
          StudyTime: '10',
          ModalitiesInStudy: 'CT\\MR',
          StudyDescription: '',
          RequestedProcedureDescription: '',
        },
        'STUDY',
      ),
      { level: 'STUDY', model: 'STUDY_ROOT', limit: 10 },
    );
    const { sql, params } = querySql(q, POSTGRES_DIALECT, { after: 5, limit: 10, offset: 0 });
    const numbers = [...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1]));
    assert.deepEqual(
      numbers,
      params.map((_, k) => k + 1),
    );
    assert.ok(!sql.includes('?'), sql);
    assert.match(sql, /^SELECT st\.id AS id, /);
    assert.match(sql, /FROM studies st WHERE /);
    assert.match(sql, /st\.patient_name_norm LIKE \$\d+ ESCAPE '\\'/);
    assert.match(sql, /st\.accession_number LIKE \$\d+ ESCAPE '\\'/);
    assert.match(
      sql,
      /EXISTS \(SELECT 1 FROM study_modalities sm WHERE sm\.study_fk = st\.id AND sm\.modality IN \(\$\d+, \$\d+\)\)/,
    );
    assert.match(sql, /rpad\(split_part\(replace\(st\.study_time/);
    assert.match(sql, /\(SELECT d\.metadata FROM instance_documents d WHERE d\.instance_fk = \(SELECT min/);
    assert.match(sql, /ORDER BY st\.id LIMIT \$\d+ OFFSET \$\d+$/);
    // In tag order: StudyDate, StudyTime, AccessionNumber, ModalitiesInStudy, PatientName.
    assert.deepEqual(params, [
      '20240101',
      '100000.000000',
      '105959.999999',
      'A\\%\\_%',
      'CT',
      'MR',
      'DOE%',
      'DOE%=%',
      5,
      10,
      0,
    ]);
    // The same plan in SQLite: `?` placeholders, GLOB, the same parameters but for the patterns.
    const lite = querySql(q, SQLITE_DIALECT, { after: 5, limit: 10, offset: 0 });
    assert.equal(lite.sql.split('?').length - 1, lite.params.length);
    assert.deepEqual(lite.params.slice(3, 8), ['A%_*', 'CT', 'MR', 'DOE*', 'DOE*=*']);
  });

  test('PostgreSQL retrieve SQL and the RequestAttributes JSON condition', () => {
    const r = prepareRetrieve(identifier({ PatientID: 'P1', StudyInstanceUID: '1.2\\1.3' }), {
      level: 'STUDY',
      model: 'PATIENT_ROOT',
    });
    const { sql, params } = retrieveSql(r, POSTGRES_DIALECT);
    assert.equal(
      sql,
      'SELECT i.id AS id, i.sop_instance_uid, i.sop_class_uid, i.transfer_syntax_uid, i.blob_key, i.size,' +
        ' se.series_instance_uid, st.study_instance_uid FROM instances i JOIN series se ON se.id = i.series_fk' +
        ' JOIN studies st ON st.id = se.study_fk JOIN patients p ON p.id = st.patient_fk' +
        ' WHERE p.patient_id = $1 AND st.study_instance_uid IN ($2, $3) AND i.id > $4 ORDER BY i.id LIMIT $5',
    );
    assert.deepEqual(params, ['P1', '1.2', '1.3', 0, 256]);
    const q = prepareQuery(
      identifier({ RequestAttributesSequence: [{ RequestedProcedureID: 'RP_1' }] }, 'SERIES'),
      {
        level: 'SERIES',
        model: 'STUDY_ROOT',
        relational: true,
      },
    );
    const pg = querySql(q, POSTGRES_DIALECT);
    assert.match(
      pg.sql,
      /EXISTS \(SELECT 1 FROM jsonb_array_elements\(CAST\(se\.request_attributes AS jsonb\)\) AS ra\(value\) WHERE \(ra\.value ->> 'RequestedProcedureID'\) = \$1\)/,
    );
    assert.equal(pg.params[0], 'RP_1');
  });

  test('SqliteIndex.select: bounded statement cache, read-only statements only', async () => {
    for (let k = 0; k < 100; k++) {
      const rows = await index.select(`SELECT ${k} AS k, count(*) AS n FROM studies WHERE id > ?`, [0]);
      assert.deepEqual(rows, [{ k, n: 5 }]);
    }
    assert.ok(index.cachedSelects <= 64, String(index.cachedSelects));
    await assert.rejects(index.select('DELETE FROM totals', []), { code: 'ERR_ARCHIVE_INDEX' });
    await assert.rejects(index.select('SELECT nope FROM nowhere', []), { code: 'ERR_ARCHIVE_INDEX' });
    assert.equal(index.countsSync().instances, 15);
  });
});
