/**
 * `tessera echo` and `tessera store` (child processes: node --import tsx src/cli/main.ts) against
 * DCMTK's storescp. storescp runs with `+xa` (accept every transfer syntax it knows) and `+B`
 * (bit-preserving: it writes the data set exactly as received; without it storescp re-encodes, and a
 * comparison would test DCMTK's writer rather than what Tessera sent). Its files are named
 * MODALITY.SOPInstanceUID; each one's data set part (after the File Meta Information) must equal the
 * source file's, since Tessera streams a file's data set unchanged when the stored syntax is accepted.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type Child,
  datasetBytes,
  freePort,
  type Generated,
  killChildren,
  type Run,
  requireTools,
  run,
  sleep,
  start,
  writeInstance,
} from '../../test/helpers/interop.ts';
import { type Dataset, readPart10 } from '../codec/index.ts';
import { Tag } from '../dictionary/index.ts';
import { describeFile } from '../dimse/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const corpus = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const TS_DIR = join(corpus, 'transfer-syntax');
const RED_TRIANGLE = join(corpus, 'ms-tutorial/red-triangle.dcm');
const UNKNOWN_SOP_CLASS = join(corpus, 'misc/unknown-sop-class-orthanc.dcm');
const LENA = join(corpus, 'misc/series-lena/lena-1.dcm');
const JPEG_LS = join(corpus, 'transfer-syntax/ct1-jpegls-lossless-fragmented-bot.dcm');
const CT1_NATIVE = join(corpus, 'transfer-syntax/ct1-implicit-vr-le.dcm');
/** Encapsulated and deflated syntaxes, each file with its own SOP Instance UID. */
const COMPRESSED = [
  'ct1-j2k-lossy-wg04.dcm',
  'mr4-j2k-lossless-wg04.dcm',
  'mr-jpeg-lossless-sv1-dcm4che.dcm',
  'ct1-rle-multi-fragment-fo.dcm',
  'us-jpeg-baseline-ybr.dcm',
  'jpeg-baseline-with-icon-fo.dcm',
  'ct2-jpegls-near-lossless-wg04.dcm',
  'mr4-jpeg-extended-wg04.dcm',
  'sr-deflated.dcm',
  'ecg-waveform-deflated.dcm',
].map((n) => join(TS_DIR, n));
const AE = 'STORESCP';

async function msTutorial(): Promise<string[]> {
  const dir = join(corpus, 'ms-tutorial');
  return (await readdir(dir))
    .filter((n) => n.endsWith('.dcm'))
    .sort()
    .map((n) => join(dir, n));
}

/** The CLI as a user runs it. */
function tessera(args: readonly string[], timeoutMs = 120_000): Promise<Run> {
  return run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: root, timeoutMs });
}

