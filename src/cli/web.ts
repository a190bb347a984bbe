/**
 * `tessera web ...`: a DICOMweb client on the command line (the operations of the Azure DICOM
 * service tutorial): store files with STOW-RS, retrieve a study/series/instance into a folder,
 * metadata and QIDO queries as JSON, frames into files, delete.
 */
import { openAsBlob } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { DicomWebClient, DicomWebError, type QueryLevel } from '../client/index.ts';
import { readPart10File } from '../codec/index.ts';
import { DicomError } from '../core/index.ts';
import { describeFiles, listFiles, type StoreItem } from '../dimse/index.ts';
import { terminalBar } from './progress.ts';

interface WebOptions {
  url: string;
  token?: string;
}

function webOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--url <base>', 'DICOMweb service root, e.g. http://localhost:8042/dicom-web')
    .option('--token <token>', 'bearer token (default: $TESSERA_WEB_TOKEN)');
}

function clientFor(o: WebOptions): DicomWebClient {
  const token = o.token ?? process.env.TESSERA_WEB_TOKEN;
  return new DicomWebClient({ baseUrl: o.url, ...(token ? { token } : {}) });
}

/** A SOP Instance UID used as a file name: digits and dots only, so it can never name another path. */
function safeUid(uid: string | undefined): string {
  if (uid === undefined || !/^[0-9]+(\.[0-9]+)*$/.test(uid) || uid.length > 64) {
    throw new DicomError(
      'ERR_DICOMWEB_BAD_UID',
      `SOP Instance UID "${String(uid).slice(0, 80)}" is not a UID (digits and dots)`,
    );
  }
  return uid;
}

/** PS3.18 I.2.2 Failure Reason values, for the summary. */
const FAILURE_REASONS: Readonly<Record<number, string>> = {
  272: 'processing failure',
  290: 'SOP Class not supported',
  292: 'not authorized',
  42752: 'out of resources',
  43264: 'data set does not match SOP Class',
  49152: 'cannot understand',
  49442: 'transfer syntax not supported',
};

const reason = (n: number) =>
  `${n.toString(16).toUpperCase().padStart(4, '0')}H${FAILURE_REASONS[n] ? ` (${FAILURE_REASONS[n]})` : ''}`;

function printJson(value: unknown, compact: boolean | undefined): void {
  process.stdout.write(`${JSON.stringify(value, null, compact ? undefined : 2)}\n`);
}

