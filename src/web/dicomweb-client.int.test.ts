/**
 * The npm package `dicomweb-client` (the DICOMweb client of OHIF and Slim) against Tessera's origin
 * server, with the three files of the Azure tutorial: storeInstances, the three QIDO-RS searches,
 * study and instance metadata, an instance and a frame retrieved, asserting the values it hands
 * back. The package speaks through XMLHttpRequest, which Node does not have: `xhr2` (a Node
 * implementation of it) stands in as the global for this file.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { api } from 'dicomweb-client';
import { datasetSha256 } from '../../test/helpers/interop.ts';
import { startWebArchive, type WebArchive } from '../../test/helpers/web-archive.ts';
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
const FILES = ['blue-circle.dcm', 'green-square.dcm', 'red-triangle.dcm'].map((f) => join(DATA, f));

type Json = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>;

/**
 * What this test uses of DICOMwebClient, typed as it behaves (its generated .d.ts declares the
 * searches synchronous and some optional options required).
 */
interface Client {
  storeInstances(o: { datasets: ArrayBuffer[]; studyInstanceUID?: string }): Promise<unknown>;
  searchForStudies(o?: { queryParams?: Record<string, string> }): Promise<Json[]>;
  searchForSeries(o?: { studyInstanceUID?: string; queryParams?: Record<string, string> }): Promise<Json[]>;
  searchForInstances(o?: {
    studyInstanceUID?: string;
    seriesInstanceUID?: string;
    queryParams?: Record<string, string>;
  }): Promise<Json[]>;
  retrieveStudyMetadata(o: { studyInstanceUID: string }): Promise<Json[]>;
  retrieveSeriesMetadata(o: { studyInstanceUID: string; seriesInstanceUID: string }): Promise<Json[]>;
  retrieveInstanceMetadata(o: {
    studyInstanceUID: string;
    seriesInstanceUID: string;
    sopInstanceUID: string;
  }): Promise<Json[]>;
  retrieveInstance(o: {
    studyInstanceUID: string;
    seriesInstanceUID: string;
    sopInstanceUID: string;
  }): Promise<ArrayBuffer>;
  retrieveInstanceFrames(o: {
    studyInstanceUID: string;
    seriesInstanceUID: string;
    sopInstanceUID: string;
    frameNumbers: string | number[];
  }): Promise<ArrayBuffer[]>;
}

const value = (ds: Json | undefined, tag: string): unknown => ds?.[tag]?.Value?.[0];
const toArrayBuffer = (b: Buffer): ArrayBuffer =>
  b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;

