import {
  type Dataset,
  decodeValues,
  type Element,
  type Fragment,
  formatPersonName,
  type Part10,
} from '../codec/index.ts';
import { formatTag, isStringVR, type Tag, tagElement } from '../core/index.ts';
import { lookupTag, uidName } from '../dictionary/index.ts';

const VALUE_WIDTH = 40;
const MAX_PREVIEW = 64;

/**
 * A dcmdump-like listing: one line per element with tag, VR, value, length, VM and keyword; items and
 * delimiters of sequences indented, as DCMTK prints them.
 */
export function dumpPart10(file: Part10): string[] {
  const lines: string[] = [];
  if (file.meta.size > 0) {
    lines.push(
      '# Dicom-File-Format',
      '',
      '# Dicom-Meta-Information-Header',
      '# Used TransferSyntax: Little Endian Explicit',
    );
    dumpDataset(file.meta, 0, lines);
    lines.push('');
  }
  lines.push('# Dicom-Data-Set', `# Used TransferSyntax: ${file.transferSyntax.name}`);
  dumpDataset(file.dataset, 0, lines);
  if (file.stoppedAt !== undefined)
    lines.push(`# (stopped before ${formatTag(file.stoppedAt).toLowerCase()})`);
  return lines;
}

export function dumpDataset(ds: Dataset, depth: number, lines: string[]): void {
  // An explicit stack of work, so a hostile nesting depth cannot exhaust the call stack.
  type Work = string | { readonly ds: Dataset; readonly depth: number };
  const stack: Work[] = [{ ds, depth }];
  while (stack.length) {
    const work = stack.pop()!;
    if (typeof work === 'string') {
      lines.push(work);
      continue;
    }
    const out: Work[] = [];
    const pad = '  '.repeat(work.depth);
    const ipad = '  '.repeat(work.depth + 1);
    for (const el of work.ds) {
      if (el.kind === 'sequence') {
        const u = el.undefinedLength;
        out.push(
          line(
            pad,
            el.tag,
            el.vr,
            `(Sequence with ${u ? 'undefined' : 'explicit'} length #=${el.items.length})`,
            u ? 'u/l' : '',
            1,
            keyword(el.tag),
          ),
        );
        for (const item of el.items) {
          const iu = item.undefinedLength;
          out.push(
            line(
              ipad,
              0xfffee000,
              'na',
              `(Item with ${iu ? 'undefined' : 'explicit'} length #=${item.size})`,
              iu ? 'u/l' : '',
              1,
              'Item',
            ),
          );
          out.push({ ds: item, depth: work.depth + 2 });
          if (iu)
            out.push(line(ipad, 0xfffee00d, 'na', '(ItemDelimitationItem)', '0', 0, 'ItemDelimitationItem'));
        }
        if (u)
          out.push(
            line(pad, 0xfffee0dd, 'na', '(SequenceDelimitationItem)', '0', 0, 'SequenceDelimitationItem'),
          );
        continue;
      }
      out.push(elementLine(el, work.ds, pad));
      if (el.kind === 'encapsulated') {
        [el.offsetTable, ...el.fragments].forEach((f, i) => {
          out.push(line(ipad, 0xfffee000, 'pi', fragmentPreview(f, i === 0), String(f.length), 1, 'Item'));
        });
        out.push(
          line(pad, 0xfffee0dd, 'na', '(SequenceDelimitationItem)', '0', 0, 'SequenceDelimitationItem'),
        );
      }
    }
    for (let i = out.length - 1; i >= 0; i--) stack.push(out[i]!);
  }
}

function fragmentPreview(f: Fragment, isOffsetTable: boolean): string {
  if (!f.bytes)
    return f.length === 0
      ? '(no value available)'
      : `(not loaded: ${f.length} bytes at offset ${f.offset ?? '?'})`;
  if (isOffsetTable && f.length > 0) {
    const offsets: number[] = [];
    for (let i = 0; i + 4 <= f.bytes.length && offsets.length < 8; i += 4)
      offsets.push(f.bytes.readUInt32LE(i));
    return truncate(offsets.map((o) => o.toString(16).padStart(8, '0')).join('\\'));
  }
  return f.length === 0 ? '(no value available)' : hexPreview(f.bytes, 1);
}

