/**
 * A real PostgreSQL server for tests (src/archive/*postgres*.test.ts): a throwaway cluster in a temp
 * folder, started on a free port of 127.0.0.1, stopped and removed by `stop()`.
 *
 * The tests run as root here and PostgreSQL refuses to run as root, so the cluster is created and
 * started as the `postgres` system user (`runuser`); when the tests already run as another user,
 * the binaries run as that user. Trust authentication, fsync off (nothing here needs durability).
 * PostgreSQL must be installed (Debian's `postgresql` package; .ci/run installs it): the tests never
 * skip, they fail with a message saying what is missing. Only async child processes are used.
 *
 *   const pg = await startPostgres();
 *   const url = await pg.createDatabase();   // a fresh database per test file / suite
 *   ...
 *   await pg.stop();
 */
import { execFile } from 'node:child_process';
import { chown, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface TestPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`: the maintenance database. */
  readonly url: string;
  readonly port: number;
  /** The server's major version, e.g. 15. */
  readonly version: number;
  /** Creates an empty database and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server (immediate shutdown) and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

/** The newest `/usr/lib/postgresql/<major>/bin` that has initdb and pg_ctl. */
async function findBinaries(): Promise<{ bin: string; version: number }> {
  const root = process.env.TESSERA_PG_ROOT ?? '/usr/lib/postgresql';
  let versions: number[] = [];
  try {
    versions = (await readdir(root))
      .map(Number)
      .filter((v) => Number.isInteger(v) && v >= 14)
      .sort((a, b) => b - a);
  } catch {
    // reported below
  }
  for (const version of versions) {
    const bin = join(root, String(version), 'bin');
    const names = await readdir(bin).catch(() => [] as string[]);
    if (names.includes('initdb') && names.includes('pg_ctl')) return { bin, version };
  }
  throw new Error(
    `PostgreSQL 14 or newer is not installed (no ${root}/<version>/bin/initdb): install the Debian ` +
      "package 'postgresql' (the CI script .ci/run does) to run the PostgreSQL index tests",
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/** Runs a PostgreSQL binary, as the postgres user when we are root. */
async function runAs(asPostgres: boolean, file: string, args: readonly string[]): Promise<void> {
  const [cmd, argv] = asPostgres ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, [...args]];
  try {
    await run(cmd, argv, { timeout: 120_000, env: { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' } });
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, {
      cause: err,
    });
  }
}

/** Starts a fresh cluster. A failure to start includes the server log in the error. */
export async function startPostgres(): Promise<TestPostgres> {
  const { bin, version } = await findBinaries();
  const asPostgres = process.getuid?.() === 0;
  const dir = await mkdtemp(join(tmpdir(), 'tessera-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'log');
  if (asPostgres) {
    const { stdout } = await run('id', ['-u', 'postgres']).catch(() => {
      throw new Error("running as root, but there is no 'postgres' user to run PostgreSQL as");
    });
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  let started = false;
  const stop = async (): Promise<void> => {
    if (started) {
      started = false;
      await runAs(asPostgres, join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(
        () => undefined,
      );
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await runAs(asPostgres, join(bin, 'initdb'), [
      '-D',
      data,
      '-A',
      'trust',
      '-U',
      'postgres',
      '-E',
      'UTF8',
      '--locale=C.UTF-8',
      '--no-sync',
    ]);
    let port = 0;
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      try {
        await runAs(asPostgres, join(bin, 'pg_ctl'), [
          '-D',
          data,
          '-l',
          log,
          '-w',
          '-t',
          '60',
          '-o',
          `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off ` +
            '-c full_page_writes=off -c max_connections=200',
          'start',
        ]);
        started = true;
        break;
      } catch (err) {
        // The port may have been taken between freePort and the start: try another one.
        if (attempt >= 2) throw err;
      }
    }
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    let databases = 0;
    return {
      url,
      port,
      version,
      async createDatabase(name = `tessera_${process.pid}_${++databases}`) {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(
            `CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE template0 ENCODING 'UTF8'`,
          );
        } finally {
          await client.end();
        }
        return `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(name)}`;
      },
      stop,
    };
  } catch (err) {
    const text = await readFile(log, 'utf8').catch(() => '');
    await stop();
    throw new Error(`could not start PostgreSQL ${version}: ${(err as Error).message}\n${text}`, {
      cause: err,
    });
  }
}
