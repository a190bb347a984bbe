/**
 * `tessera find | move | get`: Query/Retrieve SCU commands in the manner of DCMTK's findscu, movescu
 * and getscu. Keys are `-k Keyword=value` or `-k (gggg,eeee)=value` (a key without a value is a
 * return key); the level is `--level`, the information model `--model`.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Dataset, datasetToJson, formatPersonName, type Value } from '../codec/index.ts';
import { isStringVR, parseTag, type VR } from '../core/index.ts';
import { isStorageSopClass, lookupKeyword, lookupTag, UID, uidName } from '../dictionary/index.ts';
import {
  Dimse,
  find,
  formatStatus,
  get,
  getStorageContexts,
  type HandlerResult,
  type IncomingRequest,
  move,
  type QueryRetrieveModel,
  qrContexts,
  type RetrieveResult,
  type SubOperations,
  statusCategory,
} from '../dimse/index.ts';
import { collect, common, port, type ScuOptions, scuOptions } from './net.ts';
import { terminalBar } from './progress.ts';

const MODELS: Record<string, QueryRetrieveModel> = {
  study: 'STUDY_ROOT',
  patient: 'PATIENT_ROOT',
  'patient-study-only': 'PATIENT_STUDY_ONLY',
};

const LEVELS = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'] as const;
type Level = (typeof LEVELS)[number];

/** Return keys added to a query when `--no-defaults` is not given, per level (what a user wants to see). */
const DEFAULT_KEYS: Record<Level, readonly string[]> = {
  PATIENT: ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'NumberOfPatientRelatedStudies'],
  STUDY: [
    'StudyInstanceUID',
    'StudyDate',
    'StudyTime',
    'AccessionNumber',
    'PatientName',
    'PatientID',
    'StudyDescription',
    'ModalitiesInStudy',
    'NumberOfStudyRelatedSeries',
    'NumberOfStudyRelatedInstances',
  ],
  SERIES: [
    'SeriesInstanceUID',
    'Modality',
    'SeriesNumber',
    'SeriesDescription',
    'NumberOfSeriesRelatedInstances',
  ],
  IMAGE: ['SOPInstanceUID', 'SOPClassUID', 'InstanceNumber'],
};

/** The unique key of each level (always sent, so results can be told apart). */
const UNIQUE_KEY: Record<Level, string> = {
  PATIENT: 'PatientID',
  STUDY: 'StudyInstanceUID',
  SERIES: 'SeriesInstanceUID',
  IMAGE: 'SOPInstanceUID',
};

interface KeyArg {
  readonly tag: number;
  readonly vr: VR;
  readonly value: string | undefined;
}

/** Parses `-k Keyword=value`, `-k (0010,0010)=value` or `-k Keyword`. */
export function parseKey(text: string): KeyArg {
  const eq = text.indexOf('=');
  const name = (eq < 0 ? text : text.slice(0, eq)).trim();
  const value = eq < 0 ? undefined : text.slice(eq + 1);
  const t = parseTag(name) ?? lookupKeyword(name)?.tag;
  if (t === undefined) throw new Error(`-k ${text}: "${name}" is neither a keyword nor a tag (gggg,eeee)`);
  const vr = (lookupTag(t)?.vr ?? 'LO') as VR;
  if (vr === 'SQ' && value) throw new Error(`-k ${text}: a sequence key takes no value here`);
  return { tag: t, vr: (vr.includes(' or ') ? vr.split(' ')[0] : vr) as VR, value };
}

