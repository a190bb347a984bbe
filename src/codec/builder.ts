import { CodecError, isBulkVR, type Tag, UndefinedLength } from '../core/index.ts';
import {
  type BulkRef,
  Dataset,
  type EncapsulatedElement,
  FRAGMENT_HEAD_BYTES,
  type Fragment,
  type SequenceElement,
} from './dataset.ts';
import type { Token } from './tokens.ts';

/** Reads `length` bytes at absolute `offset` of the source the tokens came from. */
export type BulkSource = (offset: number, length: number) => Promise<Buffer>;

export interface BuilderOptions {
  /** Bulk-capable values (OB, OW, OF, OD, OL, OV, UN) longer than this become references. */
  readonly bulkThreshold: number;
  /**
   * 'reference': large values become BulkRefs read later through `bulkSource` (or throw if none);
   * 'inline': every value is kept in memory (streamed values are gathered).
   * Values that arrive whole in one buffer are kept as zero-copy slices of it unless `reference` applies.
   */
  readonly bulk: 'reference' | 'inline';
  readonly bulkSource?: BulkSource | undefined;
  readonly littleEndian: boolean;
  /**
   * Copy the values kept in memory instead of slicing the input chunk: a stream read then does not
   * keep whole chunks alive for a few header bytes each.
   */
  readonly copyValues?: boolean;
}

interface Open {
  readonly kind: 'value' | 'fragment';
  readonly tag: Tag;
  readonly offset: number;
  readonly length: number;
  readonly chunks: Buffer[] | undefined;
  /** A fragment streamed as a reference: its first bytes, as they come. */
  head?: Buffer;
  readonly finish: (bytes: Buffer | undefined, ref: BulkRef | undefined) => void;
}

/**
 * Turns tokens into a Dataset: the one place that decides what is kept in memory and what is left as
 * a reference. Iterative (an explicit stack), so nesting depth costs no call stack.
 */
export class DatasetBuilder {
  readonly root: Dataset;
  private readonly datasets: Dataset[] = [];
  private readonly sequences: { readonly el: SequenceElement; readonly littleEndian: boolean }[] = [];
  private encapsulated: { el: EncapsulatedElement; hasOffsetTable: boolean } | undefined;
  private open: Open | undefined;

  constructor(private readonly options: BuilderOptions) {
    this.root = new Dataset({ littleEndian: options.littleEndian });
    this.datasets.push(this.root);
  }

  /** The data set elements are being added to now (the innermost open item, or the root). */
  get current(): Dataset {
    return this.datasets[this.datasets.length - 1]!;
  }

  accept(token: Token): void {
    switch (token.kind) {
      case 'element': {
        const ds = this.current;
        const { tag, vr } = token;
        if (token.value !== undefined && !this.asReference(vr, token.length)) {
          ds.set({
            kind: 'value',
            tag,
            vr,
            bytes: this.options.copyValues ? Buffer.from(token.value) : token.value,
          });
          return;
        }
        if (token.value !== undefined) {
          ds.set({ kind: 'bulk', tag, vr, bulk: this.ref(tag, token.valueOffset, token.length) });
          return;
        }
        // A value kept as a reference is complete with its header (offset and length): it is in the
        // data set at once, so a reader of the data set so far (ingest, once Pixel Data starts) sees it.
        const reference = this.options.bulk === 'reference';
        if (reference)
          ds.set({ kind: 'bulk', tag, vr, bulk: this.ref(tag, token.valueOffset, token.length) });
        this.open = {
          kind: 'value',
          tag,
          offset: token.valueOffset,
          length: token.length,
          chunks: reference ? undefined : [],
          // A reference is in place already (the same element object from its header to the end).
          finish: (bytes) => {
            if (bytes) ds.set({ kind: 'value', tag, vr, bytes });
          },
        };
        return;
      }
      case 'value-chunk': {
        const open = this.open;
        open?.chunks?.push(Buffer.from(token.bytes));
        if (open?.kind === 'fragment' && !open.chunks && (open.head?.length ?? 0) < FRAGMENT_HEAD_BYTES) {
          const want = FRAGMENT_HEAD_BYTES - (open.head?.length ?? 0);
          const more = Buffer.from(token.bytes.subarray(0, want));
          open.head = open.head ? Buffer.concat([open.head, more]) : more;
        }
        return;
      }
      case 'value-end': {
        const open = this.open!;
        this.open = undefined;
        if (open.chunks) open.finish(Buffer.concat(open.chunks), undefined);
        else open.finish(undefined, this.ref(open.tag, open.offset, open.length));
        return;
      }
      case 'sequence-start': {
        const el: SequenceElement = {
          kind: 'sequence',
          tag: token.tag,
          vr: token.vr,
          items: [],
          undefinedLength: token.length === UndefinedLength,
        };
        this.current.set(el);
        this.sequences.push({ el, littleEndian: token.littleEndian });
        return;
      }
      case 'item-start': {
        const seq = this.sequences[this.sequences.length - 1]!;
        const item = new Dataset({ littleEndian: seq.littleEndian, parent: this.current });
        item.undefinedLength = token.length === UndefinedLength;
        seq.el.items.push(item);
        this.datasets.push(item);
        return;
      }
      case 'item-end':
        this.datasets.pop();
        return;
      case 'sequence-end':
        this.sequences.pop();
        return;
      case 'fragments-start':
        this.encapsulated = {
          el: {
            kind: 'encapsulated',
            tag: token.tag,
            vr: token.vr,
            offsetTable: { length: 0 },
            fragments: [],
          },
          hasOffsetTable: false,
        };
        this.current.set(this.encapsulated.el);
        return;
      case 'fragment': {
        const state = this.encapsulated!;
        const enc = state.el;
        const add = (f: Fragment): void => {
          if (state.hasOffsetTable) enc.fragments.push(f);
          else {
            state.hasOffsetTable = true;
            state.el = { ...enc, offsetTable: f };
            this.current.set(state.el);
          }
        };
        const { valueOffset: offset, length } = token;
        if (token.value !== undefined && !this.asReference('OB', length)) {
          add({ length, offset, bytes: this.options.copyValues ? Buffer.from(token.value) : token.value });
          return;
        }
        if (token.value !== undefined) {
          const head = Buffer.from(token.value.subarray(0, FRAGMENT_HEAD_BYTES));
          add({ length, offset, bulk: this.ref(enc.tag, offset, length), head });
          return;
        }
        const open: Open = {
          kind: 'fragment',
          tag: enc.tag,
          offset,
          length,
          chunks: this.options.bulk === 'inline' ? [] : undefined,
          finish: (bytes, ref) =>
            add(
              bytes
                ? { length, offset, bytes }
                : { length, offset, bulk: ref!, ...(open.head ? { head: open.head } : {}) },
            ),
        };
        this.open = open;
        return;
      }
      case 'fragments-end':
        this.encapsulated = undefined;
        return;
      case 'stopped':
        return;
    }
  }

  private asReference(vr: Parameters<typeof isBulkVR>[0], length: number): boolean {
    return this.options.bulk === 'reference' && isBulkVR(vr) && length > this.options.bulkThreshold;
  }

  private ref(tag: Tag, offset: number, length: number): BulkRef {
    const source = this.options.bulkSource;
    return {
      offset,
      length,
      read: source
        ? () => source(offset, length)
        : () =>
            Promise.reject(
              new CodecError(
                'ERR_CODEC_BULK_UNAVAILABLE',
                'this bulk value was not kept and its source cannot be read again',
                {
                  offset,
                  tag,
                },
              ),
            ),
    };
  }
}
