/**
 * `tessera serve` end to end: the CLI as a child process (ports 0, read back from its start-up line)
 * with DCMTK storescu as the modality; the admin endpoints; the calling AE allow-list; a graceful
 * SIGTERM in the middle of a large store; a bad config file. In-process: `startArchive` logs a
 * failed C-STORE with the calling AE title, and /readyz turns 503 while it shuts down.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type Child,
  killChildren,
  requireTools,
  run,
  sleep,
  start,
  writeInstance,
} from '../../test/helpers/interop.ts';
import { SqliteIndex } from '../archive/index.ts';
import { startArchive } from './archive-server.ts';
import { parseConfig } from './config.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RED_TRIANGLE = fileURLToPath(
  new URL('../../../shared/data/dicom/ms-tutorial/red-triangle.dcm', import.meta.url),
);

interface Served {
  readonly child: Child;
  readonly dimsePort: number;
  readonly http: string;
}

/** `tessera serve ...` with free ports; resolves once its start-up line is printed. */
async function serve(args: readonly string[], timeoutMs = 120_000): Promise<Served> {
  const child = start(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--dimse-port', '0', '--http-port', '0', ...args],
    { cwd: ROOT, timeoutMs },
  );
  let exited = false;
  void child.done.then(() => {
    exited = true;
  });
  const started = /listening on 127\.0\.0\.1:(\d+) \(DIMSE\), (http:\/\/127\.0\.0\.1:\d+), archive in /;
  for (let i = 0; i < 300 && !exited && !started.test(child.output()); i++) await sleep(50);
  const m = started.exec(child.output());
  assert.ok(m, `tessera serve did not start:\n${child.output()}`);
  return { child, dimsePort: Number(m[1]), http: m[2]! };
}

const storescu = (aet: string, port: number, files: readonly string[], timeoutMs = 60_000) =>
  run('storescu', ['-v', '-aet', aet, '-aec', 'TESSERA', '127.0.0.1', String(port), ...files], { timeoutMs });

async function get(url: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: r.status, text: await r.text() };
}

