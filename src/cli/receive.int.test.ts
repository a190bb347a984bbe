/**
 * `tessera receive` (a child process, as a user runs it) receiving from DCMTK's storescu and from
 * `tessera store`: every instance arrives as `<SOP Instance UID>.dcm` in the syntax it was sent in
 * (receive accepts every syntax the codec knows), with the data set bytes tessera store sent (it sends a
 * file's data set unchanged) or the same data set storescu sent (storescu re-encodes what it sends); no temp file stays; a wrong called AE title is rejected; SIGTERM ends it with a summary.
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
  datasetInfo,
  killChildren,
  requireTools,
  run,
  sleep,
  start,
} from '../../test/helpers/interop.ts';
import { datasetToJson, readPart10 } from '../codec/index.ts';
import { describeFile } from '../dimse/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const corpus = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const TS_DIR = join(corpus, 'transfer-syntax');
/**
 * Native, encapsulated and deflated syntaxes, each file with its own SOP Instance UID, with the storescu
 * option that proposes its syntax (storescu proposes the uncompressed ones unless told).
 */
const CASES = [
  [[], join(corpus, 'ms-tutorial/red-triangle.dcm')],
  [['-xi'], join(TS_DIR, 'ct1-implicit-vr-le.dcm')],
  [['-xw'], join(TS_DIR, 'ct1-j2k-lossy-wg04.dcm')],
  [['-xs'], join(TS_DIR, 'mr-jpeg-lossless-sv1-dcm4che.dcm')],
  [['-xr'], join(TS_DIR, 'ct1-rle-multi-fragment-fo.dcm')],
  [['-xu'], join(TS_DIR, 'ct2-jpegls-near-lossless-wg04.dcm')],
  [['-xd'], join(TS_DIR, 'sr-deflated.dcm')],
] as const;
const SOURCES = CASES.map(([, source]) => source);
const AE = 'RECEIVER';

interface Receiver {
  readonly child: Child;
  readonly port: number;
  readonly dir: string;
}

/**
 * A file's data set as DICOM JSON, without what a sender may rewrite (storescu does): group lengths
 * (xxxx0000), Data Set Trailing Padding (FFFC,FFFC) and Pixel Data's VR (encapsulated Pixel Data is
 * OB, PS3.5 A.4; some files say OW).
 */
async function jsonOf(path: string): Promise<Record<string, unknown>> {
  const json = datasetToJson(readPart10(await readFile(path)).dataset) as Record<string, { vr?: string }>;
  const out: Record<string, unknown> = {};
  for (const [tag, attribute] of Object.entries(json)) {
    if (tag.endsWith('0000') || tag === 'FFFCFFFC') continue;
    out[tag] = tag === '7FE00010' ? { ...attribute, vr: undefined } : attribute;
  }
  return out;
}

