/**
 * The DICOMweb client against a real Orthanc with its DICOMweb plugin, walking the Azure DICOM
 * service tutorial with its three files (one study; blue-circle in one series, green-square and
 * red-triangle in another): store, retrieve study/series/instance, metadata, a frame, QIDO, delete.
 */
import assert from 'node:assert/strict';
import { openAsBlob } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { killChildren } from '../../test/helpers/interop.ts';
import { type OrthancWeb, startOrthancWeb } from '../../test/helpers/orthanc-dicomweb.ts';
import { readPart10 } from '../codec/index.ts';
import { isDicomError } from '../core/index.ts';
import { Tag } from '../dictionary/index.ts';
import { DicomWebClient, DicomWebError } from './index.ts';

const DATA = fileURLToPath(new URL('../../../shared/data/dicom/ms-tutorial/', import.meta.url));
const STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const SERIES_BLUE = '1.2.826.0.1.3680043.8.498.77033797676425927098669402985243398207';
const SERIES_GREEN_RED = '1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652';
const BLUE = '1.2.826.0.1.3680043.8.498.13273713909719068980354078852867170114';
const GREEN = '1.2.826.0.1.3680043.8.498.12714725698140337137334606354172323212';
const RED = '1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395';
const SC = '1.2.840.10008.5.1.4.1.1.7';
const FILES = { [BLUE]: 'blue-circle.dcm', [GREEN]: 'green-square.dcm', [RED]: 'red-triangle.dcm' };

function sopInstanceUid(bytes: Uint8Array): string | undefined {
  const part10 = readPart10(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), {
    stopBeforeTag: 0x00080019,
  });
  return part10.dataset.string(Tag.SOPInstanceUID);
}

const value = (ds: Record<string, { Value?: unknown[] }>, tag: string) => ds[tag]?.Value?.[0];

async function rejectsHttp(
  promise: Promise<unknown>,
  status: number,
  message: RegExp,
): Promise<DicomWebError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof DicomWebError, `a DicomWebError, not ${String(caught)}`);
  assert.ok(isDicomError(caught));
  assert.equal(caught.status, status);
  assert.match(caught.message, message);
  return caught;
}

