/** Value Representations of PS3.5 §6.2 Table 6.2-1. */
export const VRS = [
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FD',
  'FL',
  'IS',
  'LO',
  'LT',
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'PN',
  'SH',
  'SL',
  'SQ',
  'SS',
  'ST',
  'SV',
  'TM',
  'UC',
  'UI',
  'UL',
  'UN',
  'UR',
  'US',
  'UT',
  'UV',
] as const;

export type VR = (typeof VRS)[number];

const vrSet: ReadonlySet<string> = new Set(VRS);

export function isVR(text: string): text is VR {
  return vrSet.has(text);
}

/**
 * VRs whose explicit-VR header has 2 reserved bytes and a 32-bit length (PS3.5 §7.1.2, Table 7.1-1);
 * all others have a 16-bit length.
 */
const longLengthVRs: ReadonlySet<VR> = new Set<VR>([
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'SQ',
  'SV',
  'UC',
  'UN',
  'UR',
  'UT',
  'UV',
]);

export function hasLongLength(vr: VR): boolean {
  return longLengthVRs.has(vr);
}

/** Character string VRs whose bytes go through the Specific Character Set (PS3.5 §6.1.2.3). */
const textVRs: ReadonlySet<VR> = new Set<VR>(['LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UT']);

/** String VRs (padded with a space, or NUL for UI) as opposed to binary ones. */
const stringVRs: ReadonlySet<VR> = new Set<VR>([
  'AE',
  'AS',
  'CS',
  'DA',
  'DS',
  'DT',
  'IS',
  'LO',
  'LT',
  'PN',
  'SH',
  'ST',
  'TM',
  'UC',
  'UI',
  'UR',
  'UT',
]);

export function isStringVR(vr: VR): boolean {
  return stringVRs.has(vr);
}

/** True for VRs decoded through Specific Character Set (0008,0005). */
export function usesCharacterSet(vr: VR): boolean {
  return textVRs.has(vr);
}

/** VRs whose value can hold only one string even when it contains a backslash (PS3.5 §6.4). */
export function isSingleValuedText(vr: VR): boolean {
  return vr === 'LT' || vr === 'ST' || vr === 'UT' || vr === 'UR';
}

/** Size in bytes of one value of a fixed-size binary VR, 0 for others. Used for byte swapping. */
export function binaryWordSize(vr: VR): number {
  switch (vr) {
    case 'US':
    case 'SS':
    case 'OW':
    case 'AT':
      return 2;
    case 'UL':
    case 'SL':
    case 'FL':
    case 'OF':
    case 'OL':
      return 4;
    case 'FD':
    case 'OD':
    case 'SV':
    case 'UV':
    case 'OV':
      return 8;
    default:
      return 0;
  }
}

/** Bulk-capable VRs: values that may be large binary data (PS3.18 §8.4.1). */
export function isBulkVR(vr: VR): boolean {
  return (
    vr === 'OB' || vr === 'OW' || vr === 'OF' || vr === 'OD' || vr === 'OL' || vr === 'OV' || vr === 'UN'
  );
}

/** Padding byte for an odd-length value: NUL for UI and binary VRs, space for strings (PS3.5 §6.2). */
export function paddingByte(vr: VR): number {
  return isStringVR(vr) && vr !== 'UI' ? 0x20 : 0x00;
}
