export {
  createDicomWebApp,
  DICOMWEB_DEFAULTS,
  type DicomWebOptions,
  type WebArchive,
} from './app.ts';
export { HttpError } from './http.ts';
export { canRender, type PixelDescription, type RenderOptions, renderFrame, toEightBit } from './render.ts';
