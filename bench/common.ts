/** Helpers shared by the benchmarks' data generators (deterministic, so data sets can be reused). */
import { createHash } from 'node:crypto';

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
