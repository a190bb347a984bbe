/**
 * A growable byte sink: writers append to it, `toBuffer()` joins the chunks once.
 * Small writes go to a scratch buffer to avoid one allocation per element.
 */
export class ByteSink {
  private readonly chunks: Buffer[] = [];
  private scratch: Buffer;
  private used = 0;
  private total = 0;

  /**
   * The scratch buffer starts small and doubles up to `scratchSize` as it fills: encoding a command
   * set or a C-FIND identifier (a few hundred bytes) must not allocate 64 KiB each time.
   */
  constructor(private readonly scratchSize = 64 * 1024) {
    this.scratch = Buffer.allocUnsafe(Math.min(256, scratchSize));
  }

  get length(): number {
    return this.total;
  }

  /** Appends bytes; large ones are kept by reference, not copied. */
  bytes(data: Uint8Array): void {
    if (data.length > 1024) {
      this.flushScratch();
      this.chunks.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length));
    } else {
      this.ensure(data.length);
      this.scratch.set(data, this.used);
      this.used += data.length;
    }
    this.total += data.length;
  }

  uint8(v: number): void {
    this.ensure(1);
    this.scratch[this.used++] = v;
    this.total += 1;
  }

  uint16(v: number, littleEndian: boolean): void {
    this.ensure(2);
    if (littleEndian) this.scratch.writeUInt16LE(v, this.used);
    else this.scratch.writeUInt16BE(v, this.used);
    this.used += 2;
    this.total += 2;
  }

  uint32(v: number, littleEndian: boolean): void {
    this.ensure(4);
    if (littleEndian) this.scratch.writeUInt32LE(v >>> 0, this.used);
    else this.scratch.writeUInt32BE(v >>> 0, this.used);
    this.used += 4;
    this.total += 4;
  }

  ascii(text: string): void {
    this.ensure(text.length);
    this.used += this.scratch.write(text, this.used, 'latin1');
    this.total += text.length;
  }

  /** Takes the bytes written so far and leaves the sink empty. */
  take(): Buffer[] {
    this.flushScratch();
    const out = this.chunks.splice(0);
    this.total = 0;
    return out;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.take());
  }

  private ensure(n: number): void {
    if (this.used + n > this.scratch.length) {
      this.flushScratch();
      const next = Math.min(this.scratch.length * 2, this.scratchSize);
      if (n > this.scratch.length || next > this.scratch.length)
        this.scratch = Buffer.allocUnsafe(Math.max(n, next));
    }
  }

  private flushScratch(): void {
    if (this.used > 0) {
      this.chunks.push(Buffer.from(this.scratch.subarray(0, this.used)));
      this.used = 0;
    }
  }
}

/** Reverses the byte order of each `wordSize`-byte word (little <-> big endian), into a new buffer. */
export function swapBytes(data: Uint8Array, wordSize: number): Buffer {
  const out = Buffer.from(data);
  if (wordSize === 2 && out.length % 2 === 0) return out.swap16();
  if (wordSize === 4 && out.length % 4 === 0) return out.swap32();
  if (wordSize === 8 && out.length % 8 === 0) return out.swap64();
  const words = Math.floor(out.length / wordSize);
  for (let w = 0; w < words; w++) {
    const base = w * wordSize;
    for (let i = 0; i < wordSize / 2; i++) {
      const a = out[base + i]!;
      out[base + i] = out[base + wordSize - 1 - i]!;
      out[base + wordSize - 1 - i] = a;
    }
  }
  return out;
}
