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

function ts(
  uid: string,
  name: string,
  f: Partial<Omit<TransferSyntax, 'uid' | 'name'>> = {},
): TransferSyntax {
  return {
    uid,
    name,
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
  ts('1.2.840.10008.1.2', 'Implicit VR Little Endian', { ...native, explicitVR: false }),
  ts('1.2.840.10008.1.2.1', 'Explicit VR Little Endian', native),
  ts('1.2.840.10008.1.2.1.98', 'Encapsulated Uncompressed Explicit VR Little Endian'),
  ts('1.2.840.10008.1.2.1.99', 'Deflated Explicit VR Little Endian', { ...native, deflated: true }),
  ts('1.2.840.10008.1.2.2', 'Explicit VR Big Endian', { ...native, littleEndian: false, retired: true }),
  ts('1.2.840.10008.1.2.4.50', 'JPEG Baseline (Process 1)', { lossy: true }),
  ts('1.2.840.10008.1.2.4.51', 'JPEG Extended (Process 2 & 4)', { lossy: true }),
  ts('1.2.840.10008.1.2.4.52', 'JPEG Extended (Process 3 & 5)', { lossy: true, retired: true }),
  ts('1.2.840.10008.1.2.4.53', 'JPEG Spectral Selection, Non-Hierarchical (Process 6 & 8)', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.54', 'JPEG Spectral Selection, Non-Hierarchical (Process 7 & 9)', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.55', 'JPEG Full Progression, Non-Hierarchical (Process 10 & 12)', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.56', 'JPEG Full Progression, Non-Hierarchical (Process 11 & 13)', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.57', 'JPEG Lossless, Non-Hierarchical (Process 14)'),
  ts('1.2.840.10008.1.2.4.58', 'JPEG Lossless, Non-Hierarchical (Process 15)', { retired: true }),
  ts('1.2.840.10008.1.2.4.59', 'JPEG Extended, Hierarchical (Process 16 & 18)', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.60', 'JPEG Extended, Hierarchical (Process 17 & 19)', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.61', 'JPEG Spectral Selection, Hierarchical (Process 20 & 22)', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.62', 'JPEG Spectral Selection, Hierarchical (Process 21 & 23)', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.63', 'JPEG Full Progression, Hierarchical (Process 24 & 26)', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.64', 'JPEG Full Progression, Hierarchical (Process 25 & 27)', {
    lossy: true,
    retired: true,
  }),
  ts('1.2.840.10008.1.2.4.65', 'JPEG Lossless, Hierarchical (Process 28)', { retired: true }),
  ts('1.2.840.10008.1.2.4.66', 'JPEG Lossless, Hierarchical (Process 29)', { retired: true }),
  ts(
    '1.2.840.10008.1.2.4.70',
    'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])',
  ),
  ts('1.2.840.10008.1.2.4.80', 'JPEG-LS Lossless Image Compression'),
  ts('1.2.840.10008.1.2.4.81', 'JPEG-LS Lossy (Near-Lossless) Image Compression', { lossy: true }),
  ts('1.2.840.10008.1.2.4.90', 'JPEG 2000 Image Compression (Lossless Only)'),
  ts('1.2.840.10008.1.2.4.91', 'JPEG 2000 Image Compression', { lossy: true }),
  ts('1.2.840.10008.1.2.4.92', 'JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)'),
  ts('1.2.840.10008.1.2.4.93', 'JPEG 2000 Part 2 Multi-component Image Compression', { lossy: true }),
  ts('1.2.840.10008.1.2.4.94', 'JPIP Referenced', native),
  ts('1.2.840.10008.1.2.4.95', 'JPIP Referenced Deflate', { ...native, deflated: true }),
  ts('1.2.840.10008.1.2.4.100', 'MPEG2 Main Profile / Main Level', { lossy: true }),
  ts('1.2.840.10008.1.2.4.101', 'MPEG2 Main Profile / High Level', { lossy: true }),
  ts('1.2.840.10008.1.2.4.102', 'MPEG-4 AVC/H.264 High Profile / Level 4.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.103', 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.104', 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video', { lossy: true }),
  ts('1.2.840.10008.1.2.4.105', 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video', { lossy: true }),
  ts('1.2.840.10008.1.2.4.106', 'MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2', { lossy: true }),
  ts('1.2.840.10008.1.2.4.107', 'HEVC/H.265 Main Profile / Level 5.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.108', 'HEVC/H.265 Main 10 Profile / Level 5.1', { lossy: true }),
  ts('1.2.840.10008.1.2.4.110', 'JPEG XL Lossless'),
  ts('1.2.840.10008.1.2.4.111', 'JPEG XL JPEG Recompression'),
  ts('1.2.840.10008.1.2.4.112', 'JPEG XL', { lossy: true }),
  ts('1.2.840.10008.1.2.4.201', 'High-Throughput JPEG 2000 Image Compression (Lossless Only)'),
  ts(
    '1.2.840.10008.1.2.4.202',
    'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)',
  ),
  ts('1.2.840.10008.1.2.4.203', 'High-Throughput JPEG 2000 Image Compression', { lossy: true }),
  ts('1.2.840.10008.1.2.4.204', 'JPIP HTJ2K Referenced', native),
  ts('1.2.840.10008.1.2.4.205', 'JPIP HTJ2K Referenced Deflate', { ...native, deflated: true }),
  ts('1.2.840.10008.1.2.5', 'RLE Lossless'),
  ts('1.2.840.10008.1.2.6.1', 'RFC 2557 MIME encapsulation', { ...native, retired: true }),
  ts('1.2.840.10008.1.2.6.2', 'XML Encoding', { ...native, retired: true }),
  ts('1.2.840.10008.1.2.7.1', 'SMPTE ST 2110-20 Uncompressed Progressive Active Video', native),
  ts('1.2.840.10008.1.2.7.2', 'SMPTE ST 2110-20 Uncompressed Interlaced Active Video', native),
  ts('1.2.840.10008.1.2.7.3', 'SMPTE ST 2110-30 PCM Digital Audio', native),
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
  return byUid.get(uid) ?? ts(uid, `Unknown (${uid})`);
}

export function isKnownTransferSyntax(uid: string): boolean {
  return byUid.has(uid);
}

/** The syntaxes the writer can produce from a native data set: no pixel data compression involved. */
export function isNativeTransferSyntax(uid: string): boolean {
  const t = byUid.get(uid);
  return t !== undefined && !t.encapsulated;
}