/** Groups items into STOW-RS requests of at most `count` files and `bytes` bytes (at least one file each). */
function batches(items: readonly { item: StoreItem; size: number }[], count: number, bytes: number) {
  const out: { item: StoreItem; size: number }[][] = [];
  let current: { item: StoreItem; size: number }[] = [];
  let size = 0;
  for (const entry of items) {
    if (current.length > 0 && (current.length >= count || size + entry.size > bytes)) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(entry);
    size += entry.size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

export function registerWebCommands(program: Command, fail: (err: unknown) => never): void {
  const web = program
    .command('web')
    .description('DICOMweb client: STOW-RS, WADO-RS, QIDO-RS and DELETE against a DICOMweb server');

  webOptions(
    web
      .command('store')
      .description('store DICOM files (or folders, recursively) with STOW-RS')
      .argument('<paths...>'),
  )
    .option('--study <uid>', 'POST to /studies/{uid}: the server refuses instances of other studies')
    .option('--batch <n>', 'files per STOW-RS request', '16')
    .action(async (paths: string[], o: WebOptions & { study?: string; batch: string }) => {
      try {
        const client = clientFor(o);
        const perRequest = Number(o.batch);
        if (!Number.isInteger(perRequest) || perRequest < 1)
          throw new Error(`--batch "${o.batch}" is not an integer >= 1`);
        const { items, skipped } = await describeFiles(await listFiles(paths));
        for (const s of skipped) process.stderr.write(`${s.path}: skipped, ${s.reason}\n`);
        const blobs = new Map<string, Blob>();
        const sized: { item: StoreItem; size: number }[] = [];
        for (const item of items) {
          const blob = await openAsBlob(item.path); // file-backed: fetch streams it
          blobs.set(item.path, blob);
          sized.push({ item, size: blob.size });
        }
        const totalBytes = sized.reduce((n, s) => n + s.size, 0);
        const bar = await terminalBar(
          'STOW-RS [{bar}] {value}/{total} | {rate} inst/s | {mbps} MB/s | {failed} failed',
        );
        const started = Date.now();
        let done = 0;
        let bytes = 0;
        let stored = 0;
        let warnings = 0;
        const failures: string[] = [];
        bar?.start(items.length, 0, { rate: '0', mbps: '0', failed: 0 });
        for (const batch of batches(sized, perRequest, 256 * 1024 * 1024)) {
          const byUid = new Map(batch.map((b) => [b.item.sopInstanceUid, b.item]));
          try {
            const result = await client.store(
              batch.map((b) => blobs.get(b.item.path)!),
              { studyInstanceUid: o.study },
            );
            for (const r of result.referenced) {
              if (!byUid.delete(r.sopInstanceUid)) continue;
              stored++;
              if (r.warningReason !== undefined) warnings++;
            }
            for (const f of result.failed) {
              const item = f.sopInstanceUid === undefined ? undefined : byUid.get(f.sopInstanceUid);
              if (item) byUid.delete(item.sopInstanceUid);
              failures.push(
                `${item?.path ?? f.sopInstanceUid ?? '(unidentified instance)'}: failed, reason ${reason(f.failureReason)}`,
              );
            }
            for (const item of byUid.values())
              failures.push(`${item.path}: not in the STOW-RS response (HTTP ${result.status})`);
          } catch (err) {
            if (!(err instanceof DicomWebError)) throw err;
            for (const b of batch) failures.push(`${b.item.path}: ${err.message}`);
          }
          done += batch.length;
          bytes += batch.reduce((n, b) => n + b.size, 0);
          const s = (Date.now() - started) / 1000 || 0.001;
          bar?.update(done, {
            rate: (done / s).toFixed(1),
            mbps: (bytes / 1e6 / s).toFixed(1),
            failed: failures.length,
          });
        }
        bar?.stop();
        const seconds = (Date.now() - started) / 1000 || 0.001;
        for (const line of failures) process.stderr.write(`${line}\n`);
        process.stdout.write(
          `STOW-RS ${o.url}: ${stored} of ${items.length} stored (${warnings} with warnings, ${failures.length} failed, ${skipped.length} not DICOM) ` +
            `in ${seconds.toFixed(2)} s: ${(items.length / seconds).toFixed(1)} inst/s, ${(totalBytes / 1e6 / seconds).toFixed(1)} MB/s\n`,
        );
        if (failures.length > 0) process.exit(1);
      } catch (err) {
        fail(err);
      }
    });

  webOptions(
    web
      .command('retrieve')
      .description(
        'retrieve a study, series or instance (WADO-RS) into a folder, one file per SOP Instance UID',
      )
      .argument('<study>')
      .argument('[series]')
      .argument('[instance]'),
  )
    .requiredOption('--out <dir>', 'folder to write <SOPInstanceUID>.dcm files into')
    .option('--transfer-syntax <uid>', 'transfer syntax to ask for (default *: as stored)')
    .action(
      async (
        study: string,
        series: string | undefined,
        instance: string | undefined,
        o: WebOptions & { out: string; transferSyntax?: string },
      ) => {
        try {
          const client = clientFor(o);
          await mkdir(o.out, { recursive: true });
          let n = 0;
          let bytes = 0;
          const started = Date.now();
          for await (const part of client.retrieveParts(
            { study, series, instance },
            { transferSyntax: o.transferSyntax },
          )) {
            // Streamed to a temporary file, named once its header says which instance it is.
            const tmp = join(o.out, `.tessera-${process.pid}-${n}.part`);
            const fh = await open(tmp, 'w');
            try {
              for await (const chunk of part.body) {
                await fh.write(chunk);
                bytes += chunk.length;
              }
              await fh.close();
              const head = await readPart10File(tmp, { stopBeforeTag: 0x00080019 });
              const uid = safeUid(head.dataset.string(0x00080018) ?? head.meta.string(0x00020003));
              const path = join(o.out, `${uid}.dcm`);
              await rename(tmp, path);
              process.stdout.write(`${path}\n`);
              n++;
            } catch (err) {
              await fh.close().catch(() => undefined);
              await rm(tmp, { force: true });
              throw err;
            }
          }
          const seconds = (Date.now() - started) / 1000 || 0.001;
          process.stderr.write(
            `WADO-RS ${o.url}: ${n} instances written to ${o.out} in ${seconds.toFixed(2)} s (${(bytes / 1e6 / seconds).toFixed(1)} MB/s)\n`,
          );
        } catch (err) {
          fail(err);
        }
      },
    );

  webOptions(
    web
      .command('metadata')
      .description('print the metadata (DICOM JSON) of a study, series or instance')
      .argument('<study>')
      .argument('[series]')
      .argument('[instance]'),
  )
    .option('--compact', 'one line instead of indented output')
    .action(
      async (
        study: string,
        series: string | undefined,
        instance: string | undefined,
        o: WebOptions & { compact?: boolean },
      ) => {
        try {
          printJson(await clientFor(o).retrieveMetadata(study, series, instance), o.compact);
        } catch (err) {
          fail(err);
        }
      },
    );

  webOptions(
    web
      .command('frames')
      .description('retrieve frames of an instance into files <SOPInstanceUID>.<frame>.<ext>')
      .argument('<study>')
      .argument('<series>')
      .argument('<instance>')
      .argument('<frames>', 'frame numbers from 1, comma-separated (e.g. 1,2,5)'),
  )
    .requiredOption('--out <dir>', 'folder to write the frames into')
    .option('--transfer-syntax <uid>', 'transfer syntax to ask for (default *: as stored)')
    .option('--media-type <type>', 'media type of the frames', 'application/octet-stream')
    .action(
      async (
        study: string,
        series: string,
        instance: string,
        list: string,
        o: WebOptions & { out: string; transferSyntax?: string; mediaType: string },
      ) => {
        try {
          const numbers = list.split(',').map((f) => f.trim());
          if (numbers.some((f) => !/^[1-9][0-9]*$/.test(f)))
            throw new Error(`"${list}" is not a list of frame numbers from 1`);
          const frames = await clientFor(o).retrieveFrames(study, series, instance, numbers.map(Number), {
            transferSyntax: o.transferSyntax,
            mediaType: o.mediaType,
          });
          if (frames.length !== numbers.length) {
            throw new Error(`asked for ${numbers.length} frames, the server sent ${frames.length}`);
          }
          const ext =
            { 'image/jpeg': 'jpg', 'image/jls': 'jls', 'image/jp2': 'jp2', 'image/jpx': 'jpx' }[
              o.mediaType
            ] ?? 'raw';
          await mkdir(o.out, { recursive: true });
          for (const [i, frame] of frames.entries()) {
            const path = join(o.out, `${safeUid(instance)}.${numbers[i]}.${ext}`);
            const fh = await open(path, 'w');
            await fh.write(frame);
            await fh.close();
            process.stdout.write(`${path} (${frame.length} bytes)\n`);
          }
        } catch (err) {
          fail(err);
        }
      },
    );

  webOptions(
    web
      .command('query')
      .description('search (QIDO-RS) for studies, series or instances; prints the matches as DICOM JSON')
      .argument('<level>', 'studies, series or instances')
      .argument('[keys...]', 'matching keys: Keyword=value or ggggeeee=value (e.g. PatientName=Doe*)'),
  )
    .option('--study <uid>', 'search within a study')
    .option('--series <uid>', 'search within a series (with --study)')
    .option(
      '--includefield <attr>',
      'return this attribute too (repeatable; "all" for all)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--limit <n>', 'at most n matches')
    .option('--offset <n>', 'skip the first n matches')
    .option('--fuzzy', 'fuzzymatching=true')
    .option('--compact', 'one line instead of indented output')
    .action(
      async (
        level: string,
        keys: string[],
        o: WebOptions & {
          study?: string;
          series?: string;
          includefield: string[];
          limit?: string;
          offset?: string;
          fuzzy?: boolean;
          compact?: boolean;
        },
      ) => {
        try {
          if (level !== 'studies' && level !== 'series' && level !== 'instances') {
            throw new Error(`"${level}" is not studies, series or instances`);
          }
          const params = new URLSearchParams();
          for (const key of keys) {
            const eq = key.indexOf('=');
            if (eq <= 0) throw new Error(`"${key}" is not Keyword=value`);
            params.append(key.slice(0, eq), key.slice(eq + 1));
          }
          for (const f of o.includefield) params.append('includefield', f);
          if (o.limit !== undefined) params.set('limit', o.limit);
          if (o.offset !== undefined) params.set('offset', o.offset);
          if (o.fuzzy) params.set('fuzzymatching', 'true');
          const result = await clientFor(o).query(level as QueryLevel, params, {
            study: o.study,
            series: o.series,
          });
          for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
          printJson(result.matches, o.compact);
        } catch (err) {
          fail(err);
        }
      },
    );

  webOptions(
    web
      .command('delete')
      .description('delete a study, series or instance (DELETE; not every server has it)')
      .argument('<study>')
      .argument('[series]')
      .argument('[instance]'),
  ).action(async (study: string, series: string | undefined, instance: string | undefined, o: WebOptions) => {
    try {
      const client = clientFor(o);
      if (instance !== undefined && series !== undefined)
        await client.deleteInstance(study, series, instance);
      else if (series !== undefined) await client.deleteSeries(study, series);
      else await client.deleteStudy(study);
      process.stdout.write(`deleted ${[study, series, instance].filter(Boolean).join(' / ')}\n`);
    } catch (err) {
      fail(err);
    }
  });
}