describe('tessera serve (child process) with DCMTK storescu', { timeout: 300_000 }, () => {
  let dir = '';
  const files: string[] = [];

  before(async () => {
    await requireTools('storescu');
    dir = await mkdtemp(join(tmpdir(), 'tessera-serve-'));
    await mkdir(join(dir, 'files'));
    for (let i = 0; i < 3; i++) {
      const path = join(dir, 'files', `i${i}.dcm`);
      await writeInstance(path, { rows: 64, columns: 64 });
      files.push(path);
    }
  });

  after(async () => {
    killChildren();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('stores 3 instances; /healthz, /readyz, /stats, /metrics; the calling AE allow-list; SIGTERM exits 0', {
    timeout: 120_000,
  }, async () => {
    const { child, dimsePort, http } = await serve([
      '--data-dir',
      join(dir, 'data'),
      '--calling-ae',
      'STORESCU',
      '--calling-ae',
      'MODALITY2',
      '--peer',
      'VIEWER=127.0.0.1:11113',
    ]);
    const r = await storescu('STORESCU', dimsePort, files);
    assert.equal(r.code, 0, `storescu failed\n${r.stdout}${r.stderr}`);

    const health = await get(`${http}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(JSON.parse(health.text), { status: 'ok' });
    const ready = await get(`${http}/readyz`);
    assert.equal(ready.status, 200, ready.text);
    const stats = JSON.parse((await get(`${http}/stats`)).text) as {
      index: { instances: number; studies: number; bytes: number };
      disk: { used: number; free: number };
      associations: { open: number };
    };
    assert.equal(stats.index.instances, 3);
    assert.equal(stats.index.studies, 3);
    assert.ok(stats.index.bytes > 3 * 64 * 64 * 2, `bytes ${stats.index.bytes}`);
    assert.ok(stats.disk.free > 0 && stats.disk.used > 0);
    assert.equal(stats.associations.open, 0);
    const metrics = await get(`${http}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^tessera_instances_stored_total\{status="0000"\} 3$/m);
    assert.match(metrics.text, /^tessera_associations_total\{result="accepted"\} 1$/m);
    assert.match(metrics.text, /^tessera_store_duration_seconds_count 3$/m);
    assert.match(metrics.text, /^tessera_associations_open 0$/m);
    const received = Number(/^tessera_bytes_received_total (\d+)$/m.exec(metrics.text)?.[1]);
    assert.ok(received > 3 * 64 * 64 * 2, `bytes received ${received}`);
    assert.equal((await get(`${http}/nothing-here`)).status, 404);
    const post = await fetch(`${http}/healthz`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
    assert.equal(post.status, 405);
    await post.text();

    // A calling AE title outside --calling-ae is rejected at association time.
    const other = await storescu('OTHER', dimsePort, files.slice(0, 1));
    assert.notEqual(other.code, 0, 'storescu -aet OTHER succeeded');
    assert.match(other.stdout + other.stderr, /Association Rejected/i);
    assert.match(other.stdout + other.stderr, /Calling AE Title Not Recognized/i);
    const after = await get(`${http}/metrics`);
    assert.match(after.text, /^tessera_associations_total\{result="rejected"\} 1$/m);
    assert.match(after.text, /^tessera_instances_stored_total\{status="0000"\} 3$/m);

    child.process.kill('SIGTERM');
    const done = await child.done;
    assert.equal(done.code, 0, done.stdout + done.stderr);
    // JSON log lines: the rejection with the calling AE, the stores with theirs.
    const logs = done.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      logs.some((l) => l.msg === 'association rejected' && l.callingAETitle === 'OTHER' && l.level === 40),
      done.stdout,
    );
    assert.ok(logs.some((l) => l.msg === 'association established' && l.callingAETitle === 'STORESCU'));
    assert.ok(logs.some((l) => l.msg === 'archive stopped'));
    assert.doesNotMatch(done.stderr, /\S/, 'nothing on stderr');
  });

  test('SIGTERM during a large store: the store completes, then the process exits 0', {
    timeout: 180_000,
  }, async () => {
    const big = join(dir, 'files', 'big.dcm');
    // 128 MB of pixel data, received in PDUs of at most 16 kB: long enough to be caught in the middle.
    const { sopInstanceUid } = await writeInstance(big, { rows: 8192, columns: 8192 });
    const dataDir = join(dir, 'data-big');
    const { child, dimsePort } = await serve(['--data-dir', dataDir, '--max-pdu', '16384']);
    const sender = start('storescu', ['-aec', 'TESSERA', '127.0.0.1', String(dimsePort), big], {
      timeoutMs: 150_000,
    });
    let senderDone = 0;
    void sender.done.then(() => {
      senderDone = Date.now();
    });
    // Wait until the instance is being written (its temp blob grows), then ask the server to stop.
    const tmp = join(dataDir, 'tmp');
    let written = 0;
    for (let i = 0; i < 2000 && written < 4 * 1024 * 1024 && !senderDone; i++) {
      await sleep(5);
      for (const name of await readdir(tmp).catch(() => [])) {
        written = Math.max(written, (await stat(join(tmp, name)).catch(() => ({ size: 0 }))).size);
      }
    }
    assert.ok(
      written > 0 && !senderDone,
      `the store was not caught in the middle (${written} bytes written)`,
    );
    child.process.kill('SIGTERM');
    const [s, served] = await Promise.all([sender.done, child.done]);
    const serverDone = Date.now();
    assert.equal(s.code, 0, `storescu failed:\n${s.stdout}${s.stderr}\nserver:\n${served.stdout}`);
    assert.equal(served.code, 0, served.stdout + served.stderr);
    assert.ok(senderDone <= serverDone, 'the server exited before the store completed');
    assert.match(served.stdout, /SIGTERM: shutting down/);
    const index = SqliteIndex.open(join(dataDir, 'index.sqlite'));
    try {
      const row = index.instanceSync(sopInstanceUid);
      assert.ok(row, 'the instance is not in the index');
      assert.ok(row.size > 128 * 1024 * 1024);
    } finally {
      index.close();
    }
  });

  test('a bad config file: exit 2 and one line naming the field', { timeout: 60_000 }, async () => {
    const config = join(dir, 'bad.yaml');
    await writeFile(config, 'aeTitle: TESSERA\ndimsePort: abc\n');
    const r = await run(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--config', config, '--data-dir', join(dir, 'never')],
      { cwd: ROOT, timeoutMs: 30_000 },
    );
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      /^tessera: error: invalid configuration: dimsePort: expected a port 1-65535, got "abc"/,
    );
    assert.equal(await stat(join(dir, 'never')).catch(() => undefined), undefined, 'nothing created');
  });
});

describe('startArchive (in process)', { timeout: 120_000 }, () => {
  let dir = '';
  before(async () => {
    await requireTools('storescu');
    dir = await mkdtemp(join(tmpdir(), 'tessera-start-'));
  });
  after(async () => {
    killChildren();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a failing C-STORE is logged at warn with the calling AE title', async () => {
    const lines: Record<string, unknown>[] = [];
    const archive = await startArchive(
      parseConfig({
        dataDir: join(dir, 'data'),
        dimsePort: 0,
        httpPort: 0,
        duplicates: 'accept-if-identical',
        duplicatesByAE: { MODALITY7: 'reject' },
        logLevel: 'debug',
      }),
      { logDestination: { write: (s: string) => lines.push(JSON.parse(s)) }, processMetrics: false },
    );
    try {
      // MODALITY8 has the default policy: an identical copy is accepted.
      for (let i = 0; i < 2; i++) {
        const r = await storescu('MODALITY8', archive.dimsePort, [RED_TRIANGLE]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
      }
      // MODALITY7's duplicates are refused (0111).
      const path = join(dir, 'one.dcm');
      await writeInstance(path, { rows: 16, columns: 16 });
      const first = await storescu('MODALITY7', archive.dimsePort, [path]);
      assert.equal(first.code, 0, first.stdout + first.stderr);
      const again = await storescu('MODALITY7', archive.dimsePort, [path]);
      assert.match(again.stdout + again.stderr, /Status: 0x0?111/i);

      const warn = lines.filter((l) => l.level === 40);
      const dimse = warn.find((l) => l.type === 'C-STORE-RQ');
      assert.ok(dimse, JSON.stringify(lines, null, 1));
      assert.equal(dimse.callingAETitle, 'MODALITY7');
      assert.equal(dimse.status, '0x0111');
      assert.equal(typeof dimse.association, 'number');
      assert.equal(typeof dimse.messageId, 'number');
      assert.match(String(dimse.msg), /C-STORE-RQ failed/);
      const ingest = warn.find((l) => String(l.msg).startsWith('instance not stored'));
      assert.ok(ingest, JSON.stringify(warn, null, 1));
      assert.equal(ingest.callingAETitle, 'MODALITY7');
      assert.equal(typeof ingest.comment, 'string');
      assert.equal(warn.length, 2, JSON.stringify(warn, null, 1));
      // Successful requests are debug lines with the association, type, messageId, status and ms.
      const ok = lines.filter((l) => l.level === 20 && l.type === 'C-STORE-RQ');
      assert.equal(ok.length, 3);
      for (const l of ok) for (const k of ['association', 'messageId', 'status', 'ms']) assert.ok(k in l, k);
    } finally {
      await archive.close();
    }
  });

  test('/readyz answers 503 while shutting down; close() is idempotent', async () => {
    const archive = await startArchive(
      parseConfig({ dataDir: join(dir, 'data2'), dimsePort: 0, httpPort: 0, shutdownGraceMs: 1500 }),
      { logDestination: { write: () => {} }, processMetrics: false },
    );
    const http = `http://127.0.0.1:${archive.httpPort}`;
    assert.equal((await get(`${http}/readyz`)).status, 200);
    // A connection that never sends an A-ASSOCIATE-RQ keeps the listener in its grace period.
    const socket = connect(archive.dimsePort, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.on('error', () => {});
    const closing = archive.close();
    const during = await get(`${http}/readyz`);
    assert.equal(during.status, 503);
    assert.match(during.text, /DIMSE listener is closed/);
    assert.equal((await get(`${http}/healthz`)).status, 200);
    await Promise.all([closing, archive.close()]);
    socket.destroy();
    await assert.rejects(get(`${http}/healthz`));
  });
});