function assertRanOk(r: Run, what: string): void {
  assert.equal(r.signal, null, `${what} killed by ${r.signal} (timeout?)\n${r.stdout}${r.stderr}`);
  assert.equal(r.code, 0, `${what} exited with ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

interface Storescp {
  readonly port: number;
  readonly dir: string;
  readonly child: Child;
}

describe('tessera echo/store against DCMTK storescp', () => {
  let tmp = '';
  let count = 0;
  const running: Storescp[] = [];

  before(async () => {
    await requireTools('storescp', 'echoscu');
    tmp = await mkdtemp(join(tmpdir(), 'tessera-net-int-'));
  });

  after(async () => {
    killChildren();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** Starts storescp on a free port and waits until it answers a C-ECHO. */
  async function storescp(
    extra: readonly string[] = [],
    accept: readonly string[] = ['+xa'],
  ): Promise<Storescp> {
    const dir = join(tmp, `storescp-${count++}`);
    await mkdir(dir, { recursive: true });
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const child = start('storescp', ['-od', dir, ...accept, '+B', '-aet', AE, ...extra, String(port)], {
        timeoutMs: 300_000,
      });
      const deadline = Date.now() + 10_000;
      let exited = false;
      void child.done.then(() => {
        exited = true;
      });
      while (!exited && Date.now() < deadline) {
        const echo = await run('echoscu', ['-aec', AE, '127.0.0.1', String(port)], { timeoutMs: 10_000 });
        if (echo.code === 0) {
          const s = { port, dir, child };
          running.push(s);
          return s;
        }
        await sleep(50);
      }
      child.process.kill('SIGKILL');
      // The port was taken between our probe and storescp's bind: try another one.
      if (attempt >= 2) assert.fail(`storescp did not start: ${child.output()}`);
    }
  }

  async function stop(s: Storescp): Promise<void> {
    s.child.process.kill('SIGTERM');
    await Promise.race([s.child.done, sleep(5000)]);
    s.child.process.kill('SIGKILL');
  }

  /** storescp's file for a SOP Instance UID (MODALITY.UID). */
  async function received(dir: string, sopInstanceUid: string): Promise<string> {
    const names = (await readdir(dir)).filter((n) => n.endsWith(`.${sopInstanceUid}`));
    assert.equal(
      names.length,
      1,
      `storescp has ${names.length} files for ${sopInstanceUid}: ${names.join(', ')}`,
    );
    return join(dir, names[0]!);
  }

  /** The data set part storescp wrote equals the source's (padded to even length, PS3.8 Annex E.1). */
  async function assertSameDataset(dir: string, source: string): Promise<void> {
    const item = await describeFile(source);
    const expected = await datasetBytes(source);
    const got = await datasetBytes(await received(dir, item.sopInstanceUid));
    const padded = expected.length % 2 === 0 ? expected : Buffer.concat([expected, Buffer.alloc(1)]);
    assert.equal(got.length, padded.length, `${basename(source)}: data set length`);
    assert.ok(got.equals(padded), `${basename(source)}: data set bytes differ`);
  }

  test('tessera echo --aec STORESCP: exit 0, prints Success', { timeout: 60_000 }, async () => {
    const scp = await storescp();
    try {
      const r = await tessera(['echo', '--aec', AE, '127.0.0.1', String(scp.port)]);
      assertRanOk(r, 'tessera echo');
      assert.match(r.stdout, /^C-ECHO 127\.0\.0\.1:\d+ \(STORESCP\): 0x0000 \(Success\) in [\d.]+ ms\n$/);
    } finally {
      await stop(scp);
    }
  });

  test('tessera store: ms-tutorial and compressed/deflated files arrive with identical data sets', {
    timeout: 120_000,
  }, async () => {
    const scp = await storescp();
    try {
      const files = [...(await msTutorial()), ...COMPRESSED];
      const r = await tessera(['store', '--aec', AE, '127.0.0.1', String(scp.port), ...files]);
      assertRanOk(r, 'tessera store');
      assert.match(
        r.stdout,
        new RegExp(`: ${files.length} of ${files.length} sent \\(0 with warnings, 0 failed, 0 not DICOM\\)`),
      );
      for (const f of files) await assertSameDataset(scp.dir, f);
    } finally {
      await stop(scp);
    }
  });

  test('tessera store --parallel 4 with 20 files: all arrive', { timeout: 120_000 }, async () => {
    const dir = join(tmp, 'parallel-src');
    await mkdir(dir, { recursive: true });
    const files: Generated[] = [];
    for (let i = 0; i < 20; i++)
      files.push(await writeInstance(join(dir, `${i}.dcm`), { rows: 64, columns: 64 }));
    const scp = await storescp();
    try {
      const r = await tessera(['store', '--aec', AE, '--parallel', '4', '127.0.0.1', String(scp.port), dir]);
      assertRanOk(r, 'tessera store --parallel 4');
      assert.match(r.stdout, /: 20 of 20 sent/);
      for (const f of files) await assertSameDataset(scp.dir, f.path);
    } finally {
      await stop(scp);
    }
  });

  test('small PDUs both ways (tessera --max-pdu 4096, storescp --max-pdu 4096): 2.9 MB intact', {
    timeout: 120_000,
  }, async () => {
    const scp = await storescp(['--max-pdu', '4096', '-d']);
    try {
      const r = await tessera([
        'store',
        '--aec',
        AE,
        '--max-pdu',
        '4096',
        '127.0.0.1',
        String(scp.port),
        RED_TRIANGLE,
      ]);
      assertRanOk(r, 'tessera store --max-pdu 4096');
      await assertSameDataset(scp.dir, RED_TRIANGLE);
      // storescp's debug log shows both sides' limits as negotiated.
      await stop(scp);
      const log = scp.child.output();
      assert.match(log, /Our Max PDU Receive Size\s*:\s*4096/);
      assert.match(log, /Their Max PDU Receive Size\s*:\s*4096/);
    } finally {
      await stop(scp);
    }
  });

  test('an instance storescp cannot accept: exit != 0, a reason for that file, the others stored', {
    timeout: 120_000,
  }, async () => {
    const scp = await storescp();
    try {
      const r = await tessera([
        'store',
        '--aec',
        AE,
        '127.0.0.1',
        String(scp.port),
        RED_TRIANGLE,
        UNKNOWN_SOP_CLASS,
        LENA,
      ]);
      assert.equal(r.signal, null);
      assert.notEqual(r.code, 0, `exit code 0 with a failed instance\n${r.stdout}${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `stderr:\n${r.stderr}`);
      assert.ok(lines[0]!.startsWith(`${UNKNOWN_SOP_CLASS}: `), lines[0]);
      assert.match(lines[0]!, /no presentation context accepted for 1\.2\.276\.0\.19\.55\.1\.5\.1\.1\.1/);
      assert.doesNotMatch(r.stderr, /^ {4}at /m, 'stack trace on stderr');
      assert.match(r.stdout, /: 2 of 3 sent \(0 with warnings, 1 failed, 0 not DICOM\)/);
      await assertSameDataset(scp.dir, RED_TRIANGLE);
      await assertSameDataset(scp.dir, LENA);
      const uid = (await describeFile(UNKNOWN_SOP_CLASS)).sopInstanceUid;
      assert.deepEqual(
        (await readdir(scp.dir)).filter((n) => n.includes(uid)),
        [],
      );
    } finally {
      await stop(scp);
    }
  });

  test('a JPEG-LS file to a storescp that takes uncompressed data only: decompressed on the way', {
    timeout: 120_000,
  }, async () => {
    const scp = await storescp([], []); // storescp's default: uncompressed transfer syntaxes only
    try {
      const r = await tessera(['store', '--aec', AE, '127.0.0.1', String(scp.port), JPEG_LS]);
      assertRanOk(r, 'tessera store');
      const item = await describeFile(JPEG_LS);
      const got = readPart10(await readFile(await received(scp.dir, item.sopInstanceUid)));
      assert.ok(
        ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2'].includes(got.transferSyntax.uid),
        got.transferSyntax.uid,
      );
      // The lossless JPEG-LS ct1 decodes to the pixels of the uncompressed ct1 of the corpus.
      const pixels = (ds: Dataset): Buffer => {
        const el = ds.get(Tag.PixelData);
        assert.equal(el?.kind, 'value');
        return (el as { bytes: Buffer }).bytes;
      };
      assert.deepEqual(pixels(got.dataset), pixels(readPart10(await readFile(CT1_NATIVE)).dataset));
    } finally {
      await stop(scp);
    }
  });

  test('tessera store to a closed port: exit != 0, one clear error line', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const r = await tessera(['store', '--aec', AE, '127.0.0.1', String(port), RED_TRIANGLE]);
    assert.equal(r.signal, null);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, '');
    assert.ok(r.stderr.endsWith('\n'), JSON.stringify(r.stderr));
    const lines = r.stderr.slice(0, -1).split('\n');
    assert.equal(lines.length, 1, `stderr has ${lines.length} lines:\n${r.stderr}`);
    assert.match(
      lines[0]!,
      new RegExp(`^tessera: error: cannot connect to 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
    );
  });
});