describe('tessera receive (like storescp)', () => {
  let tmp = '';
  let count = 0;

  before(async () => {
    await requireTools('storescu', 'echoscu');
    tmp = await mkdtemp(join(tmpdir(), 'tessera-receive-int-'));
  });

  after(async () => {
    killChildren();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** Starts `tessera receive 0` (a free port) and reads the port it prints once listening. */
  async function receiver(extra: readonly string[] = []): Promise<Receiver> {
    const dir = join(tmp, `out-${count++}`);
    await mkdir(dir, { recursive: true });
    const child = start(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'receive', '--out', dir, '--ae-title', AE, ...extra, '0'],
      { cwd: root, timeoutMs: 120_000 },
    );
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(child.output());
      if (m) return { child, port: Number(m[1]), dir };
      await sleep(50);
    }
    child.process.kill('SIGKILL');
    return assert.fail(`tessera receive did not start: ${child.output()}`);
  }

  async function stop(r: Receiver): Promise<string> {
    r.child.process.kill('SIGTERM');
    const done = await Promise.race([r.child.done, sleep(15_000).then(() => undefined)]);
    assert.ok(done, `tessera receive did not stop on SIGTERM:\n${r.child.output()}`);
    assert.equal(done.code, 0, `tessera receive exited with ${done.code}: ${done.stdout}${done.stderr}`);
    return done.stdout;
  }

  /**
   * Every source is in `dir` as UID.dcm in its syntax. `exact`: with the same data set bytes (padded to
   * even), as tessera store sends them; otherwise (storescu, which re-encodes a data set it sends) with
   * the same DICOM JSON, group lengths and trailing padding aside.
   */
  async function assertReceived(dir: string, sources: readonly string[], exact: boolean): Promise<void> {
    const names = await readdir(dir);
    assert.deepEqual(
      names.filter((n) => n.startsWith('.')),
      [],
      'a temp file is left',
    );
    assert.equal(names.length, sources.length, `files received: ${names.join(', ')}`);
    for (const source of sources) {
      const item = await describeFile(source);
      const path = join(dir, `${item.sopInstanceUid}.dcm`);
      assert.ok(names.includes(basename(path)), `${basename(source)}: no ${basename(path)}`);
      assert.equal((await datasetInfo(path)).transferSyntaxUid, item.transferSyntaxUid, basename(source));
      if (!exact) {
        assert.deepEqual(await jsonOf(path), await jsonOf(source), `${basename(source)}: another data set`);
        continue;
      }
      const expected = await datasetBytes(source);
      const padded = expected.length % 2 === 0 ? expected : Buffer.concat([expected, Buffer.alloc(1)]);
      const got = await datasetBytes(path);
      assert.equal(got.length, padded.length, `${basename(source)}: data set length`);
      assert.ok(got.equals(padded), `${basename(source)}: data set bytes differ`);
    }
  }

  test('storescu (DCMTK) sends native, compressed and deflated files: each written as sent', {
    timeout: 120_000,
  }, async () => {
    const r = await receiver();
    for (const [flags, source] of CASES) {
      const sent = await run('storescu', [...flags, '-aec', AE, '127.0.0.1', String(r.port), source], {
        timeoutMs: 60_000,
      });
      assert.equal(
        sent.code,
        0,
        `storescu ${flags.join(' ')} ${basename(source)}: ${sent.stdout}${sent.stderr}`,
      );
    }
    const summary = await stop(r);
    assert.match(summary, new RegExp(`${SOURCES.length} instance\\(s\\) written, 0 refused or failed`));
    await assertReceived(r.dir, SOURCES, false);
  });

  test('tessera store --parallel 3 to tessera receive --no-fsync --workers 2: every file written as sent', {
    timeout: 120_000,
  }, async () => {
    const r = await receiver(['--no-fsync', '--workers', '2']);
    assert.match(r.child.output(), /2 worker processes/);
    const sent = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'store',
        '--aec',
        AE,
        '--parallel',
        '3',
        '127.0.0.1',
        String(r.port),
        ...SOURCES,
      ],
      { cwd: root, timeoutMs: 60_000 },
    );
    assert.equal(sent.code, 0, `tessera store failed: ${sent.stdout}${sent.stderr}`);
    assert.match(sent.stdout, new RegExp(`${SOURCES.length} of ${SOURCES.length} sent`));
    // The primary adds up what its workers wrote.
    const summary = await stop(r);
    assert.match(summary, new RegExp(`${SOURCES.length} instance\\(s\\) written, 0 refused or failed`));
    await assertReceived(r.dir, SOURCES, true);
  });

  test('a worker killed (SIGKILL) is replaced; receiving goes on; a folder that cannot be made: exit 1', {
    timeout: 120_000,
  }, async () => {
    const r = await receiver(['--no-fsync', '--workers', '2']);
    const pid = r.child.process.pid!;
    const workers = async (): Promise<number[]> =>
      (await readFile(`/proc/${pid}/task/${pid}/children`, 'latin1').catch(() => ''))
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
    const before = await workers();
    assert.equal(before.length, 2, `worker processes: ${before.join(' ')}`);
    process.kill(before[0]!, 'SIGKILL');
    const deadline = Date.now() + 20_000;
    let after = before;
    while (Date.now() < deadline) {
      after = await workers();
      if (after.length === 2 && !after.includes(before[0]!)) break;
      await sleep(100);
    }
    assert.equal(after.length, 2, `no replacement worker: ${after.join(' ')}\n${r.child.output()}`);
    assert.ok(!after.includes(before[0]!), 'the killed worker is still listed');
    assert.match(r.child.output(), new RegExp(`worker ${before[0]} ended \\(SIGKILL\\); starting another`));
    // Both workers take associations again: four in a row all succeed.
    for (let i = 0; i < 4; i++) {
      const sent = await run('storescu', ['-aec', AE, '127.0.0.1', String(r.port), SOURCES[0]!], {
        timeoutMs: 30_000,
      });
      assert.equal(sent.code, 0, `storescu ${i + 1} after the kill: ${sent.stdout}${sent.stderr}`);
    }
    await stop(r);
    assert.ok((await readdir(r.dir)).includes(`${(await describeFile(SOURCES[0]!)).sopInstanceUid}.dcm`));
    // An --out that cannot be a folder: one error line, exit 1, nothing listening.
    const bad = await run(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'receive', '--out', join(SOURCES[0]!, 'sub'), '0'],
      { cwd: root, timeoutMs: 30_000 },
    );
    assert.equal(bad.code, 1, `exit ${bad.code}: ${bad.stdout}${bad.stderr}`);
    assert.match(bad.stderr, /ENOTDIR/);
    assert.doesNotMatch(bad.stdout, /listening/);
  });

  test('a called AE title other than --ae-title is rejected; a calling AE outside --calling-ae too', {
    timeout: 60_000,
  }, async () => {
    const r = await receiver(['--calling-ae', 'MODALITY']);
    const wrongCalled = await run('echoscu', [
      '-aet',
      'MODALITY',
      '-aec',
      'SOMEONE',
      '127.0.0.1',
      String(r.port),
    ]);
    assert.notEqual(wrongCalled.code, 0, 'echoscu to a wrong called AE title succeeded');
    assert.match(`${wrongCalled.stdout}${wrongCalled.stderr}`, /Called AE Title Not Recognized/i);
    const wrongCalling = await run('echoscu', ['-aet', 'STRANGER', '-aec', AE, '127.0.0.1', String(r.port)]);
    assert.notEqual(wrongCalling.code, 0, 'echoscu from a calling AE outside the list succeeded');
    assert.match(`${wrongCalling.stdout}${wrongCalling.stderr}`, /Calling AE Title Not Recognized/i);
    const right = await run('echoscu', ['-aet', 'MODALITY', '-aec', AE, '127.0.0.1', String(r.port)]);
    assert.equal(right.code, 0, `echoscu with the right titles failed: ${right.stdout}${right.stderr}`);
    await stop(r);
  });
});