/** The identifier: level, keys given, and (unless disabled) the default return keys of the level. */
export function buildIdentifier(level: Level, keys: readonly KeyArg[], defaults: boolean): Dataset {
  const ds = new Dataset();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range
  if (keys.some((k) => k.value !== undefined && /[^\x00-\x7f]/.test(k.value)))
    ds.setString(0x00080005, 'ISO_IR 192');
  ds.setString(0x00080052, level);
  const all: KeyArg[] = [];
  const names = defaults ? [...DEFAULT_KEYS[level]] : [UNIQUE_KEY[level]];
  if (!names.includes(UNIQUE_KEY[level])) names.unshift(UNIQUE_KEY[level]);
  for (const keyword of names) all.push(parseKey(keyword));
  all.push(...keys);
  for (const k of all) {
    if (k.vr === 'SQ') ds.setSequence(k.tag, []);
    else if (k.value === undefined || k.value === '') {
      if (!ds.has(k.tag)) ds.setBytes(k.tag, k.vr, Buffer.alloc(0));
    } else if (isStringVR(k.vr)) ds.setString(k.tag, k.value, k.vr);
    else ds.setValues(k.tag, k.value.split('\\').map(Number), k.vr);
  }
  return ds;
}

function modelOption(text: string): QueryRetrieveModel {
  const model = MODELS[text.toLowerCase()];
  if (!model) throw new Error(`--model ${text}: expected study, patient or patient-study-only`);
  return model;
}

function levelOption(text: string): Level {
  const level = text.toUpperCase();
  if (!(LEVELS as readonly string[]).includes(level))
    throw new Error(`--level ${text}: expected PATIENT, STUDY, SERIES or IMAGE`);
  return level as Level;
}

interface QrOptions extends ScuOptions {
  level: string;
  model: string;
  key?: string[];
  defaults: boolean;
}

function qrOptions(cmd: Command): Command {
  return scuOptions(cmd)
    .option('-L, --level <level>', 'query/retrieve level: PATIENT, STUDY, SERIES or IMAGE', 'STUDY')
    .option('-m, --model <model>', 'information model: study, patient or patient-study-only', 'study')
    .option(
      '-k, --key <key=value>',
      'a key: Keyword=value, (gggg,eeee)=value, or Keyword (return key)',
      collect,
    )
    .option('--no-defaults', 'send only the -k keys and the level unique key');
}

/**
 * A table cell: the values of an element as findscu shows them, joined by \ (a person name in its
 * DICOM form, `SMITH^ANNA=...`; an empty value of several as nothing).
 */
export function formatCell(values: readonly Value[]): string {
  return values
    .map((v) => (v === null ? '' : typeof v === 'object' ? formatPersonName(v) : String(v)))
    .join('\\');
}

