import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { datasetToJson, loadBulk, type Part10, readPart10, readPart10File } from '../codec/index.ts';
import { CodecError, isDicomError, parseTag } from '../core/index.ts';
import { lookupKeyword } from '../dictionary/index.ts';
import { dumpPart10 } from './dump.ts';
import { registerMigrate } from './migrate.ts';
import { registerNetworkCommands } from './net.ts';
import { registerQrCommands } from './qr.ts';
import { registerReceive } from './receive.ts';
import { registerServe } from './serve.ts';
import { registerWebCommands } from './web.ts';

/** Files up to this size are read whole (zero-copy values); larger ones stream with bulk left on disk. */
const WHOLE_FILE_LIMIT = 64 * 1024 * 1024;

async function readDicom(path: string, stopBefore?: number): Promise<Part10> {
  const options = stopBefore === undefined ? {} : { stopBeforeTag: stopBefore };
  const { size } = await import('node:fs/promises').then((fs) => fs.stat(path));
  // The codec reads zero bytes as an empty bare data set; for a file named on the command line that is
  // an error (dcmdump too fails on it), not an empty listing with exit code 0.
  if (size === 0) throw new CodecError('ERR_CODEC_TRUNCATED', 'the file is empty', { offset: 0 });
  if (size <= WHOLE_FILE_LIMIT) return readPart10(await readFile(path), options);
  return readPart10File(path, options);
}

function tagOption(text: string): number {
  const t = parseTag(text) ?? lookupKeyword(text)?.tag;
  if (t === undefined) throw new Error(`"${text}" is neither a tag (gggg,eeee) nor a keyword`);
  return t;
}

/** One clear line for the user, never a stack trace, for errors Tessera raises on purpose. */
function fail(err: unknown): never {
  if (isDicomError(err)) {
    process.stderr.write(`tessera: error: ${err.message} [${err.code}]\n`);
  } else if (
    err instanceof Error &&
    'code' in err &&
    typeof err.code === 'string' &&
    err.code.startsWith('E')
  ) {
    process.stderr.write(`tessera: error: ${err.message}\n`);
  } else {
    process.stderr.write(`tessera: error: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  process.exit(1);
}

// `tessera dump FILE | head`: the reader closing the pipe early is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  fail(err);
});

const program = new Command()
  .name('tessera')
  .description('Tessera, a DICOM archive: codec, networking and DICOMweb tools')
  .version('0.1.0')
  .showHelpAfterError();

program
  .command('dump')
  .description('print the elements of a DICOM file, like dcmdump')
  .argument('<file>', 'DICOM Part 10 file (or a bare data set)')
  .option('--stop-before <tag>', 'stop reading at this tag or keyword (e.g. PixelData)')
  .action(async (file: string, opts: { stopBefore?: string }) => {
    try {
      const part10 = await readDicom(file, opts.stopBefore ? tagOption(opts.stopBefore) : undefined);
      process.stdout.write(`${dumpPart10(part10).join('\n')}\n`);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('json')
  .description("print the DICOM JSON (PS3.18 Annex F) of a file's data set; binary values inline")
  .argument('<file>', 'DICOM Part 10 file (or a bare data set)')
  .option('--compact', 'one line instead of indented output')
  .action(async (file: string, opts: { compact?: boolean }) => {
    try {
      const part10 = await readDicom(file);
      await loadBulk(part10.dataset);
      const json = datasetToJson(part10.dataset);
      process.stdout.write(`${JSON.stringify(json, null, opts.compact ? undefined : 2)}\n`);
    } catch (err) {
      fail(err);
    }
  });

registerNetworkCommands(program, fail);
registerReceive(program, fail);
registerQrCommands(program, fail);
registerMigrate(program, fail);
registerServe(program, fail);
registerWebCommands(program, fail);

await program.parseAsync(process.argv);
