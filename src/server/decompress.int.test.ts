/**
 * Compressed instances sent uncompressed, end to end: the archive is loaded with storescu from the
 * shared corpus (JPEG-LS, RLE, JPEG Lossless), then each instance is retrieved where the peer asks for
 * (or accepts only) a native transfer syntax: WADO-RS instance and frames, rendered, getscu with its
 * default (uncompressed) proposals, and movescu to a storescp that accepts uncompressed data only.
 * Every pixel is compared with DCMTK's own decompression of the same file (dcmdjpls, dcmdrle,
 * dcmdjpeg), a third-party reference; what a peer accepts compressed still gets the stored bytes.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import {
  type Child,
  freePort,
  killChildren,
  requireTools,
  run,
  sleep,
  start,
} from '../../test/helpers/interop.ts';
import { responseParts } from '../../test/helpers/web-archive.ts';
import { type Dataset, readPart10 } from '../codec/index.ts';
import { Tag } from '../dictionary/index.ts';
import { type RunningArchive, startArchive } from './archive-server.ts';
import { parseConfig } from './config.ts';

const DATA = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';

/** Corpus files, the DCMTK tool that decompresses each, and its stored syntax. */
const FILES = [
  {
    path: join(DATA, 'transfer-syntax', 'ct1-jpegls-lossless-fragmented-bot.dcm'),
    tool: 'dcmdjpls',
    propose: '-xt',
  },
  { path: join(DATA, 'transfer-syntax', 'ct1-rle-multi-fragment-fo.dcm'), tool: 'dcmdrle', propose: '-xr' },
  {
    path: join(DATA, 'transfer-syntax', 'mr-jpeg-lossless-sv1-dcm4che.dcm'),
    tool: 'dcmdjpeg',
    propose: '-xs',
  },
  { path: join(DATA, 'multiframe', 'enhanced-ct-2f-rle-bot.dcm'), tool: 'dcmdrle', propose: '-xr' },
  { path: join(DATA, 'multiframe', 'us-palette-10f-rle-dcm4che.dcm'), tool: 'dcmdrle', propose: '-xr' },
] as const;

const quiet = new Writable({ write: (_c, _e, done) => done() });

interface Reference {
  readonly path: string;
  readonly stored: Dataset;
  readonly storedSyntax: string;
  /** DCMTK's decompression of the file. */
  readonly native: Dataset;
}

function pixels(ds: Dataset): Buffer {
  const el = ds.get(Tag.PixelData);
  if (el?.kind !== 'value') throw new Error(`no native Pixel Data value (${el?.kind})`);
  return el.bytes;
}

function urlOf(base: string, ds: Dataset): string {
  return `${base}/studies/${ds.string(Tag.StudyInstanceUID)}/series/${ds.string(Tag.SeriesInstanceUID)}/instances/${ds.string(Tag.SOPInstanceUID)}`;
}