describe('DicomWebClient against Orthanc (DICOMweb plugin)', { timeout: 180_000 }, () => {
  let orthanc: OrthancWeb;
  let client: DicomWebClient;
  const originals = new Map<string, Buffer>();

  before(async () => {
    orthanc = await startOrthancWeb();
    client = new DicomWebClient({ baseUrl: `${orthanc.baseUrl}/` });
    for (const [uid, name] of Object.entries(FILES)) originals.set(uid, await readFile(join(DATA, name)));
  });

  after(async () => {
    await orthanc?.stop();
    killChildren();
  });

  test('store: the three files in one STOW-RS request', async () => {
    const result = await client.store([originals.get(BLUE)!, originals.get(GREEN)!]);
    assert.equal(result.status, 200);
    assert.deepEqual(result.failed, []);
    assert.deepEqual(result.referenced.map((r) => r.sopInstanceUid).sort(), [BLUE, GREEN].sort());
    assert.ok(result.referenced.every((r) => r.sopClassUid === SC));
    assert.equal(result.retrieveBase, `${orthanc.baseUrl}/studies/${STUDY}`);
    // A Blob (file-backed, streamed by fetch) into the study's own URL.
    const asBlob = await client.store([await openAsBlob(join(DATA, FILES[RED]))], {
      studyInstanceUid: STUDY,
    });
    assert.equal(asBlob.status, 200);
    assert.deepEqual(
      asBlob.referenced.map((r) => [r.sopInstanceUid, r.retrieveUrl]),
      [[RED, `${orthanc.baseUrl}/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${RED}`]],
    );
  });

  test('retrieve the study: three Part 10 files, the ones stored', async () => {
    const seen: string[] = [];
    for await (const file of client.retrieveStudy(STUDY)) {
      const uid = sopInstanceUid(file);
      assert.ok(uid && originals.has(uid), `unexpected instance ${uid}`);
      // Orthanc keeps the file as received and the client asks for transfer-syntax=*: the same bytes.
      assert.ok(Buffer.from(file).equals(originals.get(uid)!), `${uid}: bytes differ`);
      seen.push(uid);
    }
    assert.deepEqual(seen.sort(), [BLUE, GREEN, RED].sort());
  });

  test('retrieve a series (2 instances) and an instance (1)', async () => {
    const series: string[] = [];
    for await (const file of client.retrieveSeries(STUDY, SERIES_GREEN_RED))
      series.push(sopInstanceUid(file)!);
    assert.deepEqual(series.sort(), [GREEN, RED].sort());
    const instance: string[] = [];
    for await (const file of client.retrieveInstance(STUDY, SERIES_BLUE, BLUE))
      instance.push(sopInstanceUid(file)!);
    assert.deepEqual(instance, [BLUE]);
  });

  test('retrieveParts streams; leaving after the first part cancels the response', async () => {
    let parts = 0;
    for await (const part of client.retrieveParts({ study: STUDY })) {
      assert.match(part.contentType ?? '', /^application\/dicom/);
      parts++;
      break;
    }
    assert.equal(parts, 1);
    // The connection is still usable.
    assert.equal((await client.retrieveMetadata(STUDY, SERIES_BLUE, BLUE)).length, 1);
  });

  test('metadata: one DICOM JSON object per instance', async () => {
    const metadata = await client.retrieveMetadata(STUDY);
    assert.equal(metadata.length, 3);
    assert.deepEqual(metadata.map((m) => value(m, '00080018')).sort(), [BLUE, GREEN, RED].sort());
    for (const m of metadata) {
      assert.equal(value(m, '0020000D'), STUDY);
      assert.equal(value(m, '00280010'), 979);
    }
  });

  test('a frame of red-triangle: rows x columns x samples x bits/8 bytes', async () => {
    const [meta] = await client.retrieveMetadata(STUDY, SERIES_GREEN_RED, RED);
    const rows = value(meta!, '00280010') as number;
    const columns = value(meta!, '00280011') as number;
    const samples = value(meta!, '00280002') as number;
    const bits = value(meta!, '00280100') as number;
    const frames = await client.retrieveFrames(STUDY, SERIES_GREEN_RED, RED, [1]);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.length, (rows * columns * samples * bits) / 8);
    assert.equal(frames[0]!.length, 979 * 985 * 3);
    // The frame is the Pixel Data of the file (native, one frame; the value has a padding byte, the frame not).
    const pixels = readPart10(originals.get(RED)!).dataset.bytes(Tag.PixelData)!;
    assert.equal(pixels.length, frames[0]!.length + 1);
    assert.ok(pixels.subarray(0, frames[0]!.length).equals(Buffer.from(frames[0]!)));
  });

  test('QIDO: studies by StudyInstanceUID, series by Modality, instances by SOPInstanceUID', async () => {
    const studies = await client.query('studies', { StudyInstanceUID: STUDY });
    assert.equal(studies.matches.length, 1);
    assert.equal(value(studies.matches[0]!, '0020000D'), STUDY);
    assert.deepEqual(studies.warnings, []);
    // Both series of the tutorial are OT: by Modality alone, two; with the series UID, one.
    const series = await client.query('series', { Modality: 'OT' }, { study: STUDY });
    assert.deepEqual(
      series.matches.map((s) => value(s, '0020000E')).sort(),
      [SERIES_BLUE, SERIES_GREEN_RED].sort(),
    );
    const one = await client.query('series', { Modality: 'OT', SeriesInstanceUID: SERIES_BLUE });
    assert.equal(one.matches.length, 1);
    const instances = await client.query('instances', {
      SOPInstanceUID: RED,
      includefield: ['00280010', 'Columns'],
    });
    assert.equal(instances.matches.length, 1);
    assert.equal(value(instances.matches[0]!, '00080018'), RED);
    assert.equal(value(instances.matches[0]!, '00280011'), 985);
    const limited = await client.query('instances', { limit: 1 }, { study: STUDY });
    assert.equal(limited.matches.length, 1);
    const none = await client.query('studies', { PatientID: 'nobody' });
    assert.deepEqual(none.matches, []);
  });

  test('errors: the HTTP status and the server message (404 of an unknown study)', async () => {
    const err = await rejectsHttp(client.retrieveMetadata('1.2.3'), 404, /HTTP 404 Not Found/);
    assert.equal(err.code, 'ERR_DICOMWEB_HTTP');
    assert.match(err.serverMessage, /inexistent/);
  });

  test('delete: Orthanc’s DICOMweb plugin has no DELETE (405): the client says so', async () => {
    const err = await rejectsHttp(
      client.deleteInstance(STUDY, SERIES_BLUE, BLUE),
      405,
      /DELETE .*instances.*HTTP 405 Method Not Allowed/,
    );
    assert.equal(err.method, 'DELETE');
    await rejectsHttp(client.deleteSeries(STUDY, SERIES_BLUE), 405, /405/);
    await rejectsHttp(client.deleteStudy(STUDY), 405, /405/);
    // Nothing was deleted.
    assert.equal((await client.retrieveMetadata(STUDY)).length, 3);
  });

  test('a bearer token is sent on every request', async () => {
    const seen: (string | null)[] = [];
    const spying = new DicomWebClient({
      baseUrl: orthanc.baseUrl,
      token: async () => 'secret-token',
      fetch: (input, init) => {
        seen.push(new Headers(init?.headers).get('authorization'));
        return fetch(input, init);
      },
    });
    await spying.query('studies');
    assert.deepEqual(seen, ['Bearer secret-token']);
  });

  test('no server: ERR_DICOMWEB_NETWORK with status 0', async () => {
    const dead = new DicomWebClient({ baseUrl: `http://127.0.0.1:${orthanc.httpPort + 0}/no-such-root` });
    await rejectsHttp(dead.query('studies'), 404, /404/);
    const closed = new DicomWebClient({ baseUrl: 'http://127.0.0.1:1/dicom-web' });
    const err = await rejectsHttp(closed.query('studies'), 0, /no response/);
    assert.equal(err.code, 'ERR_DICOMWEB_NETWORK');
  });
});
