/**
 * `tessera web` (the DICOMweb client through the CLI) against Tessera's own DICOMweb server, with a
 * bearer token: store a folder, query, retrieve byte-identical, metadata, frames, delete.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { datasetSha256, run } from '../../test/helpers/interop.ts';
import { parseConfig, type RunningArchive, startArchive } from '../server/index.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TUTORIAL_DIR = fileURLToPath(new URL('../../../shared/data/dicom/ms-tutorial/', import.meta.url));
const STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const SERIES = '1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652';
const RED = '1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395';
const TOKEN = 'test-token-1234';

const quiet = new Writable({ write: (_c, _e, done) => done() });

describe('tessera web against tessera serve', { timeout: 180_000 }, () => {
  let dir = '';
  let archive: RunningArchive;
  let url = '';
  const web = (args: readonly string[]) =>
    run(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'web', ...args, '--url', url, '--token', TOKEN],
      {
        cwd: ROOT,
        timeoutMs: 60_000,
      },
    );

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-web-cli-'));
    archive = await startArchive(
      parseConfig({
        dataDir: join(dir, 'data'),
        dimsePort: 0,
        httpPort: 0,
        logLevel: 'warn',
        bearerTokens: [TOKEN],
      }),
      { logDestination: quiet, processMetrics: false },
    );
    url = `http://127.0.0.1:${archive.httpPort}/dicomweb`;
  });

  after(async () => {
    await archive?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('store a folder, query, retrieve, metadata, frames, delete', async () => {
    const stored = await web(['store', TUTORIAL_DIR]);
    assert.equal(stored.code, 0, stored.stdout + stored.stderr);
    assert.equal((await archive.archive.index.counts()).instances, 3);

    const q = await web(['query', 'instances', `StudyInstanceUID=${STUDY}`, `SOPInstanceUID=${RED}`]);
    assert.equal(q.code, 0, q.stderr);
    const matches = JSON.parse(q.stdout) as Record<string, { Value?: unknown[] }>[];
    assert.equal(matches.length, 1);
    assert.equal(matches[0]!['00080018']?.Value?.[0], RED);

    const out = join(dir, 'retrieved');
    const r = await web(['retrieve', STUDY, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const files = (await readdir(out)).sort();
    assert.equal(files.length, 3);
    const sources = new Set<string>();
    for (const f of await readdir(TUTORIAL_DIR))
      if (f.endsWith('.dcm')) sources.add((await datasetSha256(join(TUTORIAL_DIR, f))).sha256);
    for (const f of files) assert.ok(sources.has((await datasetSha256(join(out, f))).sha256), f);

    const m = await web(['metadata', STUDY, SERIES]);
    assert.equal(m.code, 0, m.stderr);
    assert.equal((JSON.parse(m.stdout) as unknown[]).length, 2);

    const framesOut = join(dir, 'frames');
    const fr = await web(['frames', STUDY, SERIES, RED, '1', '--out', framesOut]);
    assert.equal(fr.code, 0, fr.stdout + fr.stderr);
    const frameFiles = await readdir(framesOut);
    assert.equal(frameFiles.length, 1);
    assert.equal((await readFile(join(framesOut, frameFiles[0]!))).length, 979 * 985 * 3);

    const unauthorized = await run(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'web', 'query', 'studies', '--url', url, '--token', 'wrong'],
      { cwd: ROOT, timeoutMs: 60_000 },
    );
    assert.notEqual(unauthorized.code, 0);
    assert.match(unauthorized.stderr, /401/);

    const d = await web(['delete', STUDY]);
    assert.equal(d.code, 0, d.stderr);
    assert.equal((await archive.archive.index.counts()).instances, 0);
  });
});
