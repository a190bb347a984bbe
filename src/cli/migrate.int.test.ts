/**
 * `tessera migrate` from the embedded archive (SQLite + folder) to PostgreSQL + S3 (real servers
 * started here), then `tessera serve` on the target answering for what was migrated; a second run
 * resumes (only what is missing is copied).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  datasetSha256,
  killChildren,
  requireTools,
  run,
  sleep,
  start,
  writeInstance,
} from '../../test/helpers/interop.ts';
import { startPostgres, type TestPostgres } from '../../test/helpers/postgres.ts';
import { S3RVER_CREDENTIALS, type S3TestServer, startS3Server } from '../../test/helpers/s3.ts';
import { openArchive, parseConfig, startArchive } from '../server/index.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DATA = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const TUTORIAL = ['blue-circle', 'green-square', 'red-triangle'].map((n) =>
  join(DATA, 'ms-tutorial', `${n}.dcm`),
);
const TUTORIAL_STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const RED = '1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395';

const quiet = new Writable({ write: (_c, _e, done) => done() });

describe('tessera migrate: SQLite + folder -> PostgreSQL + S3', { timeout: 300_000 }, () => {
  let dir = '';
  let pg: TestPostgres;
  let s3: S3TestServer;
  let indexUrl = '';
  let blobsUrl = '';
  let env: NodeJS.ProcessEnv;
  const s3Env = (endpoint: string) => ({
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
  });

  const migrate = () =>
    run(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'migrate',
        '--from',
        `sqlite:${join(dir, 'embedded')}`,
        '--to',
        indexUrl,
        '--to-blobs',
        blobsUrl,
        '--batch',
        '7',
      ],
      { cwd: ROOT, env, timeoutMs: 120_000 },
    );

  before(async () => {
    await requireTools('storescu');
    dir = await mkdtemp(join(tmpdir(), 'tessera-migrate-'));
    [pg, s3] = await Promise.all([startPostgres(), startS3Server()]);
    indexUrl = await pg.createDatabase('tessera_migrate');
    blobsUrl = `s3://${await s3.createBucket('migrate')}/archive`;
    env = { ...process.env, ...s3Env(s3.endpoint) };
    Object.assign(process.env, s3Env(s3.endpoint));
    // The embedded archive: the tutorial files and 30 generated instances, stored with storescu.
    const embedded = await startArchive(
      parseConfig({ dataDir: join(dir, 'embedded'), dimsePort: 0, httpPort: 0, logLevel: 'warn' }),
      { logDestination: quiet, processMetrics: false },
    );
    await mkdir(join(dir, 'gen'));
    const files = [...TUTORIAL];
    for (let i = 0; i < 30; i++)
      files.push(
        (
          await writeInstance(join(dir, 'gen', `g${i}.dcm`), {
            rows: 32,
            columns: 32,
            patientName: 'Migrate^Me',
          })
        ).path,
      );
    const r = await run('storescu', ['-aec', 'TESSERA', '127.0.0.1', String(embedded.dimsePort), ...files], {
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr);
    await embedded.close();
  });

  after(async () => {
    killChildren();
    await Promise.allSettled([pg?.stop(), s3?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('every instance migrates; tessera serve on the target finds and retrieves them byte-identical', async () => {
    const r = await migrate();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /33 migrated, 0 already there, 0 failed of 33; 33 blobs/);
    const child = start(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'serve',
        '--data-dir',
        join(dir, 'node'),
        '--index',
        indexUrl,
        '--blobs',
        blobsUrl,
        '--dimse-port',
        '0',
        '--http-port',
        '0',
        '--log-level',
        'warn',
      ],
      { cwd: ROOT, env, timeoutMs: 200_000 },
    );
    const started = /(http:\/\/127\.0\.0\.1:\d+), archive in /;
    for (let i = 0; i < 600 && child.process.exitCode === null && !started.test(child.output()); i++)
      await sleep(50);
    const m = started.exec(child.output());
    assert.ok(m, child.output());
    const base = `${m[1]}/dicomweb`;
    const studies = (await (
      await fetch(`${base}/studies?StudyInstanceUID=${TUTORIAL_STUDY}`)
    ).json()) as Record<string, { Value?: unknown[] }>[];
    assert.equal(studies[0]?.['00201208']?.Value?.[0], 3);
    const named = (await (await fetch(`${base}/studies?PatientName=migrate*`)).json()) as unknown[];
    assert.equal(named.length, 30, 'the 30 generated studies, found by case-insensitive name');
    // The red triangle through WADO-RS, byte-identical in its data set.
    const wado = await fetch(
      `${base}/studies/${TUTORIAL_STUDY}/series/1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652/instances/${RED}`,
      { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } },
    );
    assert.equal(wado.status, 200);
    const body = Buffer.from(await wado.arrayBuffer());
    const source = await datasetSha256(join(DATA, 'ms-tutorial', 'red-triangle.dcm'));
    const { createHash } = await import('node:crypto');
    const start132 = body.indexOf('DICM') - 128;
    const part = body.subarray(start132);
    const groupLength = part.readUInt32LE(140);
    const dataset = part.subarray(144 + groupLength, 144 + groupLength + source.length);
    assert.equal(createHash('sha256').update(dataset).digest('hex'), source.sha256);
    child.process.kill('SIGTERM');
    await child.done;
  });

  test('a second run resumes: only what the target lacks is copied', async () => {
    // Take one instance out of the target, as if the first run had stopped before it.
    const target = await openArchive({ dataDir: join(dir, 'node'), index: indexUrl, blobs: blobsUrl });
    const removed = await target.index.deleteInstance(RED);
    assert.ok(removed);
    await target.blobs.delete(removed.blobKey);
    await target.close();
    const r = await migrate();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 migrated, 32 already there, 0 failed of 33; 1 blobs/);
    const again = await migrate();
    assert.match(again.stdout, /0 migrated, 33 already there, 0 failed of 33; 0 blobs/);
  });
});
