/**
 * Query/Retrieve between Tessera and a real Orthanc (Debian package `orthanc`, started here with a
 * temporary configuration on free loopback ports): `tessera find` on Orthanc, `tessera move` asking
 * Orthanc to send a study into Tessera, `tessera move --port` receiving a study itself (from Orthanc
 * and from Tessera), `tessera get` from Orthanc, and Orthanc (as C-FIND / C-MOVE SCU through its
 * REST API) querying Tessera and having Tessera move a study to it.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type Child,
  datasetSha256,
  freePort,
  killChildren,
  requireTools,
  run,
  sleep,
  start,
  writeInstance,
} from '../../test/helpers/interop.ts';
import { parseConfig, type RunningArchive, startArchive } from '../server/index.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DATA = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const TUTORIAL = ['blue-circle', 'green-square', 'red-triangle'].map((n) =>
  join(DATA, 'ms-tutorial', `${n}.dcm`),
);
const TUTORIAL_STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const ORTHANC = '/usr/sbin/Orthanc';

const quiet = new Writable({ write: (_c, _e, done) => done() });

/** `tessera ...` as a child process (the CLI as users run it). */
const tessera = (args: readonly string[], timeoutMs = 60_000) =>
  run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, timeoutMs });

describe('Tessera and Orthanc: find, move and get both ways', { timeout: 300_000 }, () => {
  let dir = '';
  let orthancDicom = 0;
  let orthancHttp = 0;
  let archive: RunningArchive;
  let tesseraStudy = '';
  /** Where `tessera move --port` listens, as the AE TMOVE both peers know. */
  let movePort = 0;
  const generatedShas = new Set<string>();

  async function rest(method: 'GET' | 'POST', route: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`http://127.0.0.1:${orthancHttp}${route}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    assert.ok(res.ok, `Orthanc ${method} ${route}: HTTP ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  }

  before(async () => {
    await requireTools('storescu');
    dir = await mkdtemp(join(tmpdir(), 'tessera-orthanc-'));
    orthancDicom = await freePort();
    orthancHttp = await freePort();
    const tesseraPort = await freePort();
    movePort = await freePort();
    const config = {
      Name: 'tessera-interop',
      StorageDirectory: join(dir, 'orthanc', 'storage'),
      IndexDirectory: join(dir, 'orthanc', 'index'),
      DicomAet: 'ORTHANC',
      DicomPort: orthancDicom,
      HttpPort: orthancHttp,
      DicomCheckCalledAet: false,
      RemoteAccessAllowed: false,
      AuthenticationEnabled: false,
      // Orthanc answers C-FIND/C-MOVE/C-GET from any AE; C-MOVE destinations must be known.
      DicomAlwaysAllowFind: true,
      DicomAlwaysAllowMove: true,
      DicomAlwaysAllowGet: true,
      DicomModalities: {
        TESSERA: ['TESSERA', '127.0.0.1', tesseraPort],
        TMOVE: ['TMOVE', '127.0.0.1', movePort],
      },
      Plugins: [],
    };
    await mkdir(join(dir, 'orthanc'));
    await writeFile(join(dir, 'orthanc', 'config.json'), JSON.stringify(config));
    const orthanc: Child = start(ORTHANC, [join(dir, 'orthanc', 'config.json')], { timeoutMs: 280_000 });
    archive = await startArchive(
      parseConfig({
        dataDir: join(dir, 'tessera'),
        dimsePort: tesseraPort,
        httpPort: 0,
        logLevel: 'warn',
        peers: {
          ORTHANC: { host: '127.0.0.1', port: orthancDicom },
          TMOVE: { host: '127.0.0.1', port: movePort },
        },
      }),
      { logDestination: quiet, processMetrics: false },
    );
    for (let i = 0; i < 100 && orthanc.process.exitCode === null; i++) {
      try {
        await rest('GET', '/system');
        break;
      } catch {
        await sleep(100);
      }
    }
    await rest('GET', '/system');
    // Orthanc holds the tutorial study; Tessera a generated study of 3 instances.
    const toOrthanc = await run(
      'storescu',
      ['-aec', 'ORTHANC', '127.0.0.1', String(orthancDicom), ...TUTORIAL],
      {
        timeoutMs: 60_000,
      },
    );
    assert.equal(toOrthanc.code, 0, toOrthanc.stderr);
    await mkdir(join(dir, 'gen'));
    const files: string[] = [];
    for (let i = 0; i < 3; i++) {
      const g = await writeInstance(join(dir, 'gen', `g${i}.dcm`), {
        rows: 64,
        columns: 64,
        patientName: 'Tessera^Only',
      });
      files.push(g.path);
      generatedShas.add(g.datasetSha256);
    }
    // writeInstance gives each file its own study: send them, then pick the first study.
    const toTessera = await run('storescu', ['-aec', 'TESSERA', '127.0.0.1', String(tesseraPort), ...files], {
      timeoutMs: 60_000,
    });
    assert.equal(toTessera.code, 0, toTessera.stderr);
    tesseraStudy = (
      await tesseraFind(['--level', 'STUDY', '-k', 'PatientName=Tessera*'], archive.dimsePort, 'TESSERA')
    )[0]!['0020000D']!.Value![0] as string;
  });

  after(async () => {
    await archive?.close();
    killChildren();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  type Json = Record<string, { vr: string; Value?: unknown[] }>;
  async function tesseraFind(args: readonly string[], port: number, aec: string): Promise<Json[]> {
    const r = await tessera(['find', '127.0.0.1', String(port), '--aec', aec, '--json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Json[];
  }

  test('tessera find on Orthanc: study and series levels', async () => {
    const studies = await tesseraFind(
      ['--level', 'STUDY', '-k', 'PatientName=Anon*'],
      orthancDicom,
      'ORTHANC',
    );
    assert.equal(studies.length, 1);
    assert.equal(studies[0]!['0020000D']!.Value![0], TUTORIAL_STUDY);
    assert.equal((studies[0]!['00100010']!.Value![0] as { Alphabetic: string }).Alphabetic, 'Anony Mous');
    assert.equal(studies[0]!['00201208']!.Value![0], 3);
    const series = await tesseraFind(
      ['--level', 'SERIES', '-k', `StudyInstanceUID=${TUTORIAL_STUDY}`],
      orthancDicom,
      'ORTHANC',
    );
    assert.equal(series.length, 2);
  });

  test('tessera move: Orthanc sends the tutorial study into Tessera, byte-identical', async () => {
    const r = await tessera([
      'move',
      '127.0.0.1',
      String(orthancDicom),
      '--aec',
      'ORTHANC',
      '--dest',
      'TESSERA',
      '--level',
      'STUDY',
      '-k',
      `StudyInstanceUID=${TUTORIAL_STUDY}`,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /3 completed, 0 with warnings, 0 failed/);
    const study = await archive.archive.index.study(TUTORIAL_STUDY);
    assert.equal(study?.NumberOfStudyRelatedInstances, 3);
    const sources = new Set<string>();
    for (const f of TUTORIAL) sources.add((await datasetSha256(f)).sha256);
    for (const f of TUTORIAL) {
      const uid = (await run('dcmdump', ['-q', '+P', 'SOPInstanceUID', f])).stdout.match(/\[([\d.]+)\]/)![1]!;
      const row = await archive.archive.index.instance(uid);
      assert.ok(row, `${uid} is in Tessera`);
      assert.ok(sources.has(row.checksum), `${uid}: the stored data set is one of the sources`);
    }
  });

  /** `tessera move --port`: the study comes back to the command itself (as movescu --port does). */
  async function moveHere(peerPort: number, aec: string, study: string, out: string, count: number) {
    const r = await tessera([
      'move',
      '127.0.0.1',
      String(peerPort),
      '--aec',
      aec,
      '--aet',
      'TMOVE',
      '--port',
      String(movePort),
      '--out',
      out,
      '-k',
      `StudyInstanceUID=${study}`,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`: ${count} completed, 0 with warnings, 0 failed`));
    assert.match(r.stdout, new RegExp(`\\n${count} instance\\(s\\) received on port ${movePort}`));
    const files = await readdir(out);
    assert.equal(files.length, count);
    return files;
  }

  test('tessera move --port: Orthanc sends the tutorial study to the command itself, byte-identical', async () => {
    const out = join(dir, 'moved-from-orthanc');
    const files = await moveHere(orthancDicom, 'ORTHANC', TUTORIAL_STUDY, out, 3);
    const sources = new Set<string>();
    for (const f of TUTORIAL) sources.add((await datasetSha256(f)).sha256);
    for (const f of files) assert.ok(sources.has((await datasetSha256(join(out, f))).sha256), f);
  });

  test('tessera move --port: Tessera (serve) sends a study to the command itself, byte-identical', async () => {
    const out = join(dir, 'moved-from-tessera');
    // The generated study (one instance: writeInstance gives each file a study of its own).
    const files = await moveHere(archive.dimsePort, 'TESSERA', tesseraStudy, out, 1);
    for (const f of files) assert.ok(generatedShas.has((await datasetSha256(join(out, f))).sha256), f);
  });

  test('tessera move: without --dest or --port, a clear error', async () => {
    const r = await tessera([
      'move',
      '127.0.0.1',
      String(orthancDicom),
      '-k',
      `StudyInstanceUID=${TUTORIAL_STUDY}`,
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--dest <ae> is required \(or --port/);
  });

  test('tessera get from Orthanc into a folder', async () => {
    const out = join(dir, 'got');
    const r = await tessera([
      'get',
      '127.0.0.1',
      String(orthancDicom),
      '--aec',
      'ORTHANC',
      '--out',
      out,
      '--level',
      'STUDY',
      '-k',
      `StudyInstanceUID=${TUTORIAL_STUDY}`,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const files = await readdir(out);
    assert.equal(files.length, 3);
    const sources = new Set<string>();
    for (const f of TUTORIAL) sources.add((await datasetSha256(f)).sha256);
    for (const f of files) assert.ok(sources.has((await datasetSha256(join(out, f))).sha256), f);
  });

  test('Orthanc queries Tessera (C-FIND SCU) and retrieves a study from it (Tessera moves it to Orthanc)', async () => {
    const query = (await rest('POST', '/modalities/TESSERA/query', {
      Level: 'Study',
      Query: { PatientName: 'Tessera*', StudyInstanceUID: '' },
    })) as { ID: string };
    const answers = (await rest('GET', `/queries/${query.ID}/answers?expand`)) as Record<
      string,
      { Value: string }
    >[];
    assert.equal(answers.length, 3, JSON.stringify(answers));
    assert.ok(answers.some((a) => a['0020,000d']?.Value === tesseraStudy));
    // Tessera's C-MOVE to ORTHANC: a sub-association to Orthanc's port with the stored syntax.
    const moved = (await rest('POST', '/modalities/TESSERA/move', {
      Level: 'Study',
      Resources: [{ StudyInstanceUID: tesseraStudy }],
      TargetAet: 'ORTHANC',
      Synchronous: true,
    })) as unknown;
    assert.ok(moved !== undefined);
    const found = (await rest('POST', '/tools/find', {
      Level: 'Instance',
      Query: { StudyInstanceUID: tesseraStudy },
    })) as string[];
    assert.equal(found.length, 1);
    const file = Buffer.from(
      await (await fetch(`http://127.0.0.1:${orthancHttp}/instances/${found[0]}/file`)).arrayBuffer(),
    );
    const path = join(dir, 'from-orthanc.dcm');
    await writeFile(path, file);
    assert.ok(
      generatedShas.has((await datasetSha256(path)).sha256),
      'Orthanc holds the bytes Tessera stored',
    );
  });
});