function elementLine(el: Exclude<Element, { kind: 'sequence' }>, ds: Dataset, pad: string): string {
  const kw = keyword(el.tag);
  if (el.kind === 'bulk')
    return line(
      pad,
      el.tag,
      el.vr,
      `(not loaded: ${el.bulk.length} bytes at offset ${el.bulk.offset})`,
      String(el.bulk.length),
      1,
      kw,
    );
  if (el.kind === 'encapsulated')
    return line(pad, el.tag, el.vr, `(PixelSequence #=${el.fragments.length + 1})`, 'u/l', 1, kw);
  const { text, vm } = valuePreview(el.tag, el.vr, el.bytes, ds);
  return line(pad, el.tag, el.vr, text, String(el.bytes.length), vm, kw);
}

function valuePreview(t: Tag, vr: Element['vr'], bytes: Buffer, ds: Dataset): { text: string; vm: number } {
  if (bytes.length === 0) return { text: '(no value available)', vm: 0 };
  if (vr === 'OB' || vr === 'UN') return { text: hexPreview(bytes, 1), vm: 1 };
  if (vr === 'OW') return { text: hexPreview(bytes, 2, ds.littleEndian), vm: 1 };
  if (vr === 'OF' || vr === 'OD' || vr === 'OL' || vr === 'OV') return { text: hexPreview(bytes, 1), vm: 1 };
  try {
    const values = decodeValues(vr, bytes, ds.littleEndian, ds.characterSet);
    const parts = values.map((v) => {
      if (v === null) return '';
      if (typeof v === 'object') return formatPersonName(v);
      if (vr === 'AT' && typeof v === 'number') return formatTag(v).toLowerCase();
      return String(v);
    });
    let text = isStringVR(vr) ? `[${parts.join('\\')}]` : parts.join('\\');
    if (vr === 'UI' && parts.length === 1) {
      const name = uidName(parts[0]!);
      if (name) text = `=${name.replace(/[^A-Za-z0-9]+/g, '')}`.slice(0, 60);
      if (name && t !== 0x00020010 && t !== 0x00080016 && t !== 0x00020002) text = `[${parts[0]}]`;
    }
    return { text: truncate(text), vm: values.length };
  } catch {
    return { text: hexPreview(bytes, 1), vm: 1 };
  }
}

function hexPreview(bytes: Buffer, word: number, littleEndian = true): string {
  const parts: string[] = [];
  for (let i = 0; i + word <= bytes.length && parts.length < 16; i += word) {
    parts.push(
      word === 2
        ? (littleEndian ? bytes.readUInt16LE(i) : bytes.readUInt16BE(i)).toString(16).padStart(4, '0')
        : bytes[i]!.toString(16).padStart(2, '0'),
    );
  }
  return truncate(parts.join('\\') + (bytes.length / word > 16 ? '...' : ''));
}

function truncate(text: string): string {
  return text.length > MAX_PREVIEW ? `${text.slice(0, MAX_PREVIEW - 3)}...` : text;
}

function keyword(t: Tag): string {
  const entry = lookupTag(t);
  if (entry) return entry.keyword;
  if (tagElement(t) === 0) return 'GroupLength';
  return 'Unknown Tag & Data';
}

function line(
  pad: string,
  t: Tag,
  vr: string,
  value: string,
  length: string,
  vm: number,
  kw: string,
): string {
  const left = `${pad}${formatTag(t).toLowerCase()} ${vr} ${value}`;
  return `${left.padEnd(pad.length + 12 + VALUE_WIDTH)} # ${length.padStart(4)}, ${vm} ${kw}`;
}
