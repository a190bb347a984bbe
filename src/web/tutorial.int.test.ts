/**
 * The Azure DICOM service tutorial ("Use DICOMweb Standard APIs with cURL") end to end against
 * Tessera's DICOMweb origin server, with its three files (one study; blue-circle alone in one series,
 * green-square and red-triangle in another): STOW-RS (one multipart request, then a study-targeted
 * one), WADO-RS retrieval of the study, a series and an instance (the data set of every part
 * byte-identical to the source file's), metadata at each level with BulkDataURIs that resolve, a
 * frame, the tutorial's QIDO-RS searches, and DELETE of an instance, a series and the study.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { datasetSha256 } from '../../test/helpers/interop.ts';
import {
  multipartRequest,
  responseParts,
  startWebArchive,
  stow,
  type WebArchive,
} from '../../test/helpers/web-archive.ts';
import { readPart10 } from '../codec/index.ts';
import { Tag } from '../dictionary/index.ts';

const DATA = fileURLToPath(new URL('../../../shared/data/dicom/ms-tutorial/', import.meta.url));
const STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const SERIES_BLUE = '1.2.826.0.1.3680043.8.498.77033797676425927098669402985243398207';
const SERIES_GREEN_RED = '1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652';
const BLUE = '1.2.826.0.1.3680043.8.498.13273713909719068980354078852867170114';
const GREEN = '1.2.826.0.1.3680043.8.498.12714725698140337137334606354172323212';
const RED = '1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395';
const SC = '1.2.840.10008.5.1.4.1.1.7';
const FILES: Record<string, string> = {
  [BLUE]: join(DATA, 'blue-circle.dcm'),
  [GREEN]: join(DATA, 'green-square.dcm'),
  [RED]: join(DATA, 'red-triangle.dcm'),
};
const DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*';

type Json = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>;

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const value = (ds: Json, tag: string): unknown => ds[tag]?.Value?.[0];

/** The SOP Instance UID and the sha256 of the data set part (after the File Meta) of a Part 10 file. */
function partInfo(bytes: Buffer): { sopInstanceUid: string; sha256: string; transferSyntax: string } {
  const file = readPart10(bytes);
  return {
    sopInstanceUid: file.dataset.string(Tag.SOPInstanceUID) ?? '',
    sha256: sha256(bytes.subarray(file.datasetOffset)),
    transferSyntax: file.transferSyntax.uid,
  };
}

