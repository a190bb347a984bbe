/**
 * Scale-out end to end: two `tessera serve` processes (stateless nodes) on one archive made of a real
 * PostgreSQL (initdb'd and started here) and an S3-compatible server (s3rver), like two nodes behind
 * a load balancer. What one node stores is at once visible to the other (C-FIND, QIDO-RS, WADO-RS,
 * C-MOVE); both ingest into one study concurrently with exact counts; a node killed with SIGKILL in
 * the middle of an ingest leaves the shared index consistent (every row has its blob), and a re-send
 * through the restarted node completes the study.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type Child,
  datasetSha256,
  freePort,
  killChildren,
  newUid,
  requireTools,
  run,
  sleep,
  start,
  writeInstance,
} from '../../test/helpers/interop.ts';
import { startPostgres, type TestPostgres } from '../../test/helpers/postgres.ts';
import { S3RVER_CREDENTIALS, type S3TestServer, startS3Server } from '../../test/helpers/s3.ts';
import { openPostgresIndex, openS3BlobStore } from '../archive/index.ts';
import { openArchive } from './archive-store.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DATA = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const TUTORIAL = ['blue-circle', 'green-square', 'red-triangle'].map((n) =>
  join(DATA, 'ms-tutorial', `${n}.dcm`),
);
const TUTORIAL_STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';

interface Node {
  readonly child: Child;
  readonly dimsePort: number;
  readonly http: string;
}

describe('two Tessera nodes on PostgreSQL + S3', { timeout: 600_000 }, () => {
  let dir = '';
  let pg: TestPostgres;
  let s3: S3TestServer;
  let indexUrl = '';
  let blobsUrl = '';
  let env: NodeJS.ProcessEnv;
  let a: Node;
  let b: Node;
  let destPort = 0;
  let destDir = '';

  async function serve(name: string, extra: readonly string[] = []): Promise<Node> {
    const child = start(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'serve',
        '--data-dir',
        join(dir, name),
        '--index',
        indexUrl,
        '--blobs',
        blobsUrl,
        '--dimse-port',
        '0',
        '--http-port',
        '0',
        '--any-called-ae',
        '--peer',
        `DEST=127.0.0.1:${destPort}`,
        '--log-level',
        'warn',
        ...extra,
      ],
      { cwd: ROOT, env, timeoutMs: 560_000 },
    );
    const started = /listening on 127\.0\.0\.1:(\d+) \(DIMSE\), (http:\/\/127\.0\.0\.1:\d+), archive in /;
    for (let i = 0; i < 600 && child.process.exitCode === null && !started.test(child.output()); i++)
      await sleep(50);
    const m = started.exec(child.output());
    assert.ok(m, `node ${name} did not start:\n${child.output()}`);
    return { child, dimsePort: Number(m[1]), http: `${m[2]}/dicomweb` };
  }

  const storescu = (node: Node, files: readonly string[], timeoutMs = 120_000) =>
    run('storescu', ['-aec', 'TESSERA', '127.0.0.1', String(node.dimsePort), ...files], { timeoutMs });

  async function qido(node: Node, path: string): Promise<Record<string, { Value?: unknown[] }>[]> {
    const r = await fetch(`${node.http}${path}`, { signal: AbortSignal.timeout(20_000) });
    assert.equal(r.status, 200, await r.clone().text());
    return (await r.json()) as Record<string, { Value?: unknown[] }>[];
  }

  before(async () => {
    await requireTools('storescu', 'findscu', 'movescu', 'storescp');
    dir = await mkdtemp(join(tmpdir(), 'tessera-scale-'));
    [pg, s3] = await Promise.all([startPostgres(), startS3Server()]);
    indexUrl = await pg.createDatabase('tessera_scale');
    const bucket = await s3.createBucket('scale');
    blobsUrl = `s3://${bucket}/archive`;
    env = {
      ...process.env,
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_REGION: 'us-east-1',
    };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_REGION: 'us-east-1',
    });
    destPort = await freePort();
    destDir = join(dir, 'dest');
    await mkdir(destDir);
    start('storescp', ['+xa', '-od', destDir, String(destPort)], { timeoutMs: 580_000 });
    a = await serve('a');
    b = await serve('b');
  });

  after(async () => {
    killChildren();
    await Promise.allSettled([pg?.stop(), s3?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('stored through node A, found and retrieved through node B (C-FIND, QIDO-RS, WADO-RS, C-MOVE)', async () => {
    const r = await storescu(a, TUTORIAL);
    assert.equal(r.code, 0, r.stderr);
    // C-FIND on B right after A's success statuses.
    const out = join(dir, 'find');
    await mkdir(out);
    await run(
      'findscu',
      [
        '-S',
        '-aec',
        'TESSERA',
        '-X',
        '-od',
        out,
        '-k',
        'QueryRetrieveLevel=STUDY',
        '-k',
        `StudyInstanceUID=${TUTORIAL_STUDY}`,
        '-k',
        'NumberOfStudyRelatedInstances',
        '127.0.0.1',
        String(b.dimsePort),
      ],
      { timeoutMs: 30_000 },
    );
    assert.equal((await readdir(out)).length, 1, 'node B finds the study node A stored');
    const studies = await qido(b, `/studies?StudyInstanceUID=${TUTORIAL_STUDY}`);
    assert.equal(studies.length, 1);
    assert.equal(studies[0]!['00201208']?.Value?.[0], 3);
    // WADO-RS through B: three Part 10 parts, byte-identical data sets.
    const wado = await fetch(`${b.http}/studies/${TUTORIAL_STUDY}`, {
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    assert.equal(wado.status, 200);
    const body = Buffer.from(await wado.arrayBuffer());
    assert.equal(body.toString('latin1').split('DICM').length - 1, 3);
    // C-MOVE through B to a storescp.
    const moved = await run(
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
        `StudyInstanceUID=${TUTORIAL_STUDY}`,
        '127.0.0.1',
        String(b.dimsePort),
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(moved.code, 0, moved.stdout + moved.stderr);
    const sources = new Set<string>();
    for (const f of TUTORIAL) sources.add((await datasetSha256(f)).sha256);
    const received = await readdir(destDir);
    assert.equal(received.length, 3);
    for (const f of received) assert.ok(sources.has((await datasetSha256(join(destDir, f))).sha256), f);
  });

  test('both nodes ingest into one study at once: the computed counts are exact', async () => {
    const study = newUid();
    await mkdir(join(dir, 'shared'));
    const files: string[] = [];
    for (let i = 0; i < 40; i++) {
      const g = await writeInstance(join(dir, 'shared', `s${i}.dcm`), {
        rows: 16,
        columns: 16,
        patientName: 'Shared^Study',
        studyInstanceUid: study,
      });
      files.push(g.path);
    }
    const [ra, rb] = await Promise.all([storescu(a, files.slice(0, 20)), storescu(b, files.slice(20))]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    for (const node of [a, b]) {
      const found = await qido(
        node,
        `/studies?StudyInstanceUID=${study}&includefield=NumberOfStudyRelatedSeries`,
      );
      assert.equal(found.length, 1);
      assert.equal(found[0]!['00201208']?.Value?.[0], 40, 'NumberOfStudyRelatedInstances');
    }
    const index = await openPostgresIndex(indexUrl);
    try {
      assert.deepEqual(await index.verify(), []);
    } finally {
      await index.close();
    }
  });

  test('node A killed with SIGKILL mid-ingest: the shared index stays consistent; a re-send completes', async () => {
    await mkdir(join(dir, 'kill'));
    const study = newUid();
    const files: string[] = [];
    for (let i = 0; i < 150; i++) {
      const g = await writeInstance(join(dir, 'kill', `k${i}.dcm`), {
        rows: 256,
        columns: 256,
        patientName: 'Kill^Nine',
        studyInstanceUid: study,
      });
      files.push(g.path);
    }
    const sending = storescu(a, files, 300_000);
    // Let some of them land, then kill the node.
    for (let i = 0; i < 400; i++) {
      const found = await qido(b, `/studies?StudyInstanceUID=${study}`);
      const n = Number(found[0]?.['00201208']?.Value?.[0] ?? 0);
      if (n >= 20) break;
      await sleep(25);
    }
    a.child.process.kill('SIGKILL');
    await a.child.done;
    await sending;
    const index = await openPostgresIndex(indexUrl);
    const blobs = await openS3BlobStore(blobsUrl);
    try {
      assert.deepEqual(await index.verify(), [], 'computed counts agree with the rows');
      let rows = 0;
      for await (const { blobKey } of index.allBlobKeys()) {
        rows++;
        assert.ok(await blobs.exists(blobKey), `the blob of every index row exists (${blobKey})`);
      }
      assert.ok(rows > 3, `${rows} rows`);
      const partial = await qido(b, `/studies?StudyInstanceUID=${study}`);
      const before = Number(partial[0]?.['00201208']?.Value?.[0] ?? 0);
      assert.ok(before > 0 && before < 150, `${before} of 150 instances stored before the kill`);
      // Node A restarts on the same shared archive; the modality re-sends everything.
      a = await serve('a');
      const again = await storescu(a, files, 300_000);
      assert.equal(again.code, 0, again.stderr);
      const done = await qido(b, `/studies?StudyInstanceUID=${study}`);
      assert.equal(done[0]!['00201208']?.Value?.[0], 150);
      assert.deepEqual(await index.verify(), []);
    } finally {
      await index.close();
    }
  });

  test('the index lock timeout reaches the PostgreSQL sessions (indexLockTimeoutMs, --index-lock-timeout)', async () => {
    const archive = await openArchive({
      dataDir: join(dir, 'lock-timeout'),
      index: indexUrl,
      blobs: blobsUrl,
      indexLockTimeoutMs: 700,
    });
    try {
      assert.deepEqual(
        await archive.index.select(
          "SELECT current_setting('lock_timeout') AS lock, current_setting('idle_in_transaction_session_timeout') AS idle",
          [],
        ),
        [{ lock: '700ms', idle: '1400ms' }],
      );
    } finally {
      await archive.close();
    }
  });
});
