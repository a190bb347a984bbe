/**
 * The `tessera` command line as a user runs it: a child process (`node --import tsx src/cli/main.ts`)
 * over corpus files (../shared/data/dicom), checked on exit code, stdout and stderr. Malformed input
 * must give a non-zero exit code and one `tessera: error:` line naming where (offset, tag), never a
 * stack trace.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { datasetToJson, readPart10 } from '../codec/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const corpus = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const RED_TRIANGLE = join(corpus, 'ms-tutorial/red-triangle.dcm');
const NESTED_SR = join(corpus, 'sr/comprehensive-sr-dcmjs.dcm');
const TRUNCATED = join(corpus, 'malformed/truncated-3gb-bulk-dcm4che.dcm');
const TIMEOUT = 60_000;

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the CLI with `args`; resolves when it exits. With `closeStdoutEarly`, our end of its stdout pipe
 * is closed after the first chunk, as `tessera ... | head -1` does.
 */
function tessera(args: readonly string[], closeStdoutEarly = false): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: root,
      timeout: TIMEOUT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => {
      out.push(c);
      if (closeStdoutEarly) child.stdout.destroy();
    });
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
  });
}

function assertSuccess(r: Run): void {
  assert.equal(r.signal, null, `killed by ${r.signal} (timeout?)\n${r.stderr}`);
  assert.equal(r.code, 0, `exit code ${r.code}, stderr:\n${r.stderr}`);
  assert.equal(r.stderr, '');
}

/** Exit code != 0, and stderr exactly one `tessera: error:` line, with no stack trace. */
function assertCleanFailure(r: Run): string {
  assert.equal(r.signal, null, `killed by ${r.signal} (timeout?)\n${r.stderr}`);
  assert.notEqual(r.code, 0, `exit code 0 for bad input; stdout:\n${r.stdout.slice(0, 2000)}`);
  assert.ok(r.stderr.endsWith('\n'), `stderr not one terminated line: ${JSON.stringify(r.stderr)}`);
  const lines = r.stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `stderr has ${lines.length} lines:\n${r.stderr}`);
  assert.match(lines[0]!, /^tessera: error: \S/);
  assert.doesNotMatch(r.stderr, /^ {4}at /m, 'stack trace on stderr');
  return lines[0]!;
}

