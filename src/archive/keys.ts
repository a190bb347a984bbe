/**
 * Blob keys and matching keys of the archive.
 *
 * An instance's blob key is `ab/<sha256 hex of the SOP Instance UID>` (the first byte of the hash
 * fans the files out over 256 folders: enough to keep folders small for millions of instances, and
 * few enough that a fresh archive stops creating folders, each an extra fsync, after a few hundred
 * instances), optionally followed by `.<first 16 hex digits of the
 * sha256 of the stored bytes>`. A UID or any client string never becomes a path: only its hash does
 * (issue 4).
 *
 * The content suffix is what ingest uses: a second copy with other bytes gets another key, so
 * publishing it (before the index commit decides its fate) never replaces the bytes the index
 * points at, and two concurrent copies of one UID never race on one file; a copy with the same
 * bytes gets the same key, and the rename replaces the file with identical bytes.
 */
import { createHash } from 'node:crypto';
import { DicomError, isValidUid } from '../core/index.ts';

/** `ab/<64 hex>` with an optional `.<16 hex>` content suffix. */
export const BLOB_KEY_PATTERN = /^([0-9a-f]{2})\/\1[0-9a-f]{62}(\.[0-9a-f]{16})?$/;

/**
 * The blob key of an instance: `ab/<sha256 hex of the UID>`, or with `checksum` (the sha256 hex
 * of the bytes) `<that>.<checksum's first 16 hex digits>`. Throws `ERR_ARCHIVE_BAD_UID` when the
 * UID is not valid (PS3.5 §9.1), `ERR_ARCHIVE_BAD_KEY` when the checksum is not sha256 hex.
 */
export function blobKeyFor(sopInstanceUid: string, checksum?: string): string {
  if (!isValidUid(sopInstanceUid)) {
    throw new DicomError(
      'ERR_ARCHIVE_BAD_UID',
      `not a valid UID (PS3.5 §9.1: digits and dots, at most 64 characters): ${JSON.stringify(sopInstanceUid.slice(0, 80))}`,
    );
  }
  const hash = createHash('sha256').update(sopInstanceUid, 'latin1').digest('hex');
  const base = `${hash.slice(0, 2)}/${hash}`;
  if (checksum === undefined) return base;
  if (!/^[0-9a-f]{64}$/.test(checksum)) {
    throw new DicomError(
      'ERR_ARCHIVE_BAD_KEY',
      'a blob key checksum must be sha256 hex (64 lower-case digits)',
    );
  }
  return `${base}.${checksum.slice(0, 16)}`;
}

/** Whether `key` has the shape of an instance blob key (any UID). */
export function isInstanceBlobKey(key: string): boolean {
  return BLOB_KEY_PATTERN.test(key);
}

/**
 * The normalized form of a PN value for case-insensitive matching (stored in the `*_norm` columns;
 * the query engine applies the same function to the query value): Unicode NFKC, upper case,
 * and trailing empty components (`^`) and groups (`=`) removed in each group, e.g.
 * `Doe^John^^^` -> `DOE^JOHN`. PS3.4 §C.2.2.2.1 leaves case-insensitive PN matching to the
 * implementation; this is the rule we document in the conformance statement.
 */
export function normalizePersonName(name: string): string {
  return name
    .normalize('NFKC')
    .toUpperCase()
    .split('\\')
    .map((value) =>
      value
        .split('=')
        .map((group) => group.trim().replace(/[\s^]+$/u, ''))
        .join('=')
        .replace(/=+$/u, ''),
    )
    .join('\\');
}
