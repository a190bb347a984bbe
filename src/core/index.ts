export { ByteSink, swapBytes } from './bytes.ts';
export { CodecError, DicomError, isDicomError } from './errors.ts';
export {
  DoubleFloatPixelDataTag,
  FloatPixelDataTag,
  formatTag,
  ItemDelimitationTag,
  ItemTag,
  isGroupLength,
  isPrivateCreator,
  isPrivateTag,
  PixelDataTag,
  parseTag,
  SequenceDelimitationTag,
  type Tag,
  tag,
  tagElement,
  tagGroup,
  tagToHex,
  UndefinedLength,
} from './tag.ts';
export { isValidUid, trimUid, type Uid } from './uid.ts';
export {
  binaryWordSize,
  hasLongLength,
  isBulkVR,
  isSingleValuedText,
  isStringVR,
  isVR,
  paddingByte,
  usesCharacterSet,
  type VR,
  VRS,
} from './vr.ts';
