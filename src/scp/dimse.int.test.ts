/**
 * DIMSE interop: Tessera's storage SCP (startDimseServer, in this process) against DCMTK's echoscu and
 * storescu (child processes, run asynchronously so the in-process server can answer), and Tessera's
 * SCU against Tessera's SCP with the asynchronous operations window.
 *
 * "What storescu sent": DCMTK does not send a file's data set bytes verbatim; it re-encodes the data
 * set with its own writer (Data Set Trailing Padding (FFFC,FFFC) dropped, group lengths recalculated,
 * conversion to the accepted transfer syntax). `dcmconv -p [+ti|+te|+tb]` runs that same writer, so the
 * reference for every stored file is the data set part of `dcmconv -p` of the source into the stored
 * transfer syntax, compared byte for byte (a stronger check than comparing decoded JSON, which would
 * miss encoding differences such as lengths, padding or byte order).
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  cuttingProxy,
  datasetBytes,
  datasetInfo,
  datasetSha256,
  type Generated,
  killChildren,
  requireTools,
  run,
  sleep,
  start,
  writeInstance,
} from '../../test/helpers/interop.ts';
import { TRANSFER_SYNTAXES } from '../codec/index.ts';
import {
  Dimse,
  describeFile,
  type HandlerResult,
  type IncomingRequest,
  STATUS,
  storeFiles,
} from '../dimse/index.ts';
import { listen, UL_DEFAULTS } from '../ul/index.ts';
import { type DimseServer, INCOMING_PREFIX, startDimseServer } from './index.ts';

/** A short ARTIM for the test server, so connections it aborts close quickly (default 30 s). */
const ARTIM_MS = 2000;

const corpus = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const TS_DIR = join(corpus, 'transfer-syntax');
const CT1_LE = join(TS_DIR, 'ct1-explicit-vr-le.dcm');
const CT1_BE = join(TS_DIR, 'ct1-explicit-vr-be.dcm');
const UNKNOWN_SOP_CLASS = join(corpus, 'misc/unknown-sop-class-orthanc.dcm');
const RED_TRIANGLE = join(corpus, 'ms-tutorial/red-triangle.dcm');

const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';
const DCMCONV_FLAG: Record<string, string> = {
  [IMPLICIT_LE]: '+ti',
  [EXPLICIT_LE]: '+te',
  [EXPLICIT_BE]: '+tb',
};

const AE = 'TESSERA';
const HUGE_MB = 200;

async function msTutorial(): Promise<string[]> {
  const dir = join(corpus, 'ms-tutorial');
  return (await readdir(dir))
    .filter((n) => n.endsWith('.dcm'))
    .sort()
    .map((n) => join(dir, n));
}

function assertRanOk(
  r: { code: number | null; signal: string | null; stdout: string; stderr: string },
  what: string,
): void {
  assert.equal(r.signal, null, `${what} killed by ${r.signal} (timeout?)\n${r.stdout}${r.stderr}`);
  assert.equal(r.code, 0, `${what} exited with ${r.code}\n${r.stdout}${r.stderr}`);
}

