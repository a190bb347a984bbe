/**
 * Query/Retrieve against the archive with real DCMTK tools (findscu, movescu, getscu, storescp) over
 * 127.0.0.1: the archive is loaded with storescu from the shared corpus and generated instances, then
 * queried at each level and model, moved to a DCMTK storescp (files byte-identical in their data set
 * part), to an unknown AE (A801) and to one that refuses (A702), and retrieved with getscu.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
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
import { type Dataset, readPart10 } from '../codec/index.ts';
import { Dimse, find, identifierOf, move, qrContexts } from '../dimse/index.ts';
import { type DimseServer, startDimseServer } from '../scp/index.ts';
import { type RunningArchive, startArchive } from './archive-server.ts';
import { parseConfig } from './config.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DATA = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const TUTORIAL = ['blue-circle', 'green-square', 'red-triangle'].map((n) =>
  join(DATA, 'ms-tutorial', `${n}.dcm`),
);
const STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const SERIES_2 = '1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652';
const RED = '1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395';
const MR_JPEG = join(DATA, 'transfer-syntax', 'mr-jpeg-lossless-sv1-dcm4che.dcm');
const UTF8 = join(DATA, 'charset', 'lena-utf8.dcm');
const CYRILLIC = join(DATA, 'charset', 'lena-cyrillic.dcm');

const quiet = new Writable({ write: (_c, _e, done) => done() });

describe('Query/Retrieve SCP with DCMTK findscu, movescu, getscu', { timeout: 300_000 }, () => {
  let dir = '';
  let archive: RunningArchive;
  let port = 0;
  let destPort = 0;
  let storescp: Child;
  let refuser: DimseServer | undefined;
  const destDir = () => join(dir, 'dest');
  const generated: { path: string; sopInstanceUid: string; patientName: string }[] = [];
  let responses = 0;

  /** findscu with -X: the responses as data sets, and the tool's output. */
  async function findscu(
    model: '-S' | '-P' | '-O',
    keys: readonly string[],
  ): Promise<{ matches: Dataset[]; output: string }> {
    const out = join(dir, `find-${++responses}`);
    await mkdir(out);
    const r = await run(
      'findscu',
      [
        '-v',
        model,
        '-aet',
        'FINDSCU',
        '-aec',
        'TESSERA',
        '-X',
        '-od',
        out,
        ...keys.flatMap((k) => ['-k', k]),
        '127.0.0.1',
        String(port),
      ],
      { timeoutMs: 30_000 },
    );
    const files = (await readdir(out)).filter((f) => f.startsWith('rsp')).sort();
    const matches = await Promise.all(
      files.map(async (f) => readPart10(await readFile(join(out, f))).dataset),
    );
    return { matches, output: r.stdout + r.stderr };
  }

  before(async () => {
    await requireTools('storescu', 'findscu', 'movescu', 'getscu', 'storescp');
    dir = await mkdtemp(join(tmpdir(), 'tessera-qr-'));
    await mkdir(destDir());
    destPort = await freePort();
    storescp = start('storescp', ['+xa', '-aet', 'DEST', '-od', destDir(), String(destPort)], {
      timeoutMs: 280_000,
    });
    const refusing = await freePort(); // nothing listens there
    // An SCP that rejects the association (calling AE TESSERA not on its allow-list).
    refuser = await startDimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'REFUSER',
      callingAETitles: ['SOMEONE-ELSE'],
      storeDir: join(dir, 'refuser'),
    });
    const config = parseConfig({
      dataDir: join(dir, 'archive'),
      dimsePort: 0,
      httpPort: 0,
      logLevel: 'warn',
      peers: {
        DEST: { host: '127.0.0.1', port: destPort },
        NOWHERE: { host: '127.0.0.1', port: refusing },
        REFUSER: { host: '127.0.0.1', port: refuser.port },
      },
    });
    archive = await startArchive(config, { logDestination: quiet, processMetrics: false });
    port = archive.dimsePort;
    await mkdir(join(dir, 'gen'));
    for (const [i, name] of ['Doe^John', 'Doe^Jane', 'Smith^Anna', 'doe^jim'].entries()) {
      const path = join(dir, 'gen', `g${i}.dcm`);
      const g = await writeInstance(path, { rows: 32, columns: 32, patientName: name });
      generated.push({ path, sopInstanceUid: g.sopInstanceUid, patientName: name });
    }
    const files = [...TUTORIAL, ...generated.map((g) => g.path)];
    const r = await run(
      'storescu',
      ['-aet', 'MODALITY', '-aec', 'TESSERA', '127.0.0.1', String(port), ...files],
      {
        timeoutMs: 60_000,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    // Compressed files go in their own syntax: -xs proposes JPEG Lossless, -xy JPEG Baseline.
    for (const [flag, compressed] of [
      ['-xs', [MR_JPEG]],
      ['-xy', [UTF8, CYRILLIC]],
    ] as const) {
      const c = await run(
        'storescu',
        [flag, '-aet', 'MODALITY', '-aec', 'TESSERA', '127.0.0.1', String(port), ...compressed],
        {
          timeoutMs: 60_000,
        },
      );
      assert.equal(c.code, 0, c.stderr);
    }
    assert.equal((await archive.archive.index.counts()).instances, files.length + 3);
  });

  after(async () => {
    await archive?.close();
    await refuser?.close(0);
    killChildren();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('STUDY level, Study Root: wildcard on PatientName (case-insensitive), return keys filled from the index', async () => {
    const { matches } = await findscu('-S', [
      'QueryRetrieveLevel=STUDY',
      'PatientName=doe*',
      'StudyInstanceUID',
      'PatientID',
      'StudyDate',
      'NumberOfStudyRelatedInstances',
      'ModalitiesInStudy',
    ]);
    const names = matches.map((m) => m.string(0x00100010)).sort();
    assert.deepEqual(names, ['Doe^Jane', 'Doe^John', 'doe^jim']);
    for (const m of matches) {
      assert.equal(m.string(0x00080052), 'STUDY');
      assert.equal(m.string(0x00100020), 'TESSERA-INTEROP');
      assert.equal(m.string(0x00080020), '20240101');
      assert.equal(m.string(0x00201208), '1');
      assert.equal(m.string(0x00080061), 'OT');
      assert.match(m.string(0x0020000d) ?? '', /^2\.25\.\d+$/);
    }
  });

  test('STUDY level: UID list, date range and universal matching', async () => {
    const list = await findscu('-S', [
      'QueryRetrieveLevel=STUDY',
      `StudyInstanceUID=${STUDY}\\1.3.46.670589.11.4140.6.123890950282789940`,
      'NumberOfStudyRelatedSeries',
      'NumberOfStudyRelatedInstances',
    ]);
    const byUid = new Map(list.matches.map((m) => [m.string(0x0020000d), m]));
    assert.equal(byUid.size, 2);
    assert.equal(byUid.get(STUDY)?.string(0x00201206), '2');
    assert.equal(byUid.get(STUDY)?.string(0x00201208), '3');

    const range = await findscu('-S', [
      'QueryRetrieveLevel=STUDY',
      'StudyDate=20200101-20201231',
      'StudyInstanceUID',
    ]);
    assert.deepEqual(
      range.matches.map((m) => m.string(0x0020000d)),
      [STUDY],
    );
    const open = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=-20050101', 'StudyInstanceUID']);
    assert.deepEqual(
      open.matches.map((m) => m.string(0x0020000d)),
      ['1.3.46.670589.11.4140.6.123890950282789940'],
    );

    const all = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID']);
    assert.equal(all.matches.length, (await archive.archive.index.counts()).studies);
  });

  test('results beyond ASCII come back in UTF-8 (ISO_IR 192), whatever the stored character set', async () => {
    const { matches } = await findscu('-S', [
      'QueryRetrieveLevel=STUDY',
      'PatientID=cyrillic',
      'PatientName',
    ]);
    assert.equal(matches.length, 1);
    assert.equal(matches[0]!.string(0x00080005), 'ISO_IR 192');
    assert.equal(matches[0]!.string(0x00100010), 'Test-Дћ');
  });

  test('SERIES and IMAGE levels with the unique keys above; Patient Root PATIENT level', async () => {
    const series = await findscu('-S', [
      'QueryRetrieveLevel=SERIES',
      `StudyInstanceUID=${STUDY}`,
      'SeriesInstanceUID',
      'Modality',
      'NumberOfSeriesRelatedInstances',
    ]);
    const counts = new Map(series.matches.map((m) => [m.string(0x0020000e), m.string(0x00201209)]));
    assert.equal(counts.size, 2);
    assert.equal(counts.get(SERIES_2), '2');

    const images = await findscu('-S', [
      'QueryRetrieveLevel=IMAGE',
      `StudyInstanceUID=${STUDY}`,
      `SeriesInstanceUID=${SERIES_2}`,
      'SOPInstanceUID',
      'SOPClassUID',
    ]);
    assert.equal(images.matches.length, 2);
    assert.ok(images.matches.some((m) => m.string(0x00080018) === RED));
    assert.ok(images.matches.every((m) => m.string(0x00080016) === '1.2.840.10008.5.1.4.1.1.7'));

    const patients = await findscu('-P', [
      'QueryRetrieveLevel=PATIENT',
      'PatientID=ID1',
      'PatientName',
      'NumberOfPatientRelatedInstances',
    ]);
    assert.equal(patients.matches.length, 1);
    assert.equal(patients.matches[0]!.string(0x00100010), 'Anony Mous');
    assert.equal(patients.matches[0]!.string(0x00201204), '3');
  });

  test('bad queries: a SERIES query without its study, an unknown level; the server stays up', async () => {
    const noStudy = await findscu('-S', ['QueryRetrieveLevel=SERIES', 'Modality=OT', 'SeriesInstanceUID']);
    assert.equal(noStudy.matches.length, 0);
    assert.match(noStudy.output, /0xa900|DoesNotMatchSOPClass/i, noStudy.output);
    const badLevel = await findscu('-S', ['QueryRetrieveLevel=FRAME', 'StudyInstanceUID']);
    assert.equal(badLevel.matches.length, 0);
    assert.match(badLevel.output, /0xa900|DoesNotMatchSOPClass/i);
    const echo = await run('echoscu', ['-aec', 'TESSERA', '127.0.0.1', String(port)], { timeoutMs: 10_000 });
    assert.equal(echo.code, 0);
  });

  test('movescu of a study to a DCMTK storescp: every file arrives byte-identical in its data set', async () => {
    const r = await run(
      'movescu',
      [
        '-v',
        '-S',
        '-aet',
        'MOVESCU',
        '-aec',
        'TESSERA',
        '-aem',
        'DEST',
        '-k',
        'QueryRetrieveLevel=STUDY',
        '-k',
        `StudyInstanceUID=${STUDY}`,
        '127.0.0.1',
        String(port),
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const received = (await readdir(destDir())).filter((f) => !f.startsWith('.'));
    assert.equal(received.length, 3, received.join(', '));
    const sent = new Map<string, string>();
    for (const f of TUTORIAL) sent.set((await datasetSha256(f)).sha256, f);
    for (const f of received) {
      const { sha256 } = await datasetSha256(join(destDir(), f));
      assert.ok(sent.has(sha256), `${f} differs from every source file`);
    }
  });

  test('movescu of a series and an instance of a compressed study; to an unknown AE (A801) and a closed one (A702)', async () => {
    const before = (await readdir(destDir())).length;
    const mr = await run(
      'movescu',
      [
        '-S',
        '-aec',
        'TESSERA',
        '-aem',
        'DEST',
        '-k',
        'QueryRetrieveLevel=STUDY',
        '-k',
        'StudyInstanceUID=1.3.46.670589.11.4140.6.123890950282789940',
        '127.0.0.1',
        String(port),
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(mr.code, 0, mr.stdout + mr.stderr);
    assert.equal((await readdir(destDir())).length, before + 1);
    const jpeg = (await readdir(destDir())).find((f) => f.startsWith('MR'));
    assert.ok(jpeg, 'the JPEG lossless MR arrived');
    assert.equal((await datasetSha256(join(destDir(), jpeg))).sha256, (await datasetSha256(MR_JPEG)).sha256);

    const unknown = await run(
      'movescu',
      [
        '-v',
        '-S',
        '-aec',
        'TESSERA',
        '-aem',
        'NOBODY',
        '-k',
        'QueryRetrieveLevel=STUDY',
        '-k',
        `StudyInstanceUID=${STUDY}`,
        '127.0.0.1',
        String(port),
      ],
      { timeoutMs: 30_000 },
    );
    assert.match(unknown.stdout + unknown.stderr, /0xa801|MoveDestinationUnknown|Move destination unknown/i);
    const closed = await run(
      'movescu',
      [
        '-v',
        '-S',
        '-aec',
        'TESSERA',
        '-aem',
        'NOWHERE',
        '-k',
        'QueryRetrieveLevel=STUDY',
        '-k',
        `StudyInstanceUID=${STUDY}`,
        '127.0.0.1',
        String(port),
      ],
      { timeoutMs: 30_000 },
    );
    assert.match(
      closed.stdout + closed.stderr,
      /0xa702|OutOfResourcesSubOperations/i,
      closed.stdout + closed.stderr,
    );
  });

  test('getscu of a study, a series and an instance: files identical to the sources', async () => {
    const cases: [string[], number][] = [
      [['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${STUDY}`], 3],
      [['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${STUDY}`, `SeriesInstanceUID=${SERIES_2}`], 2],
      [
        [
          'QueryRetrieveLevel=IMAGE',
          `StudyInstanceUID=${STUDY}`,
          `SeriesInstanceUID=${SERIES_2}`,
          `SOPInstanceUID=${RED}`,
        ],
        1,
      ],
    ];
    const sources = new Set<string>();
    for (const f of TUTORIAL) sources.add((await datasetSha256(f)).sha256);
    for (const [i, [keys, expected]] of cases.entries()) {
      const out = join(dir, `get-${i}`);
      await mkdir(out);
      const r = await run(
        'getscu',
        [
          '-v',
          '-S',
          '-aet',
          'GETSCU',
          '-aec',
          'TESSERA',
          '-od',
          out,
          ...keys.flatMap((k) => ['-k', k]),
          '127.0.0.1',
          String(port),
        ],
        { timeoutMs: 60_000 },
      );
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const files = await readdir(out);
      assert.equal(files.length, expected, `${keys.join(' ')}: ${files.join(', ')}\n${r.stdout}${r.stderr}`);
      for (const f of files) assert.ok(sources.has((await datasetSha256(join(out, f))).sha256), f);
    }
  });

  test('Tessera SCU: C-CANCEL ends a C-FIND early (final Cancel); C-MOVE reports Pending counts', async () => {
    const dimse = await Dimse.connect({
      host: '127.0.0.1',
      port,
      callingAETitle: 'SCU',
      calledAETitle: 'TESSERA',
      contexts: qrContexts('STUDY_ROOT', ['find', 'move']),
      timeoutMs: 10_000,
    });
    const query = find(dimse, {
      model: 'STUDY_ROOT',
      identifier: identifierOf('STUDY', [[0x0020000d, '']]),
    });
    const first = await query.next();
    assert.equal(first.done, false);
    const ended = await query.return(undefined as never);
    assert.equal(ended.done, true);
    const progress: number[] = [];
    const result = await move(dimse, {
      model: 'STUDY_ROOT',
      destination: 'DEST',
      identifier: identifierOf('STUDY', [[0x0020000d, STUDY]]),
      onProgress: (c) => progress.push(c.remaining ?? -1),
    });
    assert.equal(result.status, 0);
    assert.equal(result.completed, 3);
    assert.deepEqual(progress, [2, 1]);
    await dimse.release();
  });

  test('tessera get retrieves a JPEG Lossless study in its stored syntax with its default contexts', async () => {
    const out = join(dir, 'tessera-get');
    const r = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'get',
        '127.0.0.1',
        String(port),
        '--aec',
        'TESSERA',
        '--out',
        out,
        '--level',
        'STUDY',
        '-k',
        'StudyInstanceUID=1.3.46.670589.11.4140.6.123890950282789940',
      ],
      { cwd: ROOT, timeoutMs: 60_000 },
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const files = await readdir(out);
    assert.equal(files.length, 1);
    assert.equal((await datasetSha256(join(out, files[0]!))).sha256, (await datasetSha256(MR_JPEG)).sha256);
  });

  test('the server stays up: echo after everything, and storescp still running', async () => {
    await sleep(10);
    const echo = await run('echoscu', ['-aec', 'TESSERA', '127.0.0.1', String(port)], { timeoutMs: 10_000 });
    assert.equal(echo.code, 0);
    assert.equal(storescp.process.exitCode, null);
  });
});