describe('dicomweb-client (npm) against Tessera DICOMweb', { timeout: 120_000 }, () => {
  let web: WebArchive;
  let client: Client;
  let hadXhr = false;
  let previousXhr: unknown;

  before(async () => {
    hadXhr = 'XMLHttpRequest' in globalThis;
    previousXhr = (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest;
    // xhr2 is CommonJS without types: module.exports is the XMLHttpRequest class.
    const XMLHttpRequest = createRequire(import.meta.url)('xhr2') as unknown;
    (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XMLHttpRequest;
    web = await startWebArchive();
    client = new api.DICOMwebClient({ url: web.url, verbose: false, singlepart: false }) as unknown as Client;
  });
  after(async () => {
    if (hadXhr) (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = previousXhr;
    else delete (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest;
    await web?.close();
  });

  test('storeInstances: the three files in one request', async () => {
    const datasets = await Promise.all(FILES.map(async (f) => toArrayBuffer(await readFile(f))));
    const response = await client.storeInstances({ datasets });
    // A 200 answer is handed back as the response text: the Store Instances Response Module.
    const body = JSON.parse(String(response)) as Json;
    assert.equal(value(body, '00081190'), `${web.url}/studies/${STUDY}`);
    const referenced = (body['00081199']?.Value ?? []) as Json[];
    assert.deepEqual(referenced.map((i) => value(i, '00081155')).sort(), [BLUE, GREEN, RED].sort());
    assert.deepEqual(
      referenced.map((i) => value(i, '00081150')),
      [SC, SC, SC],
    );
    assert.equal(body['00081198'], undefined);
    assert.equal((await web.counts()).instances, 3);
  });

  test('storeInstances to another study: rejected with 409 (FailedSOPSequence, A900)', async () => {
    const other = '1.2.3.4.5.6.7.8.9';
    await assert.rejects(
      client.storeInstances({
        datasets: [toArrayBuffer(await readFile(FILES[0]!))],
        studyInstanceUID: other,
      }),
      (err: { status?: number; response?: unknown }) => {
        assert.equal(err.status, 409);
        const body = JSON.parse(String(err.response)) as Json;
        const failed = (body['00081198']?.Value ?? []) as Json[];
        assert.equal(failed.length, 1);
        assert.equal(value(failed[0], '00081197'), 0xa900);
        return true;
      },
    );
    assert.equal((await web.counts()).instances, 3);
  });

  test('searchForStudies, searchForSeries, searchForInstances', async () => {
    const studies = await client.searchForStudies({ queryParams: { PatientName: 'Anony*' } });
    assert.equal(studies.length, 1);
    assert.equal(value(studies[0], '0020000D'), STUDY);
    assert.deepEqual(value(studies[0], '00100010'), { Alphabetic: 'Anony Mous' });
    assert.equal(value(studies[0], '00100020'), 'ID1');
    assert.equal(value(studies[0], '00080020'), '20200922');
    assert.equal(value(studies[0], '00201208'), 3);

    const series = await client.searchForSeries({ studyInstanceUID: STUDY });
    assert.deepEqual(series.map((s) => value(s, '0020000E')).sort(), [SERIES_BLUE, SERIES_GREEN_RED].sort());
    const green = series.find((s) => value(s, '0020000E') === SERIES_GREEN_RED);
    assert.equal(value(green, '00080060'), 'OT');
    assert.equal(value(green, '00201209'), 2, 'Number of Series Related Instances');

    const instances = await client.searchForInstances({
      studyInstanceUID: STUDY,
      seriesInstanceUID: SERIES_GREEN_RED,
    });
    assert.deepEqual(instances.map((i) => value(i, '00080018')).sort(), [GREEN, RED].sort());
    assert.deepEqual(
      instances.map((i) => value(i, '00080016')),
      [SC, SC],
    );
    const one = await client.searchForInstances({ queryParams: { SOPInstanceUID: BLUE } });
    assert.equal(one.length, 1);
    assert.equal(value(one[0], '0020000E'), SERIES_BLUE);
    assert.equal(
      value(one[0], '00081190'),
      `${web.url}/studies/${STUDY}/series/${SERIES_BLUE}/instances/${BLUE}`,
    );
  });

  test('retrieveStudyMetadata and retrieveInstanceMetadata', async () => {
    const study = await client.retrieveStudyMetadata({ studyInstanceUID: STUDY });
    assert.equal(study.length, 3);
    const byUid = new Map(study.map((d) => [value(d, '00080018') as string, d]));
    assert.equal(value(byUid.get(BLUE), '00204000'), 'Fake DICOM - Blue Circle');
    assert.equal(value(byUid.get(GREEN), '00204000'), 'Fake DICOM - Green Square');
    const series = await client.retrieveSeriesMetadata({
      studyInstanceUID: STUDY,
      seriesInstanceUID: SERIES_GREEN_RED,
    });
    assert.deepEqual(series.map((d) => value(d, '00080018')).sort(), [GREEN, RED].sort());
    const instance = await client.retrieveInstanceMetadata({
      studyInstanceUID: STUDY,
      seriesInstanceUID: SERIES_GREEN_RED,
      sopInstanceUID: RED,
    });
    assert.equal(instance.length, 1);
    const red = instance[0]!;
    assert.equal(value(red, '00204000'), 'Fake DICOM - Red Triangle');
    assert.equal(value(red, '00280004'), 'RGB');
    assert.equal(value(red, '00280002'), 3);
    assert.equal(value(red, '00280010'), 979);
    assert.equal(value(red, '00280011'), 985);
    assert.equal(
      red['7FE00010']?.BulkDataURI,
      `${web.url}/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${RED}/bulk/7FE00010`,
    );
  });

  test('retrieveInstance: the Part 10 file, its data set byte-identical', async () => {
    const file = Buffer.from(
      await client.retrieveInstance({
        studyInstanceUID: STUDY,
        seriesInstanceUID: SERIES_BLUE,
        sopInstanceUID: BLUE,
      }),
    );
    const part10 = readPart10(file);
    assert.equal(part10.dataset.string(Tag.SOPInstanceUID), BLUE);
    const sha = createHash('sha256').update(file.subarray(part10.datasetOffset)).digest('hex');
    assert.equal(sha, (await datasetSha256(FILES[0]!)).sha256);
  });

  test('retrieveInstanceFrames: frame 1 of red-triangle, its pixels', async () => {
    const frames = await client.retrieveInstanceFrames({
      studyInstanceUID: STUDY,
      seriesInstanceUID: SERIES_GREEN_RED,
      sopInstanceUID: RED,
      frameNumbers: '1',
    });
    assert.equal(frames.length, 1);
    const frame = new Uint8Array(frames[0]!);
    assert.equal(frame.length, 979 * 985 * 3);
    const source = readPart10(await readFile(FILES[2]!)).dataset.get(Tag.PixelData);
    assert.ok(source && source.kind === 'value');
    assert.ok(Buffer.from(frame).equals(source.bytes.subarray(0, frame.length)));
    const at = (489 * 985 + 492) * 3;
    assert.deepEqual([...frame.subarray(at, at + 3)], [237, 28, 36], 'the red of the triangle');
  });
});