describe('the Azure DICOM tutorial against Tessera DICOMweb', { timeout: 120_000 }, () => {
  let web: WebArchive;
  const expected = new Map<string, string>(); // SOP Instance UID -> sha256 of the source data set

  before(async () => {
    web = await startWebArchive();
    for (const [uid, path] of Object.entries(FILES)) expected.set(uid, (await datasetSha256(path)).sha256);
  });
  after(async () => {
    await web?.close();
  });

  async function retrieve(path: string, count: number): Promise<void> {
    const r = await fetch(`${web.url}${path}`, { headers: { accept: DICOM_ANY } });
    assert.equal(r.status, 200, await r.clone().text());
    assert.match(r.headers.get('content-type') ?? '', /^multipart\/related; type="?application\/dicom"?/);
    const parts = await responseParts(r);
    assert.equal(parts.length, count);
    for (const part of parts) {
      assert.match(
        part.headers['content-type'] ?? '',
        /^application\/dicom; transfer-syntax=1\.2\.840\.10008\.1\.2\.1$/,
      );
      const info = partInfo(part.body);
      assert.equal(info.transferSyntax, '1.2.840.10008.1.2.1');
      assert.equal(info.sha256, expected.get(info.sopInstanceUid), `data set of ${info.sopInstanceUid}`);
      assert.ok(part.headers['content-location']?.endsWith(`/instances/${info.sopInstanceUid}`));
    }
  }

  async function search(path: string): Promise<Json[]> {
    const r = await fetch(`${web.url}${path}`, { headers: { accept: 'application/dicom+json' } });
    assert.equal(r.status, 200, await r.clone().text());
    assert.match(r.headers.get('content-type') ?? '', /^application\/dicom\+json/);
    return (await r.json()) as Json[];
  }

  test('STOW-RS: the three files in one multipart request', async () => {
    const files = await Promise.all(Object.values(FILES).map((p) => readFile(p)));
    const r = await stow(`${web.url}/studies`, files);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^application\/dicom\+json/);
    const body = (await r.json()) as Json;
    assert.equal(value(body, '00081190'), `${web.url}/studies/${STUDY}`);
    assert.equal(body['00081198'], undefined, 'no Failed SOP Sequence');
    const referenced = (body['00081199']?.Value ?? []) as Json[];
    assert.deepEqual(referenced.map((i) => value(i, '00081155')).sort(), [BLUE, GREEN, RED].sort());
    for (const item of referenced) {
      assert.equal(value(item, '00081150'), SC);
      const uid = value(item, '00081155') as string;
      const series = uid === BLUE ? SERIES_BLUE : SERIES_GREEN_RED;
      assert.equal(value(item, '00081190'), `${web.url}/studies/${STUDY}/series/${series}/instances/${uid}`);
    }
    const counts = await web.counts();
    assert.deepEqual(
      {
        patients: counts.patients,
        studies: counts.studies,
        series: counts.series,
        instances: counts.instances,
      },
      { patients: 1, studies: 1, series: 2, instances: 3 },
    );
  });

  test('STOW-RS to /studies/{study}: an instance of that study (stored again, identical)', async () => {
    const boundary = 'study-targeted';
    const r = await fetch(`${web.url}/studies/${STUDY}`, {
      method: 'POST',
      headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
      body: multipartRequest([{ body: await readFile(FILES[RED]!) }], boundary),
    });
    assert.equal(r.status, 200);
    const body = (await r.json()) as Json;
    assert.equal(value(body, '00081190'), `${web.url}/studies/${STUDY}`);
    const referenced = (body['00081199']?.Value ?? []) as Json[];
    assert.deepEqual(
      referenced.map((i) => value(i, '00081155')),
      [RED],
    );
    assert.equal((await web.counts()).instances, 3);
  });

  test('WADO-RS: the study (3 instances), a series (2), an instance (1), data sets byte-identical', async () => {
    await retrieve(`/studies/${STUDY}`, 3);
    await retrieve(`/studies/${STUDY}/series/${SERIES_GREEN_RED}`, 2);
    await retrieve(`/studies/${STUDY}/series/${SERIES_BLUE}`, 1);
    await retrieve(`/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${RED}`, 1);
  });

  test('WADO-RS metadata: 3, 2 and 1 objects; the Pixel Data BulkDataURI gives the pixel bytes', async () => {
    const study = await search(`/studies/${STUDY}/metadata`);
    assert.deepEqual(study.map((d) => value(d, '00080018')).sort(), [BLUE, GREEN, RED].sort());
    const series = await search(`/studies/${STUDY}/series/${SERIES_GREEN_RED}/metadata`);
    assert.deepEqual(series.map((d) => value(d, '00080018')).sort(), [GREEN, RED].sort());
    const instance = await search(`/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${RED}/metadata`);
    assert.equal(instance.length, 1);
    const red = instance[0]!;
    assert.equal(value(red, '00204000'), 'Fake DICOM - Red Triangle');
    assert.deepEqual(red['00100010']?.Value, [{ Alphabetic: 'Anony Mous' }]);
    assert.equal(value(red, '00280010'), 979);
    assert.equal(value(red, '00280011'), 985);
    const uri = red['7FE00010']?.BulkDataURI;
    assert.equal(
      uri,
      `${web.url}/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${RED}/bulk/7FE00010`,
    );
    assert.equal(red['7FE00010']?.Value, undefined, 'Pixel Data is a reference, not inline');
    const source = readPart10(await readFile(FILES[RED]!)).dataset.get(Tag.PixelData);
    assert.ok(source && source.kind === 'value');
    for (const doc of study) {
      const bulk = doc['7FE00010']?.BulkDataURI;
      assert.ok(
        bulk?.startsWith(`${web.url}/studies/${STUDY}/series/`),
        `BulkDataURI of ${value(doc, '00080018')}`,
      );
    }
    const r = await fetch(uri!, {
      headers: { accept: 'multipart/related; type="application/octet-stream"' },
    });
    assert.equal(r.status, 200);
    const parts = await responseParts(r);
    assert.equal(parts.length, 1);
    assert.match(parts[0]!.headers['content-type'] ?? '', /^application\/octet-stream/);
    assert.equal(parts[0]!.body.length, source.bytes.length);
    assert.equal(sha256(parts[0]!.body), sha256(source.bytes));
  });

  test('WADO-RS frames: frame 1 of red-triangle is rows*columns*samples*bits/8 bytes of its pixels', async () => {
    const r = await fetch(
      `${web.url}/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${RED}/frames/1`,
      {
        headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
      },
    );
    assert.equal(r.status, 200);
    const parts = await responseParts(r);
    assert.equal(parts.length, 1);
    assert.equal(parts[0]!.body.length, (979 * 985 * 3 * 8) / 8);
    const source = readPart10(await readFile(FILES[RED]!)).dataset.get(Tag.PixelData);
    assert.ok(source && source.kind === 'value');
    assert.ok(parts[0]!.body.equals(source.bytes.subarray(0, 979 * 985 * 3)));
    // RGB, interleaved: the centre pixel is the triangle's red (237, 28, 36) on a grey (195) ground.
    const pixel = (row: number, column: number) => [
      ...parts[0]!.body.subarray((row * 985 + column) * 3, (row * 985 + column) * 3 + 3),
    ];
    assert.deepEqual(pixel(489, 492), [237, 28, 36]);
    assert.deepEqual(pixel(0, 0), [195, 195, 195]);
    assert.ok(parts[0]!.headers['content-location']?.endsWith(`/instances/${RED}/frames/1`));
  });

  test('QIDO-RS: the tutorial searches each find exactly one match', async () => {
    const one = async (path: string, tag: string, uid: string): Promise<Json> => {
      const found = await search(path);
      assert.equal(found.length, 1, `${path}: ${JSON.stringify(found)}`);
      assert.equal(value(found[0]!, tag), uid, path);
      return found[0]!;
    };
    const study = await one(`/studies?StudyInstanceUID=${STUDY}`, '0020000D', STUDY);
    assert.equal(value(study, '00201206'), 2, 'Number of Study Related Series');
    assert.equal(value(study, '00201208'), 3, 'Number of Study Related Instances');
    assert.equal(value(study, '00081190'), `${web.url}/studies/${STUDY}`);
    await one(`/series?SeriesInstanceUID=${SERIES_BLUE}`, '0020000E', SERIES_BLUE);
    await one(`/studies/${STUDY}/series?SeriesInstanceUID=${SERIES_GREEN_RED}`, '0020000E', SERIES_GREEN_RED);
    await one(`/instances?SOPInstanceUID=${RED}`, '00080018', RED);
    await one(`/studies/${STUDY}/instances?SOPInstanceUID=${GREEN}`, '00080018', GREEN);
    const inst = await one(
      `/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances?SOPInstanceUID=${RED}`,
      '00080018',
      RED,
    );
    assert.equal(
      value(inst, '00081190'),
      `${web.url}/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${RED}`,
    );
    // Modality scoped to the study: both series are OT; Series Number picks one of them.
    const ot = await search(`/studies/${STUDY}/series?Modality=OT`);
    assert.deepEqual(ot.map((s) => value(s, '0020000E')).sort(), [SERIES_BLUE, SERIES_GREEN_RED].sort());
    await one(`/studies/${STUDY}/series?Modality=OT&SeriesNumber=2`, '0020000E', SERIES_BLUE);
    assert.deepEqual(await search(`/studies/${STUDY}/series?Modality=CT`), []);
    // Patient name with a wild card, and a study date range.
    await one('/studies?PatientName=Anony*', '0020000D', STUDY);
    await one('/studies?PatientName=anony*', '0020000D', STUDY);
    await one('/studies?StudyDate=20200901-20200930', '0020000D', STUDY);
    await one('/studies?StudyDate=20200922', '0020000D', STUDY);
    assert.deepEqual(await search('/studies?StudyDate=20210101-'), []);
    assert.deepEqual(await search('/studies?PatientName=Nobody*'), []);
  });

  test('DELETE an instance, then its series, then the study: nothing is left', async () => {
    const instanceUrl = `${web.url}/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${RED}`;
    let r = await fetch(instanceUrl, { method: 'DELETE' });
    assert.equal(r.status, 204);
    r = await fetch(instanceUrl, { headers: { accept: DICOM_ANY } });
    assert.equal(r.status, 404);
    assert.match(((await r.json()) as { error: string }).error, new RegExp(`instance ${RED}`));
    assert.deepEqual(
      (await search(`/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances`)).map((i) =>
        value(i, '00080018'),
      ),
      [GREEN],
    );
    assert.equal((await web.counts()).instances, 2);

    r = await fetch(`${web.url}/studies/${STUDY}/series/${SERIES_GREEN_RED}`, { method: 'DELETE' });
    assert.equal(r.status, 204);
    assert.deepEqual(
      (await search(`/studies/${STUDY}/series`)).map((s) => value(s, '0020000E')),
      [SERIES_BLUE],
    );
    assert.equal((await web.counts()).instances, 1);

    r = await fetch(`${web.url}/studies/${STUDY}`, { method: 'DELETE' });
    assert.equal(r.status, 204);
    assert.deepEqual(await search('/studies'), []);
    assert.deepEqual(await search(`/instances?SOPInstanceUID=${BLUE}`), []);
    r = await fetch(`${web.url}/studies/${STUDY}`, { headers: { accept: DICOM_ANY } });
    assert.equal(r.status, 404);
    assert.match(((await r.json()) as { error: string }).error, new RegExp(`study ${STUDY}`));
    r = await fetch(`${web.url}/studies/${STUDY}/metadata`);
    assert.equal(r.status, 404);
    r = await fetch(`${web.url}/studies/${STUDY}`, { method: 'DELETE' });
    assert.equal(r.status, 404, 'deleting it again: nothing to delete');
    const counts = await web.counts();
    assert.deepEqual(
      {
        patients: counts.patients,
        studies: counts.studies,
        series: counts.series,
        instances: counts.instances,
        bytes: counts.bytes,
      },
      { patients: 0, studies: 0, series: 0, instances: 0, bytes: 0 },
    );
    const blobs = await readdir(join(web.dataDir, 'blobs'), { recursive: true, withFileTypes: true });
    assert.deepEqual(
      blobs.filter((e) => e.isFile()).map((e) => e.name),
      [],
      'no blob left on disk',
    );
  });
});
