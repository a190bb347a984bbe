/** Helpers shared by the benchmarks' data generators (deterministic, so data sets can be reused). */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { performance } from 'node:perf_hooks';

/** A deterministic 2.25 UID (PS3.5 §B.2) for a kind of entity and its index, within a namespace. */
export function uidIn(namespace: string, kind: string, n: number): string {
  const h = createHash('sha256').update(`${namespace}:${kind}:${n}`).digest();
  return `2.25.${BigInt(`0x${h.subarray(0, 16).toString('hex')}`).toString()}`;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same files on every machine. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A DA value `addDays` after `base`. */
export function isoDate(base: Date, addDays: number): string {
  const d = new Date(base.getTime() + addDays * 86_400_000);
  return d.toISOString().slice(0, 10).replaceAll('-', '');
}

// ---------------------------------------------------------------------------------------------------
// Statistics, ports, /proc and child processes, for the benchmarks that start servers (no side effects
// at import: a benchmark installs its own exit and signal handlers around `Children.killAll`).

/** The median (the mean of the two middle values for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  if (s.length === 0) return Number.NaN;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The p-th percentile (0 < p <= 100) by the nearest-rank method; NaN for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
}

/** Resolves with the promise's value, or 'timeout' after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A free TCP port on `host` (bound to port 0, then released), other than those in `avoid`. */
export async function freePort(host = '127.0.0.1', avoid: readonly number[] = []): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const address = srv.address();
        const p = typeof address === 'object' && address ? address.port : 0;
        srv.close(() => (p ? resolve(p) : reject(new Error('no port'))));
      });
    });
    if (!avoid.includes(port)) return port;
  }
}

/** Whether a TCP connection to host:port opens within a second. */
export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** A field of /proc/<pid>/status in KiB (VmHWM: peak RSS; VmRSS: current RSS), if readable. */
export function procStatusKiB(pid: number | 'self', field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

let clockTicks: number | undefined;

/** CPU seconds of a process from /proc/<pid>/stat: its own (utime+stime) and its waited-for children's. */
export function procCpuSeconds(pid: number | 'self'): { own: number; children: number } | undefined {
  if (clockTicks === undefined) {
    const n = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 3, so utime (field 14) is at index 11.
    const t = (k: number): number => Number(f[k - 3]);
    return { own: (t(14) + t(15)) / clockTicks, children: (t(16) + t(17)) / clockTicks };
  } catch {
    return undefined;
  }
}

/** A child process started by `Children.launch`. */
export interface Proc {
  readonly child: ChildProcess;
  /** -1 when the spawn failed. */
  readonly pid: number;
  /** Whether it leads its own process group (spawned detached): signals go to the whole group. */
  readonly group: boolean;
  /** The exit code, or the signal name, or 'error: ...' when it could not be spawned. */
  readonly exited: Promise<number | string>;
  /** Resolves after the exit, once stdout and stderr are closed. */
  readonly closed: Promise<void>;
  /** The last 64 KiB of its stdout and stderr. */
  output(): string;
}

/** The children of a benchmark, so that an error or a signal never leaves one behind. */
export class Children {
  private readonly live = new Set<ChildProcess>();

  constructor(private readonly options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv }) {}

  launch(command: string, argv: readonly string[], options: { group: boolean }): Proc {
    const child = spawn(command, argv, {
      cwd: this.options.cwd,
      env: this.options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.group,
    });
    this.live.add(child);
    let out = '';
    const keep = (d: Buffer): void => {
      out += d.toString('utf8');
      if (out.length > 64 * 1024) out = out.slice(-64 * 1024);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, sig) => {
        this.live.delete(child);
        resolve(code ?? sig ?? 'unknown');
      });
      child.once('error', (err) => {
        this.live.delete(child);
        out += `\nspawn error: ${err.message}`;
        resolve(`error: ${err.message}`);
      });
    });
    const closed = new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      child.once('error', () => resolve());
    });
    return { child, pid: child.pid ?? -1, group: options.group, exited, closed, output: () => out };
  }

  signal(p: Proc, sig: NodeJS.Signals): void {
    if (p.pid <= 0) return;
    try {
      process.kill(p.group ? -p.pid : p.pid, sig);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM, then SIGKILL (to the group) if it lingers for `graceMs`. */
  async stop(p: Proc, graceMs = 15_000): Promise<void> {
    if (p.pid <= 0) return;
    this.signal(p, 'SIGTERM');
    if ((await withTimeout(p.exited, graceMs)) === 'timeout') {
      this.signal(p, 'SIGKILL');
      await withTimeout(p.exited, 5000);
    }
    if (p.group) this.signal(p, 'SIGKILL');
  }

  /** SIGKILL to every child still running (to its group when it leads one), synchronously. */
  killAll(): void {
    for (const child of this.live) {
      if (child.pid === undefined) continue;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        try {
          child.kill('SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    this.live.clear();
  }
}

/** Waits (bounded) until a server child accepts TCP connections on host:port; throws if it exits first. */
export async function waitForPort(
  host: string,
  port: number,
  server: Proc,
  what: string,
  ms: number,
): Promise<void> {
  const deadline = performance.now() + ms;
  let exited: number | string | undefined;
  void server.exited.then((code) => {
    exited = code;
  });
  while (performance.now() < deadline) {
    if (exited !== undefined)
      throw new Error(`${what} exited (${exited}) before listening:\n${server.output()}`);
    if (await canConnect(host, port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not listening on ${host}:${port} after ${ms} ms:\n${server.output()}`);
}
