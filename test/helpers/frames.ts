/** Corpus files and their compressed frames, as the pixel decoding tests take them. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type Dataset, frameFragments, type PixelFormat, readPart10 } from '../../src/codec/index.ts';
import { PixelDataTag } from '../../src/core/index.ts';

const corpus = new URL('../../../shared/data/dicom/', import.meta.url);

/** A corpus file (path relative to ../shared/data/dicom): its data set and transfer syntax. */
export function readCorpus(rel: string): { ds: Dataset; ts: string } {
  const p = readPart10(readFileSync(new URL(rel, corpus)));
  return { ds: p.dataset, ts: p.transferSyntax.uid };
}

/** The pixel attributes decodeFrame needs, from the data set. */
export function formatOf(ds: Dataset): PixelFormat {
  const planar = ds.number(0x00280006);
  return {
    rows: ds.number(0x00280010)!,
    columns: ds.number(0x00280011)!,
    samplesPerPixel: ds.number(0x00280002) ?? 1,
    bitsAllocated: ds.number(0x00280100)!,
    bitsStored: ds.number(0x00280101)!,
    pixelRepresentation: ds.number(0x00280103) ?? 0,
    photometricInterpretation: ds.string(0x00280004)!,
    ...(planar === undefined ? {} : { planarConfiguration: planar }),
  };
}

/** Each frame's fragments concatenated, as decodeFrame takes them. */
export function framesOf(ds: Dataset): Buffer[] {
  const el = ds.get(PixelDataTag);
  assert.equal(el?.kind, 'encapsulated');
  if (el?.kind !== 'encapsulated') return [];
  return frameFragments(ds, el).map((ix) => Buffer.concat(ix.map((i) => el.fragments[i]!.bytes!)));
}
