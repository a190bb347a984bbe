/**
 * `tessera web ...` as users run it (a child process) against a real Orthanc with its DICOMweb
 * plugin: the tutorial's three files stored, queried, retrieved into a folder, a frame written, and
 * the DELETE Orthanc does not have reported as an error.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { killChildren, run } from '../../test/helpers/interop.ts';
import { type OrthancWeb, startOrthancWeb } from '../../test/helpers/orthanc-dicomweb.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TUTORIAL = fileURLToPath(new URL('../../../shared/data/dicom/ms-tutorial/', import.meta.url));
const STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const SERIES_GREEN_RED = '1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652';
const BLUE = '1.2.826.0.1.3680043.8.498.13273713909719068980354078852867170114';
const GREEN = '1.2.826.0.1.3680043.8.498.12714725698140337137334606354172323212';
const RED = '1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395';

const tessera = (args: readonly string[]) =>
  run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'web', ...args], {
    cwd: ROOT,
    timeoutMs: 60_000,
  });

describe('tessera web against Orthanc', { timeout: 240_000 }, () => {
  let orthanc: OrthancWeb;
  let dir = '';
  let url = '';

  before(async () => {
    orthanc = await startOrthancWeb('tessera-cli-web');
    url = orthanc.baseUrl;
    dir = await mkdtemp(join(tmpdir(), 'tessera-cli-web-'));
  });

  after(async () => {
    await orthanc?.stop();
    killChildren();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('store: a folder with the three files and one that is not DICOM', async () => {
    const input = join(dir, 'input');
    await run('cp', ['-r', TUTORIAL, input]);
    await writeFile(join(input, 'notes.txt'), 'not DICOM\n');
    const r = await tessera(['store', input, '--url', url, '--batch', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^STOW-RS .*: 3 of 3 stored \(0 with warnings, 0 failed, \d+ not DICOM\)/);
    assert.match(r.stderr, /notes\.txt: skipped/);
  });

  test('store: failures are listed and the exit code is 1 (a study UID that is not the files’)', async () => {
    const r = await tessera(['store', join(TUTORIAL, 'blue-circle.dcm'), '--url', url, '--study', '1.2.3']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /0 of 1 stored/);
    assert.match(r.stderr, /blue-circle\.dcm: /);
  });

  test('query: studies by StudyInstanceUID, series, instances by SOPInstanceUID', async () => {
    const studies = await tessera(['query', 'studies', `StudyInstanceUID=${STUDY}`, '--url', url]);
    assert.equal(studies.code, 0, studies.stderr);
    const parsed = JSON.parse(studies.stdout) as Record<string, { Value?: unknown[] }>[];
    assert.equal(parsed.length, 1);
    assert.equal(parsed[0]!['0020000D']?.Value?.[0], STUDY);
    const series = await tessera([
      'query',
      'series',
      'Modality=OT',
      '--study',
      STUDY,
      '--url',
      url,
      '--compact',
    ]);
    assert.equal(JSON.parse(series.stdout).length, 2);
    const instances = await tessera([
      'query',
      'instances',
      `SOPInstanceUID=${RED}`,
      '--includefield',
      'Rows',
      '--url',
      url,
    ]);
    const [red] = JSON.parse(instances.stdout) as Record<string, { Value?: unknown[] }>[];
    assert.equal(red!['00080018']?.Value?.[0], RED);
    assert.equal(red!['00280010']?.Value?.[0], 979);
  });

  test('retrieve: the study into a folder, files named by SOP Instance UID, identical to the originals', async () => {
    const out = join(dir, 'retrieved');
    const r = await tessera(['retrieve', STUDY, '--url', url, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /3 instances written/);
    assert.deepEqual((await readdir(out)).sort(), [`${BLUE}.dcm`, `${GREEN}.dcm`, `${RED}.dcm`].sort());
    const original = await readFile(join(TUTORIAL, 'red-triangle.dcm'));
    assert.ok((await readFile(join(out, `${RED}.dcm`))).equals(original));
    const one = await tessera([
      'retrieve',
      STUDY,
      SERIES_GREEN_RED,
      GREEN,
      '--url',
      url,
      '--out',
      join(dir, 'one'),
    ]);
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual(await readdir(join(dir, 'one')), [`${GREEN}.dcm`]);
  });

  test('metadata and frames', async () => {
    const m = await tessera(['metadata', STUDY, SERIES_GREEN_RED, '--url', url, '--compact']);
    assert.equal(m.code, 0, m.stderr);
    assert.equal(JSON.parse(m.stdout).length, 2);
    const out = join(dir, 'frames');
    const f = await tessera(['frames', STUDY, SERIES_GREEN_RED, RED, '1', '--url', url, '--out', out]);
    assert.equal(f.code, 0, f.stderr);
    assert.equal((await stat(join(out, `${RED}.1.raw`))).size, 979 * 985 * 3);
  });

  test('errors: one line with the HTTP status and code, exit 1 (404, and DELETE that Orthanc lacks)', async () => {
    const missing = await tessera(['metadata', '1.2.3', '--url', url]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /^tessera: error: GET .*\/studies\/1\.2\.3\/metadata: HTTP 404 Not Found: .*\[ERR_DICOMWEB_HTTP\]\n$/,
    );
    const del = await tessera(['delete', STUDY, '--url', url]);
    assert.equal(del.code, 1);
    assert.match(del.stderr, /DELETE .*HTTP 405 Method Not Allowed \[ERR_DICOMWEB_HTTP\]/);
    const bad = await tessera(['metadata', '../../system', '--url', url]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /\[ERR_DICOMWEB_BAD_UID\]/);
  });
});