/** Waits for `predicate` to hold, polling; fails with `what` after `ms`. */
async function waitFor(predicate: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('Tessera SCP (startDimseServer) against DCMTK echoscu/storescu', () => {
  let tmp = '';
  let storeDir = '';
  let server: DimseServer | undefined;
  let port = 0;
  const servers: DimseServer[] = [];
  let convCount = 0;

  before(async () => {
    await requireTools('echoscu', 'storescu', 'dcmconv');
    tmp = await mkdtemp(join(tmpdir(), 'tessera-dimse-int-'));
    storeDir = join(tmp, 'store');
    await mkdir(storeDir);
    server = await startDimseServer({ host: '127.0.0.1', port: 0, aeTitle: AE, storeDir, artimMs: ARTIM_MS });
    servers.push(server);
    port = server.port;
  });

  after(async () => {
    killChildren();
    await Promise.all(servers.map((s) => s.close(2000)));
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const stored = (uid: string, dir = storeDir): string => join(dir, `${uid}.dcm`);
  const echoscu = (aec: string, p = port) =>
    run('echoscu', ['-aec', aec, '-aet', 'ECHOSCU', '127.0.0.1', String(p)], { timeoutMs: 30_000 });
  const storescu = (flags: readonly string[], files: readonly string[], p = port, env?: NodeJS.ProcessEnv) =>
    run('storescu', [...flags, '-aec', AE, '-aet', 'STORESCU', '127.0.0.1', String(p), ...files], {
      timeoutMs: 120_000,
      ...(env ? { env } : {}),
    });

  /** The data set part DCMTK sends for `source` in `transferSyntaxUid` (see the file comment). */
  async function dcmtkDataset(source: string, transferSyntaxUid: string | undefined): Promise<Buffer> {
    const out = join(tmp, `conv-${convCount++}-${basename(source)}`);
    const flag = transferSyntaxUid === undefined ? [] : [DCMCONV_FLAG[transferSyntaxUid]!];
    assertRanOk(await run('dcmconv', ['-p', ...flag, source, out], { timeoutMs: 60_000 }), 'dcmconv');
    const bytes = await datasetBytes(out);
    await rm(out, { force: true });
    return bytes;
  }

  async function uidOf(path: string): Promise<string> {
    return (await describeFile(path)).sopInstanceUid;
  }

  /** Each source's stored file has the data set DCMTK sends for it; returns the stored transfer syntaxes. */
  async function checkStored(sources: readonly string[], native: boolean): Promise<string[]> {
    const syntaxes: string[] = [];
    for (const source of sources) {
      const path = stored(await uidOf(source));
      assert.ok(await exists(path), `${basename(source)}: not stored as ${basename(path)}`);
      const { transferSyntaxUid } = await datasetInfo(path);
      syntaxes.push(transferSyntaxUid);
      const sourceSyntax = (await datasetInfo(source)).transferSyntaxUid;
      if (native)
        assert.ok(transferSyntaxUid in DCMCONV_FLAG, `${basename(source)}: stored in ${transferSyntaxUid}`);
      else assert.equal(transferSyntaxUid, sourceSyntax, `${basename(source)}: stored in another syntax`);
      const expected = await dcmtkDataset(source, native ? transferSyntaxUid : undefined);
      const actual = await datasetBytes(path);
      assert.equal(actual.length, expected.length, `${basename(source)}: data set length differs`);
      assert.ok(actual.equals(expected), `${basename(source)}: data set bytes differ from what DCMTK sends`);
    }
    return syntaxes;
  }

  test('echoscu -aec TESSERA succeeds', { timeout: 30_000 }, async () => {
    const r = await echoscu(AE);
    assertRanOk(r, 'echoscu');
  });

  test('echoscu -aec WRONG is rejected (called AE title not recognized); the server keeps serving', {
    timeout: 30_000,
  }, async () => {
    const r = await echoscu('WRONG');
    assert.notEqual(r.code, 0, `echoscu succeeded with a wrong called AE title\n${r.stderr}`);
    assert.match(r.stdout + r.stderr, /Association Rejected/i);
    assert.match(r.stdout + r.stderr, /Called AE Title Not Recognized/i);
    assertRanOk(await echoscu(AE), 'echoscu after a rejection');
  });

  for (const [flag, name] of [
    ['-xi', 'implicit VR LE'],
    ['-xe', 'explicit VR LE'],
    ['-xb', 'explicit VR BE'],
  ] as const) {
    test(`storescu ${flag} (${name}): ct1 LE/BE and ms-tutorial stored as DCMTK sends them (dcmconv -p)`, {
      timeout: 120_000,
    }, async () => {
      // ct1 in LE and BE share a SOP Instance UID: two associations, each checked before the next.
      for (const sources of [[...(await msTutorial()), CT1_LE], [CT1_BE]]) {
        for (const s of sources) await rm(stored(await uidOf(s)), { force: true });
        assertRanOk(await storescu([flag], sources), `storescu ${flag}`);
        const syntaxes = await checkStored(sources, true);
        // -xi proposes implicit VR only: everything is converted. With -xe/-xb storescu also proposes
        // the fallback syntaxes, and sends a file unconverted when its own syntax was accepted.
        if (flag === '-xi') assert.deepEqual(new Set(syntaxes), new Set([IMPLICIT_LE]));
        if (flag === '-xb' && sources[0] === CT1_BE) assert.deepEqual(syntaxes, [EXPLICIT_BE]);
        if (flag === '-xe' && sources.includes(CT1_LE))
          assert.deepEqual(new Set(syntaxes), new Set([EXPLICIT_LE]));
      }
    });
  }

  test('storescu with compressed syntaxes (-xw, -xv, -xs, -xr, -xy): data sets stored as sent', {
    timeout: 120_000,
  }, async () => {
    const cases = [
      ['-xw', 'ct1-j2k-lossy-wg04.dcm', '1.2.840.10008.1.2.4.91'],
      ['-xv', 'mr4-j2k-lossless-wg04.dcm', '1.2.840.10008.1.2.4.90'],
      ['-xs', 'mr-jpeg-lossless-sv1-dcm4che.dcm', '1.2.840.10008.1.2.4.70'],
      ['-xr', 'ct1-rle-multi-fragment-fo.dcm', '1.2.840.10008.1.2.5'],
      ['-xy', 'us-jpeg-baseline-ybr.dcm', '1.2.840.10008.1.2.4.50'],
    ] as const;
    for (const [flag, file, syntax] of cases) {
      const source = join(TS_DIR, file);
      await rm(stored(await uidOf(source)), { force: true });
      assertRanOk(await storescu([flag], [source]), `storescu ${flag} ${file}`);
      assert.deepEqual(await checkStored([source], false), [syntax], file);
    }
  });

  test('maximum PDU 4096 both ways (storescu --max-pdu 4096, server maxPduLength 4096): 2.9 MB intact', {
    timeout: 60_000,
  }, async () => {
    const dir = join(tmp, 'small-pdu');
    const small = await startDimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: AE,
      storeDir: dir,
      maxPduLength: 4096,
    });
    servers.push(small);
    const r = await storescu(['-d', '--max-pdu', '4096'], [RED_TRIANGLE], small.port);
    assertRanOk(r, 'storescu --max-pdu 4096');
    // Both limits were negotiated: the association would have been aborted by our PDU reader had
    // storescu sent PDUs above our 4096 (plus the PDV header allowance).
    assert.match(r.stdout + r.stderr, /Our Max PDU Receive Size\s*:\s*4096/);
    assert.match(r.stdout + r.stderr, /Their Max PDU Receive Size\s*:\s*4096/);
    const path = stored(await uidOf(RED_TRIANGLE), dir);
    const expected = await dcmtkDataset(RED_TRIANGLE, EXPLICIT_LE);
    assert.ok((await datasetBytes(path)).equals(expected), 'data set differs after 4096-byte PDUs');
    await small.close(2000);
  });

  let huge: Generated | undefined;
  async function hugeInstance(): Promise<Generated> {
    // 10240 x 10240 x 16 bits = 200 MiB of Pixel Data, streamed to disk.
    huge ??= await writeInstance(join(tmp, 'huge.dcm'), { rows: 10240, columns: 10240 });
    return huge;
  }

  test(`a ${HUGE_MB} MiB instance from storescu: stored intact, server memory well under its size`, {
    timeout: 300_000,
  }, async (t) => {
    const source = await hugeInstance();
    const before = process.memoryUsage();
    let peakRss = before.rss;
    let peakArrayBuffers = before.arrayBuffers;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakArrayBuffers = Math.max(peakArrayBuffers, m.arrayBuffers);
    }, 20);
    let r: Awaited<ReturnType<typeof storescu>>;
    try {
      r = await storescu([], [source.path]);
    } finally {
      clearInterval(sampler);
    }
    assertRanOk(r, 'storescu (huge)');
    const path = stored(source.sopInstanceUid);
    assert.equal(
      (await stat(path)).size,
      (await datasetInfo(path)).offset + source.datasetLength,
      'file size',
    );
    const got = await datasetSha256(path);
    assert.equal(got.length, source.datasetLength, 'data set length');
    assert.equal(got.sha256, source.datasetSha256, 'data set sha256');
    const rssGrowth = (peakRss - before.rss) / 2 ** 20;
    const bufferGrowth = (peakArrayBuffers - before.arrayBuffers) / 2 ** 20;
    t.diagnostic(
      `${HUGE_MB} MiB in ${r.ms} ms (${((HUGE_MB * 1000) / r.ms).toFixed(0)} MiB/s); peak growth: rss ${rssGrowth.toFixed(1)} MiB, buffers ${bufferGrowth.toFixed(1)} MiB`,
    );
    assert.ok(
      rssGrowth < HUGE_MB / 4,
      `rss grew by ${rssGrowth.toFixed(1)} MiB for a ${HUGE_MB} MiB instance`,
    );
    assert.ok(bufferGrowth < HUGE_MB / 4, `buffers grew by ${bufferGrowth.toFixed(1)} MiB`);
    await rm(path, { force: true });
  });

  test('8 storescu processes at once, 5 files each: all 40 stored', { timeout: 120_000 }, async () => {
    const generated: Generated[][] = [];
    for (let i = 0; i < 8; i++) {
      const dir = join(tmp, `parallel-${i}`);
      await mkdir(dir, { recursive: true });
      const files: Generated[] = [];
      for (let j = 0; j < 5; j++)
        files.push(await writeInstance(join(dir, `${j}.dcm`), { rows: 128, columns: 128 }));
      generated.push(files);
    }
    const runs = await Promise.all(
      generated.map((files) =>
        storescu(
          [],
          files.map((f) => f.path),
        ),
      ),
    );
    for (const [i, r] of runs.entries()) assertRanOk(r, `storescu #${i}`);
    for (const g of generated.flat()) {
      const got = await datasetSha256(stored(g.sopInstanceUid));
      assert.equal(got.sha256, g.datasetSha256, `${g.sopInstanceUid}: data set differs`);
    }
  });

  test('an association killed mid-transfer (storescu SIGKILL at ~20%): no file, no temp file, server fine', {
    timeout: 180_000,
  }, async () => {
    const source = await hugeInstance();
    const requests: { sopInstanceUid?: string; status: number }[] = [];
    const onRequest = (m: unknown): void => {
      requests.push(m as { sopInstanceUid?: string; status: number });
    };
    subscribe('tessera:dimse:request', onRequest);
    try {
      const incoming = async (): Promise<string[]> =>
        (await readdir(storeDir)).filter((n) => n.startsWith(INCOMING_PREFIX));
      assert.deepEqual(await incoming(), [], 'temp files before the test');
      const child = start('storescu', ['-aec', AE, '127.0.0.1', String(port), source.path], {
        timeoutMs: 120_000,
      });
      const target = source.datasetLength * 0.2;
      let killedAt = 0;
      await waitFor(
        async () => {
          for (const name of await incoming()) {
            const size = await stat(join(storeDir, name)).then(
              (s) => s.size,
              () => 0,
            );
            if (size >= target) {
              child.process.kill('SIGKILL');
              killedAt = size;
              return true;
            }
          }
          return false;
        },
        60_000,
        'the transfer to reach 20%',
      );
      const r = await child.done;
      assert.equal(r.signal, 'SIGKILL', `storescu ended before it was killed (code ${r.code})\n${r.stderr}`);
      assert.ok(killedAt < source.datasetLength, 'killed after the whole instance arrived');
      // The server notices the closed connection, deletes its temp file and answers nothing.
      await waitFor(async () => (await incoming()).length === 0, 10_000, 'the temp file to be deleted');
      assert.equal(await exists(stored(source.sopInstanceUid)), false, 'a partial instance was stored');
      // The C-STORE handler ran to its end (with a failure status): nothing is left waiting.
      await waitFor(
        () => requests.some((q) => q.sopInstanceUid === source.sopInstanceUid),
        10_000,
        'the aborted C-STORE to finish on the server',
      );
      assert.notEqual(
        requests.find((q) => q.sopInstanceUid === source.sopInstanceUid)!.status,
        STATUS.Success,
      );
    } finally {
      unsubscribe('tessera:dimse:request', onRequest);
    }
    assertRanOk(await echoscu(AE), 'echoscu after the abort');
  });

  test('an instance refused before its data is read (invalid UID), connection lost mid-transfer: server lives', {
    timeout: 180_000,
  }, async () => {
    // folderStore refuses the C-STORE on its command (the UID is not valid) without reading the data
    // set; the rest is drained, and the connection drops halfway (a proxy cuts it after 100 MiB). The
    // data set stream then ends with an error nobody listens to: it must not take the server down.
    const bad = await writeInstance(join(tmp, 'bad-uid.dcm'), {
      rows: 10240,
      columns: 10240,
      sopInstanceUid: '1.2.3.abc',
    });
    const proxy = await cuttingProxy(port, 100 * 2 ** 20);
    try {
      const r = await storescu([], [bad.path], proxy.port);
      const forwarded = await proxy.cut;
      assert.ok(forwarded < bad.datasetLength, 'the whole instance went through');
      assert.notEqual(r.code, 0, `storescu did not notice the lost connection\n${r.stdout}${r.stderr}`);
      await sleep(500);
      assertRanOk(await echoscu(AE), 'echoscu after the refused, cut instance');
      assert.deepEqual(
        (await readdir(storeDir)).filter((n) => n.includes('1.2.3.abc') || n.startsWith(INCOMING_PREFIX)),
        [],
      );
    } finally {
      await proxy.close();
      await rm(bad.path, { force: true });
    }
  });

  test('garbage bytes and a huge A-ASSOCIATE-RQ length: connections closed, nothing allocated, server serving', {
    timeout: 90_000,
  }, async (t) => {
    interface Probe {
      socket: Socket;
      received: Buffer[];
      closed: Promise<number>;
    }
    const open = (payload: Buffer): Promise<Probe> =>
      new Promise((resolve, reject) => {
        const started = Date.now();
        const socket = connect({ host: '127.0.0.1', port });
        const received: Buffer[] = [];
        socket.on('data', (c: Buffer) => received.push(c));
        socket.on('error', () => undefined);
        const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - started)));
        socket.once('connect', () => {
          socket.write(payload);
          resolve({ socket, received, closed });
        });
        socket.once('error', reject);
      });
    const garbage = Buffer.from(Array.from({ length: 1000 }, () => Math.floor(Math.random() * 256)));
    // A-ASSOCIATE-RQ (type 0x01) whose PDU-length says 0x7fffffff, then a few body bytes.
    const hugeHeader = Buffer.from([0x01, 0x00, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x01, 0x00, 0x00]);
    const before = process.memoryUsage();
    const probes: Probe[] = [];
    try {
      probes.push(await open(garbage), await open(hugeHeader));
      await sleep(300);
      const during = process.memoryUsage();
      // The server serves others while these connections are open.
      assertRanOk(await echoscu(AE), 'echoscu while the bad connections are open');
      const growth = (during.arrayBuffers - before.arrayBuffers) / 2 ** 20;
      assert.ok(growth < 16, `buffers grew by ${growth.toFixed(1)} MiB after a 2 GiB PDU-length`);
      // PS3.8 AA-8: A-ABORT, then the connection is closed when ARTIM expires, if the peer did not
      // close it first.
      const limit = ARTIM_MS + 15_000;
      for (const [i, probe] of probes.entries()) {
        const ms = await Promise.race([probe.closed, sleep(limit).then(() => -1)]);
        assert.notEqual(ms, -1, `connection ${i} still open after ${limit} ms`);
        const bytes = Buffer.concat(probe.received);
        t.diagnostic(
          `connection ${i} closed by the server after ${ms} ms; received ${bytes.toString('hex')}`,
        );
        // Nothing but an A-ABORT PDU (type 7, length 4) may have come back.
        if (bytes.length > 0) {
          assert.equal(bytes[0], 0x07, `not an A-ABORT: ${bytes.toString('hex')}`);
          assert.equal(bytes.length, 10);
        }
      }
    } finally {
      for (const p of probes) p.socket.destroy();
    }
    assertRanOk(await echoscu(AE), 'echoscu after the bad connections');
  });

  test('an unknown SOP class: storescu finds no presentation context, nothing is stored', {
    timeout: 60_000,
  }, async () => {
    const uid = await uidOf(UNKNOWN_SOP_CLASS);
    const r = await storescu([], [UNKNOWN_SOP_CLASS]);
    assert.notEqual(r.code, 0, `storescu succeeded\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /No (valid )?presentation context/i);
    assert.equal(await exists(stored(uid)), false);
  });

  // DCMTK 3.6.7 leaves Nagle's algorithm on unless TCP_NODELAY=1 is in its environment, and storescu
  // writes each PDU's header and body in two write() calls: the body waits for the ACK of the header,
  // which the receiving stack delays (Linux delayed ACK, up to 40 ms). Modalities send this way, so
  // the default must work (about 20 inst/s here; storescp itself does about 11); the Nagle-off run
  // shows what the server does when the sender does not stall.
  const { TCP_NODELAY: _ignored, ...defaultEnv } = process.env;
  for (const [key, label, env] of [
    ['nagle-on', 'default storescu (Nagle on)', defaultEnv],
    ['nagle-off', 'storescu with Nagle off (TCP_NODELAY=1)', { ...defaultEnv, TCP_NODELAY: '1' }],
  ] as const) {
    test(`${label}: 20 small files in one association`, { timeout: 60_000 }, async (t) => {
      const dir = join(tmp, `small-${key}`);
      await mkdir(dir, { recursive: true });
      const files: Generated[] = [];
      for (let i = 0; i < 20; i++)
        files.push(await writeInstance(join(dir, `${i}.dcm`), { rows: 64, columns: 64 }));
      const r = await storescu(
        [],
        files.map((f) => f.path),
        port,
        env,
      );
      assertRanOk(r, 'storescu');
      const rate = (files.length * 1000) / r.ms;
      t.diagnostic(
        `${label}: ${files.length} instances in ${r.ms} ms (storescu start included): ${rate.toFixed(1)} inst/s`,
      );
      for (const f of files) {
        assert.equal((await datasetSha256(stored(f.sopInstanceUid))).sha256, f.datasetSha256);
      }
      assert.ok(rate > 5, `${rate.toFixed(1)} inst/s`);
    });
  }
});

describe('Tessera SCU against Tessera SCP: asynchronous operations window', () => {
  let tmp = '';
  const files: Generated[] = [];

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'tessera-dimse-window-'));
    for (let i = 0; i < 50; i++)
      files.push(await writeInstance(join(tmp, `${i}.dcm`), { rows: 32, columns: 32 }));
  });

  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** storeFiles with `window` to the server on `port`: every status Success, every data set intact. */
  async function storeAndVerify(
    sent: readonly Generated[],
    port: number,
    storeDir: string,
    window: number,
  ): Promise<void> {
    const items = await Promise.all(sent.map((f) => describeFile(f.path)));
    const outcomes = await storeFiles(items, {
      host: '127.0.0.1',
      port,
      callingAETitle: 'SCU',
      calledAETitle: AE,
      window,
    });
    assert.equal(outcomes.length, sent.length);
    for (const o of outcomes) assert.equal(o.status, STATUS.Success, `${o.item.path}: ${o.error}`);
    for (const f of sent) {
      const path = join(storeDir, `${f.sopInstanceUid}.dcm`);
      assert.equal((await datasetSha256(path)).sha256, f.datasetSha256, `window ${window}: ${f.path}`);
    }
  }

  test('storeFiles window 8 to startDimseServer (maxOpsPerformed 16): 50 instances stored intact', {
    timeout: 60_000,
  }, async () => {
    const storeDir = join(tmp, 'store');
    const server = await startDimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: AE,
      storeDir,
      maxOpsPerformed: 16,
    });
    try {
      await storeAndVerify(files, server.port, storeDir, 8);
    } finally {
      await server.close(2000);
    }
  });

  test('storeFiles reuses its read buffers across sizes: 40 instances, large and small mixed, each intact', {
    timeout: 60_000,
  }, async () => {
    // Sizes go up and down, so a smaller instance is read into a buffer a larger one left its bytes
    // in, and a larger one needs a new buffer: any read of the stale tail would change a digest.
    const dir = join(tmp, 'mixed');
    await mkdir(dir, { recursive: true });
    const sides = [200, 16, 300, 90, 8, 256, 40, 128];
    const mixed: Generated[] = [];
    for (let i = 0; i < 40; i++) {
      const side = sides[i % sides.length]! + i;
      mixed.push(await writeInstance(join(dir, `${i}.dcm`), { rows: side, columns: side }));
    }
    const storeDir = join(tmp, 'store-mixed');
    const server = await startDimseServer({ host: '127.0.0.1', port: 0, aeTitle: AE, storeDir });
    try {
      for (const window of [1, 4]) {
        await storeAndVerify(mixed, server.port, storeDir, window);
        for (const f of mixed) await rm(join(storeDir, `${f.sopInstanceUid}.dcm`));
      }
    } finally {
      await server.close(2000);
    }
  });

  /** A storage SCP from the library pieces whose C-STORE handler records how many run at once. */
  async function instrumentedServer() {
    const state = { current: 0, max: 0, received: new Map<string, string>(), negotiated: [] as number[] };
    const handler = async ({ command, dataset }: IncomingRequest): Promise<HandlerResult> => {
      state.current++;
      state.max = Math.max(state.max, state.current);
      try {
        const hash = (await import('node:crypto')).createHash('sha256');
        for await (const chunk of dataset!) hash.update(chunk as Buffer);
        state.received.set(command.affectedSopInstanceUid!, hash.digest('hex'));
        // Hold the operation a little so that the window has a chance to fill.
        await sleep(15);
        return { status: STATUS.Success };
      } finally {
        state.current--;
      }
    };
    const all = TRANSFER_SYNTAXES.map((t) => t.uid);
    const listener = await listen({
      host: '127.0.0.1',
      port: 0,
      aeTitle: AE,
      calledAETitles: [AE],
      maxPduLength: UL_DEFAULTS.maxPduLength,
      implementationClassUid: UL_DEFAULTS.implementationClassUid,
      implementationVersionName: UL_DEFAULTS.implementationVersionName,
      maxOpsPerformed: 16,
      maxOpsInvoked: 1,
      transferSyntaxes: () => all,
      onAssociation: (association) => {
        state.negotiated.push(association.info.maxOpsInvoked);
        new Dimse(association, { 'C-STORE-RQ': handler });
      },
    });
    return { listener, state };
  }

  test('storeFiles window 8: more than one C-STORE outstanding at once on the SCP', {
    timeout: 60_000,
  }, async (t) => {
    const { listener, state } = await instrumentedServer();
    try {
      const items = await Promise.all(files.map((f) => describeFile(f.path)));
      const outcomes = await storeFiles(items, {
        host: '127.0.0.1',
        port: listener.port,
        callingAETitle: 'SCU',
        calledAETitle: AE,
        window: 8,
      });
      for (const o of outcomes) assert.equal(o.status, STATUS.Success, `${o.item.path}: ${o.error}`);
      t.diagnostic(
        `negotiated maxOpsInvoked ${state.negotiated.join(',')}; at most ${state.max} C-STOREs at once`,
      );
      assert.deepEqual(state.negotiated, [8]);
      assert.ok(state.max > 1, `at most ${state.max} C-STORE outstanding: the window is not used`);
      assert.ok(state.max <= 8, `${state.max} C-STOREs at once, above the window of 8`);
      assert.equal(state.received.size, 50);
      for (const f of files) assert.equal(state.received.get(f.sopInstanceUid), f.datasetSha256);
    } finally {
      await listener.close(2000);
    }
  });

  test('a C-STORE handler that gives up mid data set (destroys the stream): failures answered, no stall', {
    timeout: 60_000,
  }, async () => {
    // What folderStore does when its write fails (disk full): pipeline() destroys the data set stream
    // while the rest of it is still arriving. The association must drop the rest and answer.
    let calls = 0;
    const listener = await listen({
      host: '127.0.0.1',
      port: 0,
      aeTitle: AE,
      calledAETitles: [AE],
      maxPduLength: UL_DEFAULTS.maxPduLength,
      implementationClassUid: UL_DEFAULTS.implementationClassUid,
      implementationVersionName: UL_DEFAULTS.implementationVersionName,
      maxOpsPerformed: 1,
      transferSyntaxes: () => TRANSFER_SYNTAXES.map((t) => t.uid),
      onAssociation: (association) => {
        new Dimse(association, {
          'C-STORE-RQ': async ({ dataset }) => {
            calls++;
            // Wait until the stream buffer is full (the association is paused), then give up.
            await new Promise((resolve) => setTimeout(resolve, 100));
            dataset!.destroy();
            return { status: STATUS.OutOfResources, errorComment: 'disk full' };
          },
        });
      },
    });
    try {
      const sources = await msTutorial();
      const items = await Promise.all(sources.map((f) => describeFile(f)));
      const outcomes = await storeFiles(items, {
        host: '127.0.0.1',
        port: listener.port,
        callingAETitle: 'SCU',
        calledAETitle: AE,
        window: 1,
      });
      assert.equal(calls, sources.length);
      for (const o of outcomes) assert.equal(o.status, STATUS.OutOfResources, `${o.item.path}: ${o.error}`);
    } finally {
      await listener.close(2000);
    }
  });

  test('Dimse.connect maxOpsInvoked 8, stores issued together: window used, never exceeded', {
    timeout: 60_000,
  }, async (t) => {
    const { listener, state } = await instrumentedServer();
    try {
      const items = await Promise.all(files.map((f) => describeFile(f.path)));
      const dimse = await Dimse.connect({
        host: '127.0.0.1',
        port: listener.port,
        callingAETitle: 'SCU',
        calledAETitle: AE,
        maxOpsInvoked: 8,
        maxOpsPerformed: 1,
        contexts: [{ abstractSyntax: items[0]!.sopClassUid, transferSyntaxes: [EXPLICIT_LE] }],
      });
      try {
        assert.equal(dimse.association.info.maxOpsInvoked, 8);
        const context = dimse.contextFor(items[0]!.sopClassUid, [EXPLICIT_LE])!;
        assert.ok(context, 'no accepted context');
        const statuses = await Promise.all(
          items.map(async (item) => {
            const data = await datasetBytes(item.path);
            return (await dimse.store(context, item, data)).status;
          }),
        );
        assert.deepEqual(new Set(statuses), new Set([STATUS.Success]));
      } finally {
        await dimse.release();
      }
      t.diagnostic(`at most ${state.max} C-STOREs at once`);
      assert.ok(state.max > 1 && state.max <= 8, `at most ${state.max} at once (window 8)`);
      for (const f of files) assert.equal(state.received.get(f.sopInstanceUid), f.datasetSha256);
    } finally {
      await listener.close(2000);
    }
  });
});
