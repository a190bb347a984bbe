/**
 * Reading stored instances back out (the one retrieve path of C-MOVE, C-GET and WADO-RS): a blob is
 * the Part 10 file Tessera wrote at ingest (its File Meta, then the data set bytes exactly as
 * received), so sending an instance in its stored transfer syntax is a ranged read of the data set
 * part, streamed, never parsed. Another native syntax is a decode and re-encode (lossless); a
 * compressed instance can be decompressed to a native syntax where the codec decodes its syntax
 * (never compressed to another compressed syntax: there are no encoders).
 */
import { Readable } from 'node:stream';
import {
  canDecode,
  decompressDataset,
  encodeDataset,
  isNativeTransferSyntax,
  readPart10,
} from '../codec/index.ts';
import { DicomError } from '../core/index.ts';
import type { BlobStore, Index } from './ports.ts';

/** Bytes of a data set to send: in memory (small instances), or a known length and chunks read on demand. */
export type InstanceBytes = Buffer | { readonly length: number; readonly chunks: AsyncIterable<Buffer> };

/** Instances up to this size are read whole with one read (fewer file operations than a stream). */
export const WHOLE_READ_LIMIT = 16 * 1024 * 1024;

const PREAMBLE_AND_MAGIC = 132;
/** (0002,0000) UL in Explicit VR Little Endian: tag 4, VR 2, length 2, value 4. */
const GROUP_LENGTH_ELEMENT = 12;

/**
 * Where the data set starts in a blob: after the File Meta, whose length its File Meta Information
 * Group Length (0002,0000) gives (Tessera always writes it first, PS3.10 §7.1).
 */
export async function datasetOffset(blobs: BlobStore, blobKey: string): Promise<number> {
  return offsetIn(await blobs.readBytes(blobKey, 0, PREAMBLE_AND_MAGIC + GROUP_LENGTH_ELEMENT), blobKey);
}

function offsetIn(head: Buffer, blobKey: string): number {
  if (
    head.length < PREAMBLE_AND_MAGIC + GROUP_LENGTH_ELEMENT ||
    head.toString('latin1', 128, 132) !== 'DICM' ||
    head.readUInt16LE(132) !== 0x0002 ||
    head.readUInt16LE(134) !== 0x0000 ||
    head.toString('latin1', 136, 138) !== 'UL'
  ) {
    throw new DicomError(
      'ERR_ARCHIVE_BLOB_CORRUPT',
      `blob ${blobKey} does not start with a File Meta Information Group Length`,
    );
  }
  return PREAMBLE_AND_MAGIC + GROUP_LENGTH_ELEMENT + head.readUInt32LE(140);
}

/**
 * The data set bytes of a stored instance as received (its stored transfer syntax): read whole when
 * small, else streamed.
 */
export async function storedDataset(
  blobs: BlobStore,
  blobKey: string,
  knownSize?: number,
): Promise<InstanceBytes> {
  const size = knownSize ?? (await blobs.size(blobKey));
  if (size === undefined)
    throw new DicomError('ERR_ARCHIVE_BLOB_NOT_FOUND', `blob ${blobKey} is missing from the blob store`);
  if (size <= WHOLE_READ_LIMIT) {
    const file = await blobs.readBytes(blobKey, 0, size);
    return file.subarray(offsetIn(file, blobKey));
  }
  const start = await datasetOffset(blobs, blobKey);
  return {
    length: size - start,
    chunks: {
      [Symbol.asyncIterator]: () =>
        Readable.from(blobs.read(blobKey, { start, end: size }))[Symbol.asyncIterator](),
    },
  };
}

/**
 * The data set of a stored instance in `transferSyntaxUid`: as stored when it is the stored syntax,
 * else re-encoded when both are native (lossless: Implicit/Explicit VR, Little/Big Endian, Deflated),
 * or decompressed (every frame, in memory) into a native `transferSyntaxUid`.
 * Throws ERR_ARCHIVE_TRANSCODE_UNSUPPORTED otherwise.
 */
export async function datasetIn(
  blobs: BlobStore,
  item: { readonly blobKey: string; readonly transferSyntaxUid: string; readonly size?: number },
  transferSyntaxUid: string,
): Promise<InstanceBytes> {
  if (transferSyntaxUid === item.transferSyntaxUid) return storedDataset(blobs, item.blobKey, item.size);
  if (!canConvert(item.transferSyntaxUid, transferSyntaxUid)) {
    throw new DicomError(
      'ERR_ARCHIVE_TRANSCODE_UNSUPPORTED',
      `cannot convert from ${item.transferSyntaxUid} to ${transferSyntaxUid} (no codec for compressed pixel data)`,
    );
  }
  const size = await blobs.size(item.blobKey);
  if (size === undefined)
    throw new DicomError('ERR_ARCHIVE_BLOB_NOT_FOUND', `blob ${item.blobKey} is missing from the blob store`);
  const file = readPart10(await blobs.readBytes(item.blobKey, 0, size));
  const dataset = isNativeTransferSyntax(item.transferSyntaxUid)
    ? file.dataset
    : await decompressDataset(file.dataset, item.transferSyntaxUid);
  const bytes = encodeDataset(dataset, transferSyntaxUid);
  return {
    length: bytes.length,
    chunks: {
      async *[Symbol.asyncIterator]() {
        yield bytes;
      },
    },
  };
}

/**
 * Whether an instance stored in `from` can be sent in `to`: as stored, between native syntaxes
 * (lossless re-encoding), or decompressed to a native syntax when the codec decodes `from`.
 */
export function canConvert(from: string, to: string): boolean {
  if (from === to) return true;
  if (!isNativeTransferSyntax(to)) return false;
  return isNativeTransferSyntax(from) || canDecode(from);
}

/**
 * Deletes the selected instances (DELETE of WADO-RS paths): for each, the index row goes first (the
 * counts of its series, study and patient updated, emptied parents removed, in one transaction),
 * then its blob. A crash in between leaves a blob no row points at, never a row without its blob;
 * such orphans are what `SqliteIndex.verify` and the blob store's listing can find. Returns how many
 * instances were deleted.
 */
export async function deleteInstances(
  index: Index,
  blobs: BlobStore,
  items: AsyncIterable<{ readonly sopInstanceUid: string }>,
): Promise<number> {
  let deleted = 0;
  for await (const item of items) {
    const removed = await index.deleteInstance(item.sopInstanceUid);
    if (!removed) continue;
    deleted++;
    await blobs.delete(removed.blobKey);
  }
  return deleted;
}
