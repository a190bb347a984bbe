export { type BulkSource, DatasetBuilder } from './builder.ts';
export {
  type CharacterSet,
  DEFAULT_CHARACTER_SET,
  decodeText,
  encodeText,
  parseCharacterSet,
} from './charset.ts';
export {
  type BulkElement,
  type BulkRef,
  Dataset,
  type Element,
  type EncapsulatedElement,
  type Fragment,
  loadBulk,
  type SequenceElement,
  type ValueElement,
} from './dataset.ts';
export { decodeWorkerStats, startDecodeWorkers, stopDecodeWorkers } from './decode-pool.ts';
export { frameFragments, type NativeFrame, nativeFrames, numberOfFrames } from './frames.ts';
export {
  datasetFromJson,
  datasetToJson,
  type ElementPath,
  type FromJsonOptions,
  type JsonAttribute,
  type JsonDataset,
  type JsonValue,
  type ToJsonOptions,
} from './json.ts';
export {
  decodeDataset,
  detectEncoding,
  detectLayout,
  type Part10,
  READ_DEFAULTS,
  type ReadOptions,
  readPart10,
  readPart10File,
  readPart10Stream,
  type StreamReadOptions,
} from './part10.ts';
export {
  canDecode,
  type DecodedFrame,
  decodeFrame,
  decompressDataset,
  type PixelFormat,
} from './pixel-decode.ts';
export { type Token, TokenReader, type TokenReaderOptions } from './tokens.ts';
export {
  DeflatedExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
  isKnownTransferSyntax,
  isNativeTransferSyntax,
  TRANSFER_SYNTAXES,
  type TransferSyntax,
  transferSyntax,
} from './transfer-syntax.ts';
export {
  decodeValues,
  encodeValues,
  formatPersonName,
  type PersonName,
  parsePersonName,
  splitStrings,
  type Value,
} from './values.ts';
export {
  buildFileMeta,
  datasetLength,
  type EncodeOptions,
  encodeDataset,
  IMPLEMENTATION_CLASS_UID,
  IMPLEMENTATION_VERSION_NAME,
  type Part10Input,
  part10Chunks,
  part10Header,
  writePart10,
} from './writer.ts';
