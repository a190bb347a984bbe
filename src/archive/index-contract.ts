/**
 * The behaviour every `Index` adapter must have, as a test suite registered against a factory of
 * fresh, empty indexes: `indexContract({ name, open })`. Run for SqliteIndex by
 * index-sqlite.contract.test.ts and for PostgresIndex by index-postgres.int.test.ts; the cases are
 * the important ones of index-sqlite.test.ts (duplicate policies, the patient identity rule, the
 * supplement rule, placement, computed counts and verify() after inserts / overwrites / deletes,
 * allBlobKeys with deletes while iterating) plus what the port promises of `select` and of the
 * shapes `instance` / `study` / `series` return.
 *
 * Test code (it registers node:test tests), kept out of the `*.test.ts` pattern so that it only runs
 * through the files that call it. The record helpers are exported for those files.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { blobKeyFor } from './keys.ts';
import type { CommitItem, DuplicatePolicy, Index, InstanceRecord } from './ports.ts';

export const CT = '1.2.840.10008.5.1.4.1.1.2';
export const MR = '1.2.840.10008.5.1.4.1.1.4';
export const SR = '1.2.840.10008.5.1.4.1.1.88.11';

export interface Spec {
  sop: string;
  series?: string;
  study?: string;
  patientId?: string;
  modality?: string | undefined;
  sopClass?: string;
  content?: string;
  patient?: Partial<InstanceRecord['patient']>;
  studyAttrs?: Partial<InstanceRecord['study']>;
  seriesAttrs?: Partial<InstanceRecord['series']>;
  instanceAttrs?: Partial<InstanceRecord['instance']>;
}

/** A fake sha256 hex of a content string (its char codes, padded). */
export function checksumOf(content: string): string {
  let h = '';
  for (const c of content) h += c.charCodeAt(0).toString(16).padStart(2, '0');
  return h.padEnd(64, '0').slice(0, 64);
}

/** A record with defaults: study 1.2.3, series 1.2.3.1, patient P1, CT, size 100 + content length. */
export function rec(spec: Spec): InstanceRecord {
  const content = spec.content ?? 'v1';
  const checksum = checksumOf(content);
  const modality = 'modality' in spec ? spec.modality : 'CT';
  return {
    patient: { patientId: spec.patientId ?? 'P1', ...spec.patient },
    study: { studyInstanceUid: spec.study ?? '1.2.3', ...spec.studyAttrs },
    series: {
      seriesInstanceUid: spec.series ?? '1.2.3.1',
      ...(modality === undefined ? {} : { modality }),
      ...spec.seriesAttrs,
    },
    instance: {
      sopInstanceUid: spec.sop,
      sopClassUid: spec.sopClass ?? CT,
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      blobKey: blobKeyFor(spec.sop, checksum),
      size: 100 + content.length,
      checksum,
      receivedAt: '2024-05-01T10:00:00.000Z',
      metadata: JSON.stringify({ content }),
      ...spec.instanceAttrs,
    },
  };
}

export function items(policy: DuplicatePolicy, ...records: InstanceRecord[]): CommitItem[] {
  return records.map((record) => ({ record, policy }));
}

export interface ContractTarget {
  /** Shown in the suite's name. */
  readonly name: string;
  /** A new, empty index (each test closes the one it opened). */
  open(): Promise<Index>;
}

async function withIndex(target: ContractTarget, fn: (index: Index) => Promise<void>): Promise<void> {
  const index = await target.open();
  try {
    await fn(index);
  } finally {
    await index.close();
  }
}