/** Deterministic garbage (xorshift32), so that a failure can be reproduced. */
function garbage(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

describe('tessera dump', () => {
  test('red-triangle.dcm: meta header, data set, Patient Name and Pixel Data lines', {
    timeout: TIMEOUT,
  }, async () => {
    const r = await tessera(['dump', RED_TRIANGLE]);
    assertSuccess(r);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], '# Dicom-File-Format');
    assert.ok(lines.includes('# Dicom-Meta-Information-Header'));
    assert.ok(lines.includes('# Dicom-Data-Set'));
    assert.match(r.stdout, /^\(0002,0000\) UL 242 +# +4, 1 FileMetaInformationGroupLength$/m);
    assert.match(r.stdout, /^\(0002,0010\) UI =ExplicitVRLittleEndian +# +20, 1 TransferSyntaxUID$/m);
    assert.match(r.stdout, /^# Used TransferSyntax: Explicit VR Little Endian$/m);
    assert.match(r.stdout, /^\(0010,0010\) PN \[Anony Mous\] +# +10, 1 PatientName$/m);
    // 979 x 985 RGB, 8 bits: 2892945 bytes, padded to even length.
    assert.match(r.stdout, /^\(7fe0,0010\) OB [0-9a-f]{2}\\.* # 2892946, 1 PixelData$/m);
    // Meta elements come before the data set, and elements in tag order.
    assert.ok(r.stdout.indexOf('(0002,0013)') < r.stdout.indexOf('# Dicom-Data-Set'));
    assert.ok(r.stdout.indexOf('(0010,0010)') < r.stdout.indexOf('(7fe0,0010)'));
  });

  test('a nested SR: indented items and (fffe,e00d)/(fffe,e0dd) delimiters', {
    timeout: TIMEOUT,
  }, async () => {
    const r = await tessera(['dump', NESTED_SR]);
    assertSuccess(r);
    const lines = r.stdout.split('\n').filter((l) => /^ *\(/.test(l));
    const indent = (l: string): number => l.length - l.trimStart().length;
    // A sequence, its item two columns in, the item's elements two more, the delimiters back out.
    assert.match(
      r.stdout,
      /^\(0040,a043\) SQ \(Sequence with undefined length #=1\) +# +u\/l, 1 ConceptNameCodeSequence\n {2}\(fffe,e000\) na \(Item with undefined length #=3\) +# +u\/l, 1 Item\n {4}\(0008,0100\) SH \[126000\] .*\n(?: {4}.*\n)* {2}\(fffe,e00d\) na \(ItemDelimitationItem\) +# +0, 0 ItemDelimitationItem\n\(fffe,e0dd\) na \(SequenceDelimitationItem\) +# +0, 0 SequenceDelimitationItem$/m,
    );
    // Every undefined-length item and sequence is closed by its delimiter, at its own indentation.
    const open: { kind: 'item' | 'sequence'; indent: number }[] = [];
    for (const l of lines) {
      const at = indent(l);
      assert.equal(at % 2, 0, `odd indentation: ${l}`);
      if (/^ *\(fffe,e00d\)/.test(l)) {
        assert.deepEqual(open.pop(), { kind: 'item', indent: at }, l);
      } else if (/^ *\(fffe,e0dd\)/.test(l)) {
        assert.deepEqual(open.pop(), { kind: 'sequence', indent: at }, l);
      } else if (/ SQ \(Sequence with undefined length/.test(l)) {
        open.push({ kind: 'sequence', indent: at });
      } else if (/^ *\(fffe,e000\) na \(Item with undefined length/.test(l)) {
        open.push({ kind: 'item', indent: at });
      }
    }
    assert.deepEqual(open, [], 'unclosed items or sequences');
    assert.ok(lines.filter((l) => l.includes('(fffe,e00d)')).length >= 10);
    assert.ok(lines.filter((l) => l.includes('(fffe,e0dd)')).length >= 10);
    // The SR nests content items six levels deep: 24 columns of indentation.
    assert.ok(Math.max(...lines.map(indent)) >= 20, 'deep nesting not indented');
  });

  test('--stop-before PixelData leaves out (7fe0,0010)', { timeout: TIMEOUT }, async () => {
    const r = await tessera(['dump', '--stop-before', 'PixelData', RED_TRIANGLE]);
    assertSuccess(r);
    assert.doesNotMatch(r.stdout, /^ *\(7fe0,0010\)/m);
    assert.match(r.stdout, /^\(0028,0107\) US 255 /m, 'the elements before Pixel Data are there');
    assert.match(r.stdout, /^# \(stopped before \(7fe0,0010\)\)$/m);
    const byTag = await tessera(['dump', '--stop-before', '7fe0,0010', RED_TRIANGLE]);
    assertSuccess(byTag);
    assert.equal(byTag.stdout, r.stdout);
  });

  test('closing the pipe early (| head) is not an error', { timeout: TIMEOUT }, async () => {
    // `json` of a 2.9 MB image writes about 3.9 MB: far more than a pipe holds.
    const r = await tessera(['json', RED_TRIANGLE], true);
    assert.equal(r.signal, null);
    assert.doesNotMatch(r.stderr, /^ {4}at /m, 'stack trace on stderr');
    assert.doesNotMatch(r.stderr, /EPIPE/);
  });
});

describe('tessera json', () => {
  test('red-triangle.dcm: the DICOM JSON of readPart10 + datasetToJson, Pixel Data inline', {
    timeout: TIMEOUT,
  }, async () => {
    const r = await tessera(['json', RED_TRIANGLE]);
    assertSuccess(r);
    const fromCli = JSON.parse(r.stdout) as Record<
      string,
      { vr: string; Value?: unknown[]; InlineBinary?: string }
    >;
    const file = readPart10(await readFile(RED_TRIANGLE));
    // Through JSON text, as the CLI's output is (e.g. -0 becomes 0).
    assert.deepEqual(fromCli, JSON.parse(JSON.stringify(datasetToJson(file.dataset))));
    assert.deepEqual(fromCli['00100010'], { vr: 'PN', Value: [{ Alphabetic: 'Anony Mous' }] });
    assert.equal(fromCli['00020010'], undefined, 'no File Meta Information in the data set JSON');
    const pixel = fromCli['7FE00010'];
    assert.equal(pixel?.vr, 'OB');
    assert.equal(typeof pixel?.InlineBinary, 'string');
    const bytes = Buffer.from(pixel!.InlineBinary!, 'base64');
    const held = file.dataset.bytes(0x7fe00010);
    assert.ok(held, 'Pixel Data in memory');
    assert.equal(bytes.length, held.length);
    assert.equal(bytes.length, 979 * 985 * 3 + 1);
    assert.ok(bytes.equals(held), 'Pixel Data bytes differ');
  });

  test('--compact prints the same JSON on one line', { timeout: TIMEOUT }, async () => {
    const r = await tessera(['json', '--compact', NESTED_SR]);
    assertSuccess(r);
    assert.equal(r.stdout.split('\n').length, 2);
    const file = readPart10(await readFile(NESTED_SR));
    assert.deepEqual(JSON.parse(r.stdout), JSON.parse(JSON.stringify(datasetToJson(file.dataset))));
  });
});

describe('malformed input: exit code != 0, one error line, no stack trace', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-cli-'));
    await writeFile(join(dir, 'garbage.dcm'), garbage(0x7e55e7a, 8192));
    await writeFile(join(dir, 'empty.dcm'), Buffer.alloc(0));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const command of ['dump', 'json']) {
    test(`${command}: a 3 GB Pixel Data length in a 100 kB file`, { timeout: TIMEOUT }, async () => {
      const line = assertCleanFailure(await tessera([command, TRUNCATED]));
      assert.match(line, /offset 1908\b/);
      assert.match(line, /\(7FE0,0010\)/);
      assert.match(line, /\[ERR_CODEC_TRUNCATED\]$/);
    });

    test(`${command}: random garbage`, { timeout: TIMEOUT }, async () => {
      const line = assertCleanFailure(await tessera([command, join(dir, 'garbage.dcm')]));
      assert.match(line, /offset \d+/);
      assert.match(line, /\([0-9A-F]{4},[0-9A-F]{4}\)/);
      assert.match(line, /\[ERR_CODEC_[A-Z_]+\]$/);
    });

    test(`${command}: an empty file`, { timeout: TIMEOUT }, async () => {
      const r = await tessera([command, join(dir, 'empty.dcm')]);
      const line = assertCleanFailure(r);
      assert.match(line, /empty/);
      assert.match(line, /offset 0\b/);
      assert.equal(r.stdout, '');
    });

    test(`${command}: a file that does not exist`, { timeout: TIMEOUT }, async () => {
      const missing = join(dir, 'no-such-file.dcm');
      const r = await tessera([command, missing]);
      const line = assertCleanFailure(r);
      assert.ok(line.includes(missing), line);
      assert.match(line, /ENOENT|no such file/);
      assert.equal(r.stdout, '');
    });
  }

  test('dump: an unknown --stop-before keyword', { timeout: TIMEOUT }, async () => {
    const line = assertCleanFailure(await tessera(['dump', '--stop-before', 'NoSuchKeyword', RED_TRIANGLE]));
    assert.match(line, /NoSuchKeyword/);
  });
});
