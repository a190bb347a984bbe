/**
 * `tessera migrate --from sqlite:DIR --to postgres://... [--to-blobs s3://bucket/prefix|DIR]`: moves
 * an archive to other adapters (index records rebuilt from the stored metadata, blobs copied when the
 * blob store changes), with a progress bar; resumable by running it again.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { terminalBar } from './progress.ts';

interface MigrateFlags {
  from: string;
  to: string;
  fromBlobs?: string;
  toBlobs?: string;
  batch: string;
}

/** `sqlite:DIR` or `DIR` -> the data folder; `postgres://...` as is. */
function side(text: string): { dataDir: string; index: string } {
  if (/^postgres(ql)?:\/\//u.test(text)) return { dataDir: resolve('.tessera-migrate'), index: text };
  const dir = text.startsWith('sqlite:') ? text.slice('sqlite:'.length) : text;
  if (dir === '') throw new Error(`"${text}": expected sqlite:DIR or a postgres:// URL`);
  return { dataDir: resolve(dir), index: 'sqlite' };
}

export function registerMigrate(program: Command, fail: (err: unknown) => never): void {
  program
    .command('migrate')
    .description(
      'copy an archive to another index and/or blob store (e.g. SQLite + folder -> PostgreSQL + S3)',
    )
    .requiredOption(
      '--from <where>',
      'the source index: sqlite:DIR (the data dir of tessera serve) or postgres://...',
    )
    .requiredOption('--to <where>', 'the target index: postgres://... or sqlite:DIR')
    .option('--from-blobs <where>', 'the source blobs (default: the source data dir)')
    .option(
      '--to-blobs <where>',
      'the target blobs: s3://bucket/prefix or a folder (default: the same as the source)',
    )
    .option('--batch <n>', 'records per index transaction', '200')
    .action(async (o: MigrateFlags) => {
      try {
        const { migrateArchive, openArchive } = await import('../server/index.ts');
        const from = side(o.from);
        const to = side(o.to);
        const fromBlobs = o.fromBlobs ?? from.dataDir;
        const toBlobs = o.toBlobs ?? fromBlobs;
        const source = await openArchive({ ...from, blobs: fromBlobs });
        const target = await openArchive({ ...to, blobs: toBlobs });
        const copyBlobs = resolveBlobs(toBlobs) !== resolveBlobs(fromBlobs);
        const bar = await terminalBar('migrate [{bar}] {value}/{total} | {mb} MB copied | {failed} failed');
        const started = Date.now();
        let lastLine = 0;
        const result = await migrateArchive(source, target, {
          copyBlobs,
          batchSize: Number(o.batch),
          onProgress: (p) => {
            if (bar) {
              if (p.done === 0 || !bar.getTotal()) bar.start(p.total, p.done, { mb: 0, failed: 0 });
              bar.update(p.done, { mb: (p.bytesCopied / 1e6).toFixed(1), failed: p.failures.length });
            } else if (Date.now() - lastLine > 2000) {
              lastLine = Date.now();
              process.stderr.write(`migrate: ${p.done}/${p.total}\n`);
            }
          },
        });
        bar?.stop();
        await source.close();
        await target.close();
        for (const f of result.failures) process.stderr.write(`${f.sopInstanceUid}: ${f.reason}\n`);
        process.stdout.write(
          `migrate ${source.describe.index} -> ${target.describe.index}: ${result.migrated} migrated, ` +
            `${result.alreadyThere} already there, ${result.failures.length} failed of ${result.total}; ` +
            `${result.blobsCopied} blobs (${(result.bytesCopied / 1e6).toFixed(1)} MB) copied to ${target.describe.blobs} ` +
            `in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
        );
        if (result.failures.length > 0) process.exit(1);
      } catch (err) {
        fail(err);
      }
    });
}

function resolveBlobs(where: string): string {
  return where.startsWith('s3://') ? where.replace(/\/+$/u, '') : resolve(where);
}
