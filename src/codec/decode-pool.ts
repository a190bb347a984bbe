/**
 * Frame decoding off the event loop: a small pool of worker threads running the same decoders
 * (pixel-decode.ts, WebAssembly codecs). A JPEG 2000 or JPEG-LS frame takes milliseconds to tens of
 * milliseconds to decode; on the thread that also serves associations and HTTP requests, a
 * multi-frame decompression would stall every other client for seconds. With the pool, that thread
 * only copies the compressed frame out and the decoded pixels in (transferred, not copied again), and
 * the frames of one instance decode in parallel on several cores.
 *
 * The pool is off until `startDecodeWorkers` (the server turns it on); `decodeFrame` then routes
 * through it. Workers start on the first frame, are unref'd (they never keep a process alive) and
 * stop with `stopDecodeWorkers`. A worker that dies fails the frames it had; later frames decode on
 * the calling thread.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { CodecError } from '../core/index.ts';
import type { DecodedFrame, PixelFormat } from './pixel-decode.ts';

/** A frame to decode, as posted to a worker. */
export interface DecodeRequest {
  readonly id: number;
  readonly frame: Uint8Array;
  readonly transferSyntaxUid: string;
  readonly format: PixelFormat;
}

/** A worker's answer. */
export type DecodeReply =
  | {
      readonly id: number;
      readonly pixels: Uint8Array;
      readonly photometricInterpretation: string;
      readonly planarConfiguration: 0 | 1;
      readonly threadId: number;
    }
  | { readonly id: number; readonly error: { readonly code: string; readonly message: string } };

interface Slot {
  readonly worker: Worker;
  /** Frames posted and not answered. */
  readonly pending: Map<number, { resolve: (d: DecodedFrame) => void; reject: (e: Error) => void }>;
}

interface Pool {
  readonly size: number;
  readonly slots: Slot[];
  nextId: number;
  decoded: number;
  /** Thread ids that answered (tests check the decoding happened elsewhere). */
  readonly threads: Set<number>;
  broken: boolean;
}

let pool: Pool | undefined;

let users = 0;

/**
 * Turns the pool on for the caller: `workers` threads (default: one per core beyond the first, 1-4;
 * the first caller's number counts). Returns the release: the pool stops when every caller that
 * turned it on has released it (frames still pending then fail), and frames decode on the calling
 * thread again.
 */
export function startDecodeWorkers(workers?: number): () => Promise<void> {
  const size = workers ?? Math.max(1, Math.min(4, availableParallelism() - 1));
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`decode workers must be >= 1, not ${size}`);
  if (!pool || pool.broken)
    pool = { size, slots: [], nextId: 0, decoded: 0, threads: new Set(), broken: false };
  users++;
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    if (--users === 0) await stopDecodeWorkers();
  };
}

/** Stops the workers now, whoever turned them on (frames still pending fail). */
export async function stopDecodeWorkers(): Promise<void> {
  const p = pool;
  pool = undefined;
  users = 0;
  if (!p) return;
  await Promise.all(
    p.slots.map(async (s) => {
      for (const { reject } of s.pending.values())
        reject(new CodecError('ERR_CODEC_DECODE', 'the decode workers stopped'));
      s.pending.clear();
      await s.worker.terminate();
    }),
  );
}

/** The pool's state: whether it is on, its threads, frames decoded by them and the thread ids that did. */
export function decodeWorkerStats(): { on: boolean; workers: number; decoded: number; threadIds: number[] } {
  return {
    on: pool !== undefined && !pool.broken,
    workers: pool?.slots.length ?? 0,
    decoded: pool?.decoded ?? 0,
    threadIds: [...(pool?.threads ?? [])],
  };
}

/** Whether frames go to the workers (and their module is there: a bundle built without it decodes here). */
export function decodeWorkersOn(): boolean {
  return pool !== undefined && !pool.broken && workerModuleExists();
}

let workerModule: boolean | undefined;
function workerModuleExists(): boolean {
  workerModule ??=
    import.meta.url.endsWith('.ts') || existsSync(new URL('./decode-worker.js', import.meta.url));
  return workerModule;
}

/** Decodes one frame in a worker; the caller checks `decodeWorkersOn()` first. */
export function decodeInWorker(
  frame: Uint8Array,
  transferSyntaxUid: string,
  format: PixelFormat,
): Promise<DecodedFrame> {
  const p = pool!;
  const slot = pick(p);
  const id = ++p.nextId;
  // A copy of just the frame (the input may be a view into a whole file), handed over, not cloned.
  const own = new Uint8Array(frame);
  const request: DecodeRequest = { id, frame: own, transferSyntaxUid, format: { ...format } };
  return new Promise<DecodedFrame>((resolve, reject) => {
    slot.pending.set(id, { resolve, reject });
    slot.worker.postMessage(request, [own.buffer]);
  });
}

/** The least busy worker, starting one while the pool is not full. */
function pick(p: Pool): Slot {
  let best: Slot | undefined;
  for (const s of p.slots) if (!best || s.pending.size < best.pending.size) best = s;
  if (best && (best.pending.size === 0 || p.slots.length >= p.size)) return best;
  const slot: Slot = { worker: startWorker(), pending: new Map() };
  slot.worker.unref();
  slot.worker.on('message', (m: DecodeReply) => {
    const waiting = slot.pending.get(m.id);
    if (!waiting) return;
    slot.pending.delete(m.id);
    if ('error' in m) {
      waiting.reject(new CodecError(m.error.code as 'ERR_CODEC_DECODE', m.error.message));
      return;
    }
    p.decoded++;
    p.threads.add(m.threadId);
    waiting.resolve({
      pixels: Buffer.from(m.pixels.buffer, m.pixels.byteOffset, m.pixels.byteLength),
      photometricInterpretation: m.photometricInterpretation,
      planarConfiguration: m.planarConfiguration,
    });
  });
  const failAll = (why: string): void => {
    p.broken = true;
    for (const { reject } of slot.pending.values()) reject(new CodecError('ERR_CODEC_DECODE', why));
    slot.pending.clear();
  };
  slot.worker.on('error', (err) => failAll(`a decode worker failed: ${err.message}`));
  slot.worker.on('exit', (code) => {
    if (pool === p) failAll(`a decode worker exited (code ${code})`);
  });
  p.slots.push(slot);
  return slot;
}

/** The worker module: the bundle's own file, or the TypeScript source through tsx. */
function startWorker(): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // Workers do not inherit tsx's loader on Node 20: register it, then load the source.
    const source = new URL('./decode-worker.ts', here).href;
    const bootstrap = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
      .then(({ register }) => { register(); return import(${JSON.stringify(source)}); })`;
    return new Worker(bootstrap, { eval: true, name: 'tessera-decode' });
  }
  return new Worker(new URL('./decode-worker.js', here), { name: 'tessera-decode' });
}