describe('compressed instances retrieved uncompressed (WADO-RS, C-GET, C-MOVE)', { timeout: 300_000 }, () => {
  let dir = '';
  let archive: RunningArchive;
  let destPort = 0;
  let storescp: Child;
  const refs: Reference[] = [];
  const web = () => `http://127.0.0.1:${archive.httpPort}/dicomweb`;

  before(async () => {
    await requireTools(
      'storescu',
      'getscu',
      'movescu',
      'storescp',
      'dcmdjpls',
      'dcmdrle',
      'dcmdjpeg',
      'dcm2pnm',
    );
    dir = await mkdtemp(join(tmpdir(), 'tessera-decompress-'));
    destPort = await freePort();
    await mkdir(join(dir, 'dest'));
    // storescp's default: uncompressed transfer syntaxes only.
    storescp = start('storescp', ['-od', join(dir, 'dest'), String(destPort)], { timeoutMs: 280_000 });
    archive = await startArchive(
      parseConfig({
        dataDir: join(dir, 'archive'),
        dimsePort: 0,
        httpPort: 0,
        logLevel: 'warn',
        peers: { DEST: { host: '127.0.0.1', port: destPort } },
      }),
      { logDestination: quiet, processMetrics: false },
    );
    for (const [i, f] of FILES.entries()) {
      const out = join(dir, `reference-${i}.dcm`);
      const d = await run(f.tool, [f.path, out], { timeoutMs: 60_000 });
      assert.equal(d.code, 0, d.stdout + d.stderr);
      const file = readPart10(await readFile(f.path));
      refs.push({
        path: f.path,
        stored: file.dataset,
        storedSyntax: file.transferSyntax.uid,
        native: readPart10(await readFile(out)).dataset,
      });
    }
    // Each file in its own syntax (storescu's -xt/-xr/-xs propose it first).
    for (const f of FILES) {
      const r = await run(
        'storescu',
        [f.propose, '-aec', 'TESSERA', '127.0.0.1', String(archive.dimsePort), f.path],
        {
          timeoutMs: 60_000,
        },
      );
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    assert.equal((await archive.archive.index.counts()).instances, FILES.length);
  });

  after(async () => {
    await archive?.close();
    storescp?.process.kill();
    killChildren();
    await sleep(100);
    await rm(dir, { recursive: true, force: true });
  });

  test('WADO-RS in Explicit VR Little Endian: every frame decoded, pixels as DCMTK decodes them', async () => {
    for (const ref of refs) {
      const r = await fetch(urlOf(web(), ref.stored), {
        headers: { accept: `multipart/related; type="application/dicom"; transfer-syntax=${EXPLICIT_LE}` },
      });
      assert.equal(r.status, 200, `${ref.path}: ${await r.clone().text()}`);
      const [part] = await responseParts(r);
      const file = readPart10(part!.body);
      assert.equal(file.transferSyntax.uid, EXPLICIT_LE);
      assert.deepEqual(pixels(file.dataset), pixels(ref.native), ref.path);
      for (const t of [Tag.PhotometricInterpretation, Tag.Rows, Tag.Columns, Tag.BitsAllocated])
        assert.equal(file.dataset.string(t), ref.native.string(t), `${ref.path} ${t.toString(16)}`);
      // As stored (`*`): the compressed bytes, untouched.
      const stored = await fetch(urlOf(web(), ref.stored), {
        headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
      });
      const [storedPart] = await responseParts(stored);
      assert.equal(readPart10(storedPart!.body).transferSyntax.uid, ref.storedSyntax);
    }
  });

  test('frames: application/octet-stream means uncompressed (its default syntax); transfer-syntax=* the stored frame', async () => {
    for (const ref of refs) {
      const frames = ref.stored.number(Tag.NumberOfFrames) ?? 1;
      const frameBytes = pixels(ref.native).length / frames;
      const list = Array.from({ length: frames }, (_, i) => i + 1).join(',');
      const r = await fetch(`${urlOf(web(), ref.stored)}/frames/${list}`, {
        headers: { accept: 'multipart/related; type="application/octet-stream"' },
      });
      assert.equal(r.status, 200, `${ref.path}: ${await r.clone().text()}`);
      const parts = await responseParts(r);
      assert.equal(parts.length, frames);
      parts.forEach((p, i) => {
        assert.match(p.headers['content-type'] ?? '', /transfer-syntax=1\.2\.840\.10008\.1\.2\.1/);
        assert.deepEqual(p.body, pixels(ref.native).subarray(i * frameBytes, (i + 1) * frameBytes), ref.path);
      });
      const asStored = await fetch(`${urlOf(web(), ref.stored)}/frames/1`, {
        headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
      });
      const [one] = await responseParts(asStored);
      assert.match(one!.headers['content-type'] ?? '', new RegExp(ref.storedSyntax.replaceAll('.', '\\.')));
      assert.notEqual(one!.body.length, frameBytes, 'the stored frame is compressed');
    }
  });

  test('rendered and thumbnail of compressed instances', async () => {
    for (const ref of refs) {
      const r = await fetch(`${urlOf(web(), ref.stored)}/rendered`, { headers: { accept: 'image/png' } });
      assert.equal(r.status, 200, `${ref.path}: ${await r.clone().text()}`);
      const { info, data } = await sharp(Buffer.from(await r.arrayBuffer()))
        .raw()
        .toBuffer({ resolveWithObject: true });
      assert.deepEqual(
        [info.width, info.height],
        [ref.native.number(Tag.Columns), ref.native.number(Tag.Rows)],
      );
      // Not a blank image: grey levels spread over the range.
      assert.ok(new Set(data).size > 16, `${ref.path}: ${new Set(data).size} grey levels`);
    }
  });

  test('PALETTE COLOR rendered through its lookup tables, as DCMTK dcm2pnm renders it', async () => {
    const ref = refs.find((r) => r.stored.string(Tag.PhotometricInterpretation) === 'PALETTE COLOR')!;
    for (const frame of [1, 7]) {
      const r = await fetch(`${urlOf(web(), ref.stored)}/frames/${frame}/rendered`, {
        headers: { accept: 'image/png' },
      });
      assert.equal(r.status, 200, await r.clone().text());
      const mine = await sharp(Buffer.from(await r.arrayBuffer()))
        .raw()
        .toBuffer({ resolveWithObject: true });
      const out = join(dir, `palette-${frame}.png`);
      const d = await run('dcm2pnm', ['+on', '--frame', String(frame), ref.path, out], { timeoutMs: 60_000 });
      assert.equal(d.code, 0, d.stdout + d.stderr);
      const theirs = await sharp(out).raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([mine.info.width, mine.info.height, mine.info.channels], [600, 430, 3]);
      assert.deepEqual([theirs.info.width, theirs.info.height, theirs.info.channels], [600, 430, 3]);
      let off = 0;
      for (let i = 0; i < mine.data.length; i++) if (Math.abs(mine.data[i]! - theirs.data[i]!) > 1) off++;
      assert.equal(off, 0, `frame ${frame}: ${off} of ${mine.data.length} samples differ by more than 1`);
      // Colour, not grey: some pixels have red, green and blue apart.
      let colour = 0;
      for (let i = 0; i < mine.data.length; i += 3)
        if (mine.data[i] !== mine.data[i + 1] || mine.data[i + 1] !== mine.data[i + 2]) colour++;
      assert.ok(colour > 1000, `frame ${frame}: ${colour} coloured pixels`);
    }
  });

  test('getscu proposing uncompressed syntaxes only: the instances arrive decompressed', async () => {
    for (const [i, ref] of refs.entries()) {
      const out = join(dir, `get-${i}`);
      await mkdir(out);
      const r = await run(
        'getscu',
        [
          '-S',
          '-aet',
          'GETSCU',
          '-aec',
          'TESSERA',
          '-od',
          out,
          '-k',
          'QueryRetrieveLevel=IMAGE',
          '-k',
          `StudyInstanceUID=${ref.stored.string(Tag.StudyInstanceUID)}`,
          '-k',
          `SeriesInstanceUID=${ref.stored.string(Tag.SeriesInstanceUID)}`,
          '-k',
          `SOPInstanceUID=${ref.stored.string(Tag.SOPInstanceUID)}`,
          '127.0.0.1',
          String(archive.dimsePort),
        ],
        { timeoutMs: 60_000 },
      );
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const files = await readdir(out);
      assert.equal(files.length, 1, `${ref.path}: ${r.stdout}${r.stderr}`);
      const got = readPart10(await readFile(join(out, files[0]!)));
      assert.ok([EXPLICIT_LE, IMPLICIT_LE].includes(got.transferSyntax.uid), got.transferSyntax.uid);
      assert.deepEqual(pixels(got.dataset), pixels(ref.native), ref.path);
    }
  });

  test('movescu to a storescp that accepts uncompressed data only: decompressed, pixels as DCMTK decodes them', async () => {
    const r = await run(
      'movescu',
      [
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
        `StudyInstanceUID=${refs[0]!.stored.string(Tag.StudyInstanceUID)}`,
        '127.0.0.1',
        String(archive.dimsePort),
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ref = refs[0]!;
    const files = await readdir(join(dir, 'dest'));
    const got = await Promise.all(files.map(async (f) => readPart10(await readFile(join(dir, 'dest', f)))));
    const mine = got.find(
      (g) => g.dataset.string(Tag.SOPInstanceUID) === ref.stored.string(Tag.SOPInstanceUID),
    );
    assert.ok(mine, `${ref.path} moved: ${files.join(', ')}\n${r.stdout}${r.stderr}`);
    assert.ok([EXPLICIT_LE, IMPLICIT_LE].includes(mine.transferSyntax.uid), mine.transferSyntax.uid);
    assert.deepEqual(pixels(mine.dataset), pixels(ref.native));
  });
});
