import { uidName } from '../dictionary/index.ts';

/**
 * Transfer syntaxes as the codec sees them: how elements are encoded (explicit or implicit VR, byte
 * order), whether the data set is deflated, and whether Pixel Data is encapsulated (PS3.5 §10, Annex A).
 */
export interface TransferSyntax {
  readonly uid: string;
  readonly name: string;
  readonly explicitVR: boolean;
  readonly littleEndian: boolean;
  /** The data set after the File Meta Information is a raw deflate stream (PS3.5 §A.5). */
  readonly deflated: boolean;
  /** Pixel Data is encapsulated: fragments in items, with a Basic Offset Table (PS3.5 §A.4). */
  readonly encapsulated: boolean;
  /** Lossy compression: transcoding from it never restores the original. */
  readonly lossy: boolean;
  readonly retired: boolean;
}

/** A transfer syntax's encoding flags; its name comes from the generated UID registry (PS3.6 Table A-1). */
function ts(uid: string, f: Partial<Omit<TransferSyntax, 'uid' | 'name'>> = {}): TransferSyntax {
  return {
    uid,
    name: uidName(uid) ?? `Unknown (${uid})`,
    explicitVR: f.explicitVR ?? true,
    littleEndian: f.littleEndian ?? true,
    deflated: f.deflated ?? false,
    encapsulated: f.encapsulated ?? true,
    lossy: f.lossy ?? false,
    retired: f.retired ?? false,
  };
}

const native = { encapsulated: false };

/** The transfer syntaxes of PS3.6 Table A-1 (current and retired). */
export const TRANSFER_SYNTAXES: readonly TransferSyntax[] = [
  ts('1.2.840.10008.1.2', { ...native, explicitVR: false }),
  ts('1.2.840.10008.1.2.1', native),
  ts('1.2.840.10008.1.2.1.98'),
  ts('1.2.840.10008.1.2.1.99', { ...native, deflated: true }),
  ts('1.2.840.10008.1.2.2', { ...native, littleEndian: false, retired: true }),
  ts('1.2.840.10008.1.2.4.50', { lossy: true }),
  ts('1.2.840.10008.1.2.4.51', { lossy: true }),
  ts('1.2.840.10008.1.2.4.52', { lossy: true, retired: true }),
  ts('1.2.840.10008.1.2.4.53', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.54', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.55', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.56', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.57'),
  ts('1.2.840.10008.1.2.4.58', { retired: true }),
  ts('1.2.840.10008.1.2.4.59', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.60', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.61', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.62', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.63', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.64', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.65', { retired: true }),
  ts('1.2.840.10008.1.2.4.66', { retired: true }),
  ts('1.2.840.10008.1.2.4.70'),
  ts('1.2.840.10008.1.2.4.80'),
  ts('1.2.840.10008.1.2.4.81', { lossy: true }),
  ts('1.2.840.10008.1.2.4.90'),
  ts('1.2.840.10008.1.2.4.91', { lossy: true }),
  ts('1.2.840.10008.1.2.4.92'),
  ts('1.2.840.10008.1.2.4.93', { lossy: true }),
  ts('1.2.840.10008.1.2.4.94', native),
  ts('1.2.840.10008.1.2.4.95', { ...native, deflated: true }),
  ts('1.2.840.10008.1.2.4.100', { lossy: true }),
  ts('1.2.840.10008.1.2.4.101', { lossy: true }),
  ts('1.2.840.10008.1.2.4.102', { lossy: true }),
  ts('1.2.840.10008.1.2.4.103', { lossy: true }),
  ts('1.2.840.10008.1.2.4.104', { lossy: true }),
  ts('1.2.840.10008.1.2.4.105', { lossy: true }),
  ts('1.2.840.10008.1.2.4.106', { lossy: true }),
  ts('1.2.840.10008.1.2.4.107', { lossy: true }),
  ts('1.2.840.10008.1.2.4.108', { lossy: true }),
  ts('1.2.840.10008.1.2.4.100.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.101.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.102.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.103.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.104.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.105.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.106.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.110'),
  ts('1.2.840.10008.1.2.4.111'),
  ts('1.2.840.10008.1.2.4.112', { lossy: true }),
  ts('1.2.840.10008.1.2.4.201'),
  ts('1.2.840.10008.1.2.4.202'),
  ts('1.2.840.10008.1.2.4.203', { lossy: true }),
  ts('1.2.840.10008.1.2.4.204', native),
  ts('1.2.840.10008.1.2.4.205', { ...native, deflated: true }),
  ts('1.2.840.10008.1.2.5'),
  ts('1.2.840.10008.1.2.6.1', { ...native, retired: true }),
  ts('1.2.840.10008.1.2.6.2', { ...native, retired: true }),
  ts('1.2.840.10008.1.2.7.1', native),
  ts('1.2.840.10008.1.2.7.2', native),
  ts('1.2.840.10008.1.2.7.3', native),
  ts('1.2.840.10008.1.2.8.1'), // Deflated Image Frame Compression (Sup 244): each frame deflated, encapsulated
];

const byUid = new Map(TRANSFER_SYNTAXES.map((t) => [t.uid, t]));

export const ImplicitVRLittleEndian = byUid.get('1.2.840.10008.1.2')!;
export const ExplicitVRLittleEndian = byUid.get('1.2.840.10008.1.2.1')!;
export const DeflatedExplicitVRLittleEndian = byUid.get('1.2.840.10008.1.2.1.99')!;
export const ExplicitVRBigEndian = byUid.get('1.2.840.10008.1.2.2')!;

/**
 * The transfer syntax for a UID. An unknown UID (a private syntax) is taken as explicit VR little
 * endian with encapsulated Pixel Data, the encoding every non-native syntax uses (PS3.5 §A.4); Pixel
 * Data of undefined length is read as fragments whatever the syntax says.
 */
export function transferSyntax(uid: string): TransferSyntax {
  return byUid.get(uid) ?? ts(uid);
}

export function isKnownTransferSyntax(uid: string): boolean {
  return byUid.has(uid);
}

/** The syntaxes the writer can produce from a native data set: no pixel data compression involved. */
export function isNativeTransferSyntax(uid: string): boolean {
  const t = byUid.get(uid);
  return t !== undefined && !t.encapsulated;
}