/** One line per match in columns, the keys as headers (values of several items joined by \). */
function printTable(rows: readonly Dataset[], tags: readonly number[]): void {
  const headers = tags.map((t) => lookupTag(t)?.keyword ?? `(${t.toString(16).padStart(8, '0')})`);
  const cells = rows.map((ds) =>
    tags.map((t) => {
      const el = ds.get(t);
      if (!el) return '';
      if (el.kind === 'sequence') return `[${el.items.length} item(s)]`;
      try {
        return formatCell(ds.values(t));
      } catch {
        return '?';
      }
    }),
  );
  const widths = headers.map((h, i) => Math.min(64, Math.max(h.length, ...cells.map((r) => r[i]!.length))));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (c.length > widths[i]! ? `${c.slice(0, widths[i]! - 1)}…` : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(headers)}\n`);
  for (const r of cells) process.stdout.write(`${line(r)}\n`);
}

async function progressBar(label: string): Promise<{
  update(c: SubOperations): void;
  stop(): void;
}> {
  const bar = await terminalBar(`${label} [{bar}] {value}/{total} | {failed} failed | {warning} warnings`);
  if (bar === undefined) return { update: () => undefined, stop: () => undefined };
  let started = false;
  return {
    update: (c) => {
      const done = c.completed + c.failed + c.warning;
      const total = done + (c.remaining ?? 0);
      if (!started) {
        bar.start(total, done, { failed: c.failed, warning: c.warning });
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(done, { failed: c.failed, warning: c.warning });
      }
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

function summarize(verb: string, host: string, p: string, result: RetrieveResult, seconds: number): void {
  const { completed, failed, warning } = result;
  process.stdout.write(
    `${verb} ${host}:${p}: ${formatStatus(result.status)}: ${completed} completed, ${warning} with warnings, ${failed} failed ` +
      `in ${seconds.toFixed(2)} s${result.errorComment ? ` (${result.errorComment})` : ''}\n`,
  );
  for (const uid of result.failedSopInstanceUids) process.stderr.write(`failed: ${uid}\n`);
}

/**
 * The storage SCP of `tessera move --port` (movescu's --port): instances written as `<UID>.dcm` in
 * `out`, for associations called with our AE title. `close` waits (up to 10 s) for those in progress.
 */
async function startReceiver(
  bind: string,
  listenPort: string,
  aeTitle: string,
  out: string,
): Promise<{ readonly received: number; close(): Promise<void> }> {
  const { folderStore, startDimseServer } = await import('../scp/index.ts');
  const write = folderStore(resolve(out), { fsync: false });
  let received = 0;
  const server = await startDimseServer({
    host: bind,
    port: port(listenPort),
    aeTitle,
    fsync: false,
    store: async (rq) => {
      const result = await write(rq);
      if (result.status === 0) received++;
      return result;
    },
  });
  let closing: Promise<void> | undefined;
  return {
    get received() {
      return received;
    },
    close: () => {
      closing ??= server.close(10_000);
      return closing;
    },
  };
}

/** Storage SOP classes a `get` proposes by default: every storage class of the registry, most common first. */
const COMMON_STORAGE: readonly string[] = (
  [
    UID.CTImageStorage,
    UID.MRImageStorage,
    UID.ComputedRadiographyImageStorage,
    UID.DigitalXRayImageStorageForPresentation,
    UID.DigitalMammographyXRayImageStorageForPresentation,
    UID.UltrasoundImageStorage,
    UID.UltrasoundMultiFrameImageStorage,
    UID.SecondaryCaptureImageStorage,
    UID.MultiFrameTrueColorSecondaryCaptureImageStorage,
    UID.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    UID.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    UID.NuclearMedicineImageStorage,
    UID.PositronEmissionTomographyImageStorage,
    UID.EnhancedCTImageStorage,
    UID.EnhancedMRImageStorage,
    UID.EnhancedPETImageStorage,
    UID.XRayAngiographicImageStorage,
    UID.XRayRadiofluoroscopicImageStorage,
    UID.EnhancedXAImageStorage,
    UID.RTImageStorage,
    UID.RTDoseStorage,
    UID.RTStructureSetStorage,
    UID.RTPlanStorage,
    UID.SegmentationStorage,
    UID.BasicTextSRStorage,
    UID.EnhancedSRStorage,
    UID.ComprehensiveSRStorage,
    UID.KeyObjectSelectionDocumentStorage,
    UID.GrayscaleSoftcopyPresentationStateStorage,
    UID.EncapsulatedPDFStorage,
    UID.VLPhotographicImageStorage,
    UID.VLWholeSlideMicroscopyImageStorage,
    UID.BreastTomosynthesisImageStorage,
    UID.DigitalXRayImageStorageForProcessing,
    UID.OphthalmicPhotography8BitImageStorage,
    UID.RawDataStorage,
  ] as string[]
).filter((u) => isStorageSopClass(u));

const UNCOMPRESSED = [UID.ExplicitVRLittleEndian, UID.ImplicitVRLittleEndian];

/**
 * By default `get` also accepts the common compressed syntaxes for the classes most often stored
 * compressed, each (class, syntax) in a context of its own, so that the SCP finds one in the stored
 * syntax (an SCP cannot decompress for us): 36 + 10 x 6 = 96 storage contexts, within 128.
 */
const COMPRESSED_CLASSES: readonly string[] = [
  UID.CTImageStorage,
  UID.MRImageStorage,
  UID.UltrasoundImageStorage,
  UID.UltrasoundMultiFrameImageStorage,
  UID.ComputedRadiographyImageStorage,
  UID.DigitalXRayImageStorageForPresentation,
  UID.DigitalMammographyXRayImageStorageForPresentation,
  UID.SecondaryCaptureImageStorage,
  UID.XRayAngiographicImageStorage,
  UID.EnhancedCTImageStorage,
];
const COMPRESSED = [
  UID.JPEGBaseline8Bit,
  UID.JPEGLosslessSV1,
  UID.JPEGLSLossless,
  UID.JPEG2000Lossless,
  UID.JPEG2000,
  UID.RLELossless,
];

export function registerQrCommands(program: Command, fail: (err: unknown) => never): void {
  qrOptions(
    program
      .command('find')
      .description('query a DICOM peer with C-FIND, like findscu')
      .argument('<host>')
      .argument('<port>'),
  )
    .option('--json', 'print the matches as a DICOM JSON array (PS3.18 Annex F)')
    .option('--relational', 'ask for relational queries (extended negotiation)')
    .option('--limit <n>', 'stop after n matches (sends C-CANCEL)')
    .action(
      async (
        host: string,
        p: string,
        o: QrOptions & { json?: boolean; relational?: boolean; limit?: string },
      ) => {
        try {
          const model = modelOption(o.model);
          const level = levelOption(o.level);
          const identifier = buildIdentifier(level, (o.key ?? []).map(parseKey), o.defaults);
          const limit = o.limit === undefined ? Number.POSITIVE_INFINITY : Number(o.limit);
          if (!(limit > 0)) throw new Error(`--limit ${o.limit}: expected a positive count`);
          const dimse = await Dimse.connect({
            ...common(host, p, o),
            contexts: qrContexts(model, ['find'], o.relational ? { relational: true } : undefined),
          });
          const rows: Dataset[] = [];
          const started = Date.now();
          const query = find(dimse, { model, identifier });
          let final: Awaited<ReturnType<typeof query.next>>;
          let warnedOptional = false;
          for (;;) {
            final = await query.next();
            if (final.done) break;
            if (final.value.status === 0xff01) warnedOptional = true;
            rows.push(final.value.identifier);
            if (rows.length >= limit) {
              await query.return(undefined as never);
              break;
            }
          }
          await dimse.release();
          const seconds = (Date.now() - started) / 1000;
          const tags = [...identifier]
            .map((el) => el.tag)
            .filter((t) => t !== 0x00080052 && t !== 0x00080005);
          if (o.json)
            process.stdout.write(
              `${JSON.stringify(
                rows.map((r) => datasetToJson(r)),
                null,
                2,
              )}\n`,
            );
          else printTable(rows, tags);
          const status = final.done ? final.value.status : 0xfe00;
          process.stderr.write(
            `C-FIND ${host}:${p}: ${rows.length} match(es) in ${seconds.toFixed(2)} s, ${formatStatus(status)}` +
              `${final.done && final.value.command.errorComment ? ` (${final.value.command.errorComment})` : ''}` +
              `${warnedOptional ? '; some optional keys were not supported by the peer' : ''}\n`,
          );
          if (statusCategory(status) === 'failure') process.exit(1);
        } catch (err) {
          fail(err);
        }
      },
    );

  qrOptions(
    program
      .command('move')
      .description('have a DICOM peer send matching instances to an AE with C-MOVE, like movescu')
      .argument('<host>')
      .argument('<port>'),
  )
    .option('--dest <ae>', 'the move destination AE title, known to the peer (default with --port: --aet)')
    .option(
      '--port <n>',
      'receive the moved instances here, like movescu --port: a storage SCP on this port, AE title --aet, for the time of the move (the peer must know --aet at this address)',
    )
    .option('--bind <address>', 'the address --port listens on', '127.0.0.1')
    .option('--out <dir>', 'where instances received on --port are written (SOP Instance UID.dcm)', '.')
    .action(
      async (
        host: string,
        p: string,
        o: QrOptions & { dest?: string; port?: string; bind: string; out: string },
      ) => {
        try {
          const model = modelOption(o.model);
          const level = levelOption(o.level);
          const identifier = buildIdentifier(level, (o.key ?? []).map(parseKey), false);
          const destination = o.dest ?? (o.port === undefined ? undefined : o.aet);
          if (destination === undefined)
            throw new Error('--dest <ae> is required (or --port, to receive the instances here as --aet)');
          // The receiver listens before the request goes out: the peer may connect at once.
          const receiver =
            o.port === undefined ? undefined : await startReceiver(o.bind, o.port, o.aet, o.out);
          try {
            const dimse = await Dimse.connect({
              ...common(host, p, o),
              contexts: qrContexts(model, ['move']),
            });
            const bar = await progressBar('C-MOVE');
            const started = Date.now();
            const result = await move(dimse, { model, identifier, destination, onProgress: bar.update });
            bar.stop();
            await dimse.release();
            summarize('C-MOVE', host, p, result, (Date.now() - started) / 1000);
            if (receiver) {
              // The final response comes once every sub-operation is answered, so every instance is
              // written; the peer's storage association may still be releasing.
              await receiver.close();
              process.stdout.write(
                `${receiver.received} instance(s) received on port ${o.port}, written to ${resolve(o.out)}\n`,
              );
            }
            if (statusCategory(result.status) !== 'success' || result.failed > 0) process.exit(1);
          } finally {
            await receiver?.close();
          }
        } catch (err) {
          fail(err);
        }
      },
    );

  qrOptions(
    program
      .command('get')
      .description('retrieve matching instances from a DICOM peer with C-GET into a folder, like getscu')
      .argument('<host>')
      .argument('<port>'),
  )
    .option('--out <dir>', 'where received instances are written (SOP Instance UID.dcm)', '.')
    .option(
      '--sop-class <uid>',
      'storage SOP class to accept (repeatable; default: 36 common classes)',
      collect,
    )
    .option(
      '--ts <uid>',
      'transfer syntax to accept, each in its own context (repeatable; default: Explicit/Implicit VR LE, and JPEG, JPEG-LS, JPEG 2000 and RLE for 10 common image classes)',
      collect,
    )
    .action(
      async (host: string, p: string, o: QrOptions & { out: string; sopClass?: string[]; ts?: string[] }) => {
        try {
          const model = modelOption(o.model);
          const level = levelOption(o.level);
          const identifier = buildIdentifier(level, (o.key ?? []).map(parseKey), false);
          const classes = o.sopClass ?? COMMON_STORAGE;
          const storage = o.ts
            ? o.ts.flatMap((ts) => getStorageContexts(classes, [ts]))
            : [
                ...getStorageContexts(classes, UNCOMPRESSED),
                ...(o.sopClass
                  ? []
                  : COMPRESSED.flatMap((ts) => getStorageContexts(COMPRESSED_CLASSES, [ts]))),
              ];
          if (storage.length + 1 > 128)
            throw new Error(
              `${storage.length} storage contexts (--sop-class x --ts) do not fit in one association (at most 127)`,
            );
          // The folder writer lives with the server code; loaded only for this command.
          const { folderStore } = await import('../scp/index.ts');
          const write = folderStore(resolve(o.out), { fsync: false });
          let received = 0;
          const onStore = async (rq: IncomingRequest): Promise<HandlerResult> => {
            const result = await write(rq);
            if (result.status === 0) received++;
            return result;
          };
          const dimse = await Dimse.connect(
            { ...common(host, p, o), contexts: [...qrContexts(model, ['get']), ...storage] },
            { 'C-STORE-RQ': onStore },
          );
          const missing = classes.filter((c) => !dimse.contextFor(c));
          if (missing.length > 0 && o.sopClass)
            process.stderr.write(`the peer refused: ${missing.map((c) => uidName(c) ?? c).join(', ')}\n`);
          const bar = await progressBar('C-GET');
          const started = Date.now();
          const result = await get(dimse, { model, identifier, onProgress: bar.update });
          bar.stop();
          await dimse.release();
          summarize('C-GET', host, p, result, (Date.now() - started) / 1000);
          process.stdout.write(`${received} instance(s) written to ${resolve(o.out)}\n`);
          if (statusCategory(result.status) !== 'success' || result.failed > 0) process.exit(1);
        } catch (err) {
          fail(err);
        }
      },
    );
}
