import { formatTag, type Tag } from './tag.ts';

/**
 * Base class of every error Tessera throws on purpose. `code` is stable (`ERR_<AREA>_<WHAT>`) and
 * listed in docs/errors.md; match on it, not on the message.
 */
export class DicomError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DicomError';
    this.code = code;
  }
}

/** A Part 10 or data set encoding problem, with where it happened: the byte offset and the tag. */
export class CodecError extends DicomError {
  /** Byte offset in the input (in the inflated stream for deflated data sets). */
  readonly offset: number | undefined;
  readonly tag: Tag | undefined;

  constructor(
    code: string,
    message: string,
    where: { offset?: number | undefined; tag?: Tag | undefined } = {},
    options?: { cause?: unknown },
  ) {
    const at = [
      where.offset === undefined ? '' : `at offset ${where.offset}`,
      where.tag === undefined ? '' : `in ${formatTag(where.tag)}`,
    ]
      .filter(Boolean)
      .join(' ');
    super(code, at ? `${message} (${at})` : message, options);
    this.name = 'CodecError';
    this.offset = where.offset;
    this.tag = where.tag;
  }
}

/** Type guard that survives duplicate copies of the package (undici's habit): checks the code, not the class. */
export function isDicomError(err: unknown): err is DicomError {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'string' &&
    'code' in err &&
    (err as { code: string }).code.startsWith('ERR_')
  );
}