/** Registers the contract tests for `target`. */
export function indexContract(target: ContractTarget): void {
  const run = (fn: (index: Index) => Promise<void>) => () => withIndex(target, fn);

  describe(`Index contract: ${target.name}`, () => {
    describe('commit: duplicate policies', () => {
      test(
        'new, identical, conflicting and overwritten copies in one batch: outcomes and counts',
        run(async (index) => {
          const a1 = rec({ sop: '1.5.1', content: 'first' });
          const a2 = rec({ sop: '1.5.1', content: 'second!' });
          const b = rec({ sop: '1.5.2', content: 'b' });
          const outcomes = await index.commit([
            { record: a1, policy: 'reject' },
            { record: b, policy: 'reject' },
            { record: a1, policy: 'accept-if-identical' },
            { record: a2, policy: 'accept-if-identical' },
            { record: a1, policy: 'reject' },
            { record: a2, policy: 'reject' },
            { record: a1, policy: 'overwrite' },
            { record: a2, policy: 'overwrite' },
            { record: a2, policy: 'overwrite' },
            { record: a2, policy: 'accept-if-identical' },
          ]);
          const k1 = a1.instance.blobKey;
          const k2 = a2.instance.blobKey;
          const c1 = a1.instance.checksum;
          assert.deepEqual(outcomes, [
            { kind: 'stored' },
            { kind: 'stored' },
            { kind: 'identical', existingBlobKey: k1 },
            { kind: 'conflict', existingChecksum: c1, existingBlobKey: k1 },
            { kind: 'duplicate-rejected', existingChecksum: c1, existingBlobKey: k1 },
            { kind: 'duplicate-rejected', existingChecksum: c1, existingBlobKey: k1 },
            { kind: 'identical', existingBlobKey: k1 },
            { kind: 'replaced', oldBlobKey: k1 },
            { kind: 'identical', existingBlobKey: k2 },
            { kind: 'identical', existingBlobKey: k2 },
          ]);
          assert.deepEqual(await index.counts(), {
            patients: 1,
            studies: 1,
            series: 1,
            instances: 2,
            bytes: a2.instance.size + b.instance.size,
          });
          const stored = (await index.instance('1.5.1'))!;
          assert.equal(stored.checksum, a2.instance.checksum);
          assert.equal(stored.blobKey, k2);
          assert.equal(stored.metadata, a2.instance.metadata);
          assert.equal((await index.series('1.2.3.1'))!.NumberOfSeriesRelatedInstances, 2);
          assert.deepEqual(await index.verify(), []);
        }),
      );

      test(
        'each policy on its own, in separate batches',
        run(async (index) => {
          for (const [n, policy] of (['reject', 'accept-if-identical', 'overwrite'] as const).entries()) {
            const sop = `1.6.${n}`;
            const first = rec({ sop, study: `1.6.${n}`, series: `1.6.${n}.1`, content: 'x' });
            const same = rec({ sop, study: `1.6.${n}`, series: `1.6.${n}.1`, content: 'x' });
            const other = rec({ sop, study: `1.6.${n}`, series: `1.6.${n}.1`, content: 'yy' });
            assert.deepEqual(await index.commit(items(policy, first)), [{ kind: 'stored' }]);
            const [onSame] = await index.commit(items(policy, same));
            const [onOther] = await index.commit(items(policy, other));
            const key = first.instance.blobKey;
            const sum = first.instance.checksum;
            if (policy === 'reject') {
              assert.deepEqual(onSame, {
                kind: 'duplicate-rejected',
                existingChecksum: sum,
                existingBlobKey: key,
              });
              assert.deepEqual(onOther, {
                kind: 'duplicate-rejected',
                existingChecksum: sum,
                existingBlobKey: key,
              });
            } else if (policy === 'accept-if-identical') {
              assert.deepEqual(onSame, { kind: 'identical', existingBlobKey: key });
              assert.deepEqual(onOther, { kind: 'conflict', existingChecksum: sum, existingBlobKey: key });
            } else {
              assert.deepEqual(onSame, { kind: 'identical', existingBlobKey: key });
              assert.deepEqual(onOther, { kind: 'replaced', oldBlobKey: key });
            }
            const expected = policy === 'overwrite' ? other : first;
            assert.equal((await index.instance(sop))!.checksum, expected.instance.checksum);
            assert.equal((await index.study(`1.6.${n}`))!.NumberOfStudyRelatedInstances, 1);
          }
          assert.deepEqual(await index.counts(), {
            patients: 1,
            studies: 3,
            series: 3,
            instances: 3,
            bytes: 101 + 101 + 102,
          });
          assert.deepEqual(await index.verify(), []);
        }),
      );

      test(
        'an unknown policy is refused on a duplicate (and the batch rolled back)',
        run(async (index) => {
          await index.commit(items('reject', rec({ sop: '1.9.1' })));
          await assert.rejects(
            index.commit([
              { record: rec({ sop: '1.9.2' }), policy: 'reject' },
              { record: rec({ sop: '1.9.1' }), policy: 'nope' as DuplicatePolicy },
            ]),
            { code: 'ERR_ARCHIVE_BAD_POLICY' },
          );
          assert.equal((await index.counts()).instances, 1);
        }),
      );

      test(
        'a duplicate that names another series, study and patient leaves no empty rows behind',
        run(async (index) => {
          await index.commit(items('reject', rec({ sop: '1.3.1' })));
          const elsewhere = rec({
            sop: '1.3.1',
            study: '1.3.9',
            series: '1.3.9.1',
            patientId: 'P9',
            content: 'z',
          });
          const outcomes = await index.commit([
            { record: elsewhere, policy: 'reject' },
            { record: elsewhere, policy: 'accept-if-identical' },
            {
              record: rec({ sop: '1.3.2', study: '1.3.9', series: '1.3.9.2', patientId: 'P9' }),
              policy: 'reject',
            },
          ]);
          assert.deepEqual(
            outcomes.map((o) => o.kind),
            ['duplicate-rejected', 'conflict', 'stored'],
          );
          assert.equal(await index.series('1.3.9.1'), undefined);
          assert.equal((await index.study('1.3.9'))!.NumberOfStudyRelatedSeries, 1);
          assert.deepEqual(await index.counts(), {
            patients: 2,
            studies: 2,
            series: 2,
            instances: 2,
            bytes: 204,
          });
          assert.deepEqual(await index.verify(), []);
        }),
      );

      test(
        'overwrite that moves the instance to another study rebuilds both studies',
        run(async (index) => {
          await index.commit(
            items(
              'reject',
              rec({ sop: '1.7.1', study: '1.7', series: '1.7.0', studyAttrs: { studyDescription: 'old' } }),
            ),
          );
          const [outcome] = await index.commit(
            items(
              'overwrite',
              rec({
                sop: '1.7.1',
                study: '1.8',
                series: '1.8.0',
                patientId: 'P2',
                modality: 'MR',
                content: 'fixed',
                studyAttrs: { studyDescription: 'new' },
              }),
            ),
          );
          assert.equal(outcome!.kind, 'replaced');
          assert.equal(await index.study('1.7'), undefined);
          assert.equal(await index.series('1.7.0'), undefined);
          const study = (await index.study('1.8'))!;
          assert.equal(study.StudyDescription, 'new');
          assert.equal(study.PatientID, 'P2');
          assert.deepEqual(study.ModalitiesInStudy, ['MR']);
          assert.equal((await index.instance('1.7.1'))!.studyInstanceUid, '1.8');
          assert.deepEqual(await index.counts(), {
            patients: 1,
            studies: 1,
            series: 1,
            instances: 1,
            bytes: 105,
          });
          assert.deepEqual(await index.verify(), []);
        }),
      );

      test(
        'overwriting the only instance of a study rebuilds the study (and patient) from the new copy',
        run(async (index) => {
          await index.commit(
            items(
              'reject',
              rec({ sop: '1.2.1', patient: { patientName: 'Old^Name' }, studyAttrs: { studyId: 'A' } }),
            ),
          );
          await index.commit(
            items(
              'overwrite',
              rec({
                sop: '1.2.1',
                content: 'v2',
                patient: { patientName: 'New^Name' },
                studyAttrs: { studyId: 'B' },
              }),
            ),
          );
          const study = (await index.study('1.2.3'))!;
          assert.equal(study.PatientName, 'New^Name');
          assert.equal(study.StudyID, 'B');
          assert.equal(study.NumberOfPatientRelatedInstances, 1);
          assert.deepEqual(await index.verify(), []);
        }),
      );

      test(
        'a batch is one transaction: a failing record leaves nothing of the batch',
        run(async (index) => {
          await index.commit(items('reject', rec({ sop: '1.4.1' })));
          const good = rec({ sop: '1.4.2', study: '1.4', series: '1.4.0' });
          // Two UIDs with one blob key violate the blob_key unique constraint.
          const bad = rec({ sop: '1.4.3' });
          bad.instance.blobKey = good.instance.blobKey;
          await assert.rejects(index.commit(items('reject', good, bad)), { code: 'ERR_ARCHIVE_INDEX' });
          assert.deepEqual(await index.counts(), {
            patients: 1,
            studies: 1,
            series: 1,
            instances: 1,
            bytes: 102,
          });
          assert.equal(await index.study('1.4'), undefined);
          assert.deepEqual(await index.verify(), []);
          // The index is usable afterwards.
          assert.deepEqual(await index.commit(items('reject', good)), [{ kind: 'stored' }]);
          assert.deepEqual(await index.commit([]), []);
        }),
      );
    });

    describe('computed attributes', () => {
      test(
        'after adds and deletes: counts, ModalitiesInStudy (deduplicated), SOPClassesInStudy; empty rows removed',
        run(async (index) => {
          await index.commit(
            items(
              'reject',
              rec({ sop: '2.1', series: '2.0.1', modality: 'CT' }),
              rec({ sop: '2.2', series: '2.0.1', modality: 'CT' }),
              rec({ sop: '2.3', series: '2.0.2', modality: 'CT' }),
              rec({ sop: '2.4', series: '2.0.3', modality: 'MR', sopClass: MR }),
              rec({ sop: '2.5', series: '2.0.4', modality: 'SR', sopClass: SR }),
              rec({ sop: '2.6', study: '2.9', series: '2.9.1', modality: 'CT' }),
            ),
          );
          let study = (await index.study('1.2.3'))!;
          assert.equal(study.NumberOfStudyRelatedSeries, 4);
          assert.equal(study.NumberOfStudyRelatedInstances, 5);
          assert.deepEqual(study.ModalitiesInStudy, ['CT', 'MR', 'SR']);
          assert.deepEqual(study.SOPClassesInStudy, [CT, MR, SR].sort());
          assert.equal(study.NumberOfPatientRelatedStudies, 2);
          assert.equal(study.NumberOfPatientRelatedSeries, 5);
          assert.equal(study.NumberOfPatientRelatedInstances, 6);
          assert.equal((await index.series('2.0.1'))!.NumberOfSeriesRelatedInstances, 2);
          assert.deepEqual(await index.verify(), []);

          assert.deepEqual(await index.deleteInstance('2.4'), {
            blobKey: blobKeyFor('2.4', checksumOf('v1')),
          });
          assert.equal(await index.deleteInstance('2.4'), undefined);
          study = (await index.study('1.2.3'))!;
          assert.deepEqual(study.ModalitiesInStudy, ['CT', 'SR']);
          assert.deepEqual(study.SOPClassesInStudy, [CT, SR].sort());
          assert.equal(study.NumberOfStudyRelatedSeries, 3);
          assert.equal(await index.series('2.0.3'), undefined);

          // CT stays while another CT series remains.
          await index.deleteInstance('2.3');
          assert.deepEqual((await index.study('1.2.3'))!.ModalitiesInStudy, ['CT', 'SR']);
          await index.deleteInstance('2.1');
          assert.equal((await index.series('2.0.1'))!.NumberOfSeriesRelatedInstances, 1);
          await index.deleteInstance('2.2');
          assert.deepEqual((await index.study('1.2.3'))!.ModalitiesInStudy, ['SR']);
          assert.deepEqual((await index.study('1.2.3'))!.SOPClassesInStudy, [SR]);
          assert.deepEqual(await index.verify(), []);
          assert.deepEqual(await index.counts(), {
            patients: 1,
            studies: 2,
            series: 2,
            instances: 2,
            bytes: 204,
          });

          await index.deleteInstance('2.5');
          assert.equal(await index.study('1.2.3'), undefined);
          assert.equal((await index.study('2.9'))!.NumberOfPatientRelatedStudies, 1);
          await index.deleteInstance('2.6');
          assert.deepEqual(await index.counts(), {
            patients: 0,
            studies: 0,
            series: 0,
            instances: 0,
            bytes: 0,
          });
          assert.deepEqual(await index.verify(), []);
        }),
      );

      test(
        'a series whose first instance has no Modality gets it from a later one',
        run(async (index) => {
          await index.commit(items('reject', rec({ sop: '3.1', modality: undefined })));
          assert.deepEqual((await index.study('1.2.3'))!.ModalitiesInStudy, []);
          await index.commit(
            items('reject', rec({ sop: '3.2', modality: 'US' }), rec({ sop: '3.3', modality: 'XA' })),
          );
          assert.equal((await index.series('1.2.3.1'))!.Modality, 'US');
          assert.deepEqual((await index.study('1.2.3'))!.ModalitiesInStudy, ['US']);
          assert.deepEqual(await index.verify(), []);
          await index.deleteInstance('3.1');
          await index.deleteInstance('3.2');
          assert.deepEqual((await index.study('1.2.3'))!.ModalitiesInStudy, ['US']);
          await index.deleteInstance('3.3');
          assert.deepEqual(await index.verify(), []);
        }),
      );

      test(
        'allBlobKeys pages through every instance and allows deletes while iterating',
        run(async (index) => {
          const records = Array.from({ length: 2500 }, (_, i) =>
            rec({ sop: `4.${i + 1}`, series: `4.0.${i % 7}` }),
          );
          for (let i = 0; i < records.length; i += 500) {
            await index.commit(items('reject', ...records.slice(i, i + 500)));
          }
          let seen = 0;
          for await (const { sopInstanceUid, blobKey } of index.allBlobKeys()) {
            assert.equal(blobKey, blobKeyFor(sopInstanceUid, checksumOf('v1')));
            if (seen % 2 === 0) await index.deleteInstance(sopInstanceUid);
            seen++;
          }
          assert.equal(seen, 2500);
          assert.equal((await index.counts()).instances, 1250);
          let left = 0;
          for await (const _ of index.allBlobKeys()) left++;
          assert.equal(left, 1250);
          assert.deepEqual(await index.verify(), []);
        }),
      );
    });

    describe('documented rules', () => {
      test(
        'conflicting attributes: first received wins per attribute, later instances only supplement',
        run(async (index) => {
          const first = rec({
            sop: '5.1',
            patient: { patientName: 'Doe^John' },
            studyAttrs: { studyDescription: 'First', studyDate: '20240101' },
            seriesAttrs: { seriesDescription: 'axial' },
          });
          const second = rec({
            sop: '5.2',
            content: 'other',
            patient: { patientName: 'Doe^Jane', birthDate: '19700101' },
            studyAttrs: { studyDescription: 'Second', studyDate: '20990101', accessionNumber: 'ACC2' },
            seriesAttrs: { seriesDescription: 'coronal', seriesNumber: 7 },
          });
          // Same study, another PatientID: filed under the study's patient, supplements no patient value.
          const third = rec({ sop: '5.3', patientId: 'OTHER', patient: { sex: 'F' } });
          // A known series named under another study: stays in its series' study.
          const fourth = rec({ sop: '5.4', study: '5.9', studyAttrs: { studyId: 'S9' } });
          await index.commit(items('reject', first, second, third, fourth));
          const study = (await index.study('1.2.3'))!;
          assert.equal(study.StudyDescription, 'First');
          assert.equal(study.StudyDate, '20240101');
          assert.equal(study.AccessionNumber, 'ACC2');
          assert.equal(study.PatientName, 'Doe^John');
          assert.equal(study.PatientBirthDate, '19700101');
          assert.equal(study.PatientSex, undefined);
          assert.equal(study.StudyID, undefined);
          assert.equal(study.PatientID, 'P1');
          assert.equal(study.NumberOfStudyRelatedInstances, 4);
          const series = (await index.series('1.2.3.1'))!;
          assert.equal(series.SeriesDescription, 'axial');
          assert.equal(series.SeriesNumber, 7);
          assert.equal(await index.study('5.9'), undefined);
          assert.equal((await index.instance('5.4'))!.studyInstanceUid, '1.2.3');
          assert.deepEqual(await index.counts(), {
            patients: 1,
            studies: 1,
            series: 1,
            instances: 4,
            bytes: 411,
          });
          // Each instance keeps its own metadata document.
          assert.equal((await index.instance('5.2'))!.metadata, second.instance.metadata);
          assert.deepEqual(await index.verify(), []);
        }),
      );

      test(
        'the same rules across batches as within one',
        run(async (index) => {
          for (const record of [
            rec({
              sop: '5.1',
              patient: { patientName: 'Doe^John' },
              studyAttrs: { studyDescription: 'First' },
            }),
            rec({ sop: '5.2', patient: { patientName: 'Doe^Jane', birthDate: '19700101' } }),
            rec({ sop: '5.3', patientId: 'OTHER', patient: { sex: 'F' } }),
            rec({ sop: '5.4', study: '5.9', studyAttrs: { studyId: 'S9' } }),
          ]) {
            await index.commit(items('reject', record));
          }
          const study = (await index.study('1.2.3'))!;
          assert.equal(study.PatientName, 'Doe^John');
          assert.equal(study.PatientBirthDate, '19700101');
          assert.equal(study.PatientSex, undefined);
          assert.equal(study.StudyID, undefined);
          assert.equal(await index.study('5.9'), undefined);
          assert.deepEqual(await index.counts(), {
            patients: 1,
            studies: 1,
            series: 1,
            instances: 4,
            bytes: 408,
          });
          assert.deepEqual(await index.verify(), []);
        }),
      );

      test(
        'patient identity: (PatientID, issuer); one PatientID with three names is one patient',
        run(async (index) => {
          const names = ['HELLO', 'WORLD', 'FOO'];
          await index.commit(
            items(
              'reject',
              ...names.map((name, i) =>
                rec({
                  sop: `6.0.${i}`,
                  study: `6.0.${i}`,
                  series: `6.0.${i}.1`,
                  patientId: 'COMMON',
                  patient: { patientName: name },
                }),
              ),
            ),
          );
          assert.equal((await index.counts()).patients, 1);
          assert.equal((await index.counts()).studies, 3);
          for (const [i, name] of names.entries()) {
            const study = (await index.study(`6.0.${i}`))!;
            assert.equal(study.PatientName, name);
            assert.equal(study.PatientID, 'COMMON');
            assert.equal(study.NumberOfPatientRelatedStudies, 3);
          }
          // Another issuer is another patient; an empty PatientID is a patient per study.
          await index.commit(
            items(
              'reject',
              rec({
                sop: '6.1',
                study: '6.1',
                series: '6.1.1',
                patientId: 'COMMON',
                patient: { issuerOfPatientId: 'HOSP-B' },
              }),
              rec({ sop: '6.2', study: '6.2', series: '6.2.1', patientId: '' }),
              rec({ sop: '6.3', study: '6.3', series: '6.3.1', patientId: '' }),
            ),
          );
          assert.equal((await index.counts()).patients, 4);
          assert.equal((await index.study('6.1'))!.IssuerOfPatientID, 'HOSP-B');
          assert.equal((await index.study('6.1'))!.NumberOfPatientRelatedStudies, 1);
          assert.equal((await index.study('6.2'))!.NumberOfPatientRelatedStudies, 1);
          assert.equal((await index.study('6.2'))!.PatientID, '');
          assert.deepEqual(await index.verify(), []);
        }),
      );
    });

    describe('reads', () => {
      test(
        'instance / study / series: the shapes and JS types of the port; absent is undefined',
        run(async (index) => {
          const record = rec({
            sop: '9.1',
            patient: { patientName: 'Doe^John', birthDate: '19700101', issuerOfPatientId: 'ISS' },
            studyAttrs: { studyDate: '20240101', patientSize: '1.80', studyDescription: 'Ünïcode ✓' },
            seriesAttrs: { seriesNumber: 3, seriesDescription: 'axial', requestAttributes: '[{"a":"b"}]' },
            instanceAttrs: {
              instanceNumber: 12,
              numberOfFrames: 2,
              rows: 512,
              columns: 256,
              bitsAllocated: 16,
              contentDate: '20240101',
              sourceAETitle: 'SCU',
              frameOffsets: '[[0,10],[10,10]]',
              characterSet: 'ISO_IR 192',
              size: 5_000_000_000,
            },
          });
          await index.commit(items('reject', record));
          assert.deepEqual(await index.instance('9.1'), {
            ...record.instance,
            studyInstanceUid: '1.2.3',
            seriesInstanceUid: '1.2.3.1',
          });
          assert.deepEqual(await index.study('1.2.3'), {
            StudyInstanceUID: '1.2.3',
            PatientID: 'P1',
            IssuerOfPatientID: 'ISS',
            StudyDate: '20240101',
            StudyDescription: 'Ünïcode ✓',
            PatientSize: '1.80',
            PatientName: 'Doe^John',
            PatientBirthDate: '19700101',
            NumberOfStudyRelatedSeries: 1,
            NumberOfStudyRelatedInstances: 1,
            ModalitiesInStudy: ['CT'],
            SOPClassesInStudy: [CT],
            NumberOfPatientRelatedStudies: 1,
            NumberOfPatientRelatedSeries: 1,
            NumberOfPatientRelatedInstances: 1,
          });
          assert.deepEqual(await index.series('1.2.3.1'), {
            SeriesInstanceUID: '1.2.3.1',
            StudyInstanceUID: '1.2.3',
            Modality: 'CT',
            SeriesNumber: 3,
            SeriesDescription: 'axial',
            RequestAttributes: '[{"a":"b"}]',
            NumberOfSeriesRelatedInstances: 1,
          });
          assert.deepEqual(await index.counts(), {
            patients: 1,
            studies: 1,
            series: 1,
            instances: 1,
            bytes: 5_000_000_000,
          });
          assert.equal(await index.instance('9.9'), undefined);
          assert.equal(await index.study('9.9'), undefined);
          assert.equal(await index.series('9.9'), undefined);
          assert.equal(await index.deleteInstance('9.9'), undefined);
        }),
      );

      test(
        'select: rows keyed by column, numbers as numbers; statements that write are refused',
        run(async (index) => {
          await index.commit(items('reject', rec({ sop: '9.2', seriesAttrs: { seriesNumber: 4 } })));
          const p = (n: number) => index.dialect.placeholder(n);
          const selected = await index.select(
            `SELECT i.id AS id, i.size, s.series_number, s.number_of_instances, count(*) AS n FROM instances i JOIN series s ON s.id = i.series_fk WHERE i.sop_instance_uid = ${p(1)} AND i.size > ${p(2)} GROUP BY i.id, i.size, s.series_number, s.number_of_instances`,
            ['9.2', 1],
          );
          assert.equal(selected.length, 1);
          const [row] = selected;
          assert.equal(typeof row!.id, 'number');
          assert.equal(row!.size, 102);
          assert.equal(row!.series_number, 4);
          assert.equal(row!.number_of_instances, 1);
          assert.equal(row!.n, 1);
          for (const sql of [
            'DELETE FROM instances',
            'UPDATE totals SET instances = 0',
            'WITH d AS (DELETE FROM instances RETURNING id) SELECT id FROM d',
          ]) {
            await assert.rejects(index.select(sql, []), { code: 'ERR_ARCHIVE_INDEX' }, sql);
          }
          assert.equal((await index.counts()).instances, 1);
          assert.deepEqual(await index.verify(), []);
        }),
      );
    });
  });
}
