/**
 * Checks the module dependency rules of docs/architecture.md over src/<module>/**\/*.ts:
 *   (a) another module is imported only through its public src/<module>/index.ts;
 *   (b) the import direction is one that LAYERS allows (a module may always import itself).
 *
 *   npx tsx scripts/check-layers.ts      (part of `npm run lint`)
 *
 * Specifiers are read with a small tokenizer (comments, strings, template literals and regular
 * expressions are skipped as wholes), so commented-out or quoted code never counts as an import.
 * Known limit: a template literal nested inside another's `${}` is not tokenized correctly.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Module -> modules it may import, lower layers first. */
export const LAYERS: Readonly<Record<string, readonly string[]>> = {
  core: [],
  dictionary: ['core'],
  codec: ['dictionary', 'core'],
  ul: ['codec', 'dictionary', 'core'],
  archive: ['codec', 'dictionary', 'core'],
  dicomweb: ['codec', 'dictionary', 'core'],
  dimse: ['ul', 'codec', 'dictionary', 'core'],
  web: ['dicomweb', 'archive', 'codec', 'dictionary', 'core'],
  client: ['dicomweb', 'codec', 'dictionary', 'core'],
  scp: ['dimse', 'archive', 'ul', 'codec', 'dictionary', 'core'],
  server: ['scp', 'web', 'client', 'dimse', 'dicomweb', 'archive', 'ul', 'codec', 'dictionary', 'core'],
  cli: ['server', 'scp', 'dimse', 'client', 'codec', 'dictionary', 'core'],
};

export interface Violation {
  /** Repository-relative POSIX path of the importing file, e.g. `src/codec/part10.ts`. */
  readonly file: string;
  /** The imported file, resolved; absent for violations of the file itself. */
  readonly target?: string;
  readonly reason: string;
}

export function formatViolation(v: Violation): string {
  return v.target === undefined ? `${v.file}: ${v.reason}` : `${v.file}: imports ${v.target} — ${v.reason}`;
}

/** Words after which a `/` starts a regular expression rather than a division. */
const REGEX_AFTER_WORD = new Set(
  'return typeof case do else in of new delete void throw yield await'.split(' '),
);

type Token = { readonly kind: 'word' | 'punct' | 'string'; readonly text: string };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  const endOf = (search: string, from: number) => {
    const at = source.indexOf(search, from);
    return at < 0 ? source.length : at + search.length;
  };
  for (let i = 0; i < source.length; ) {
    const c = source.charAt(i);
    const prev = tokens.at(-1);
    const regexAllowed =
      !prev || (prev.kind === 'punct' ? !')]'.includes(prev.text) : REGEX_AFTER_WORD.has(prev.text));
    if (/\s/.test(c)) {
      i++;
    } else if (source.startsWith('//', i)) {
      i = endOf('\n', i);
    } else if (source.startsWith('/*', i)) {
      i = endOf('*/', i + 2);
    } else if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < source.length && source.charAt(j) !== c) j += source.charAt(j) === '\\' ? 2 : 1;
      tokens.push({ kind: 'string', text: source.slice(i + 1, j) });
      i = j + 1;
    } else if (c === '/' && regexAllowed) {
      let j = i + 1; // a regular expression literal; its flags become the next word token
      for (let inClass = false; j < source.length && (inClass || source.charAt(j) !== '/'); j++) {
        if (source.charAt(j) === '\\') j++;
        else if (source.charAt(j) === '[') inClass = true;
        else if (source.charAt(j) === ']') inClass = false;
      }
      tokens.push({ kind: 'punct', text: 'regex' });
      i = j + 1;
    } else {
      const word = /^[\w$]+/.exec(source.slice(i, i + 256))?.[0];
      tokens.push(word ? { kind: 'word', text: word } : { kind: 'punct', text: c });
      i += word ? word.length : 1;
    }
  }
  return tokens;
}

/** Module specifiers of `import ... from`, `export ... from`, `import '...'` and `import('...')`. */
export function importSpecifiers(source: string): string[] {
  const tokens = tokenize(source);
  const word = (k: number, text: string) => tokens[k]?.kind === 'word' && tokens[k]?.text === text;
  const specifiers: string[] = [];
  tokens.forEach((t, k) => {
    if (t.kind !== 'string') return;
    const isStatic = word(k - 1, 'from') || (word(k - 1, 'import') && tokens[k - 2]?.text !== '.');
    const isDynamic = tokens[k - 1]?.text === '(' && word(k - 2, 'import') && tokens[k - 3]?.text !== '.';
    if (isStatic || isDynamic) specifiers.push(t.text);
  });
  return specifiers;
}

/** `src/<module>/...` -> module; undefined outside a module folder. */
function moduleOf(path: string): string | undefined {
  const parts = path.split('/');
  return parts[0] === 'src' && parts.length > 2 ? parts[1] : undefined;
}

function allowedImports(module: string): readonly string[] | undefined {
  return Object.hasOwn(LAYERS, module) ? LAYERS[module] : undefined;
}

/** The violations of `files` (repository-relative POSIX path -> source text), in file order. */
export function checkImports(files: ReadonlyMap<string, string>): Violation[] {
  const violations: Violation[] = [];
  for (const [file, source] of files) {
    const from = moduleOf(file);
    const allowed = from === undefined ? undefined : allowedImports(from);
    if (from === undefined) {
      violations.push({ file, reason: 'not inside a module folder src/<module>/' });
    } else if (allowed === undefined) {
      violations.push({ file, reason: `module '${from}' is not in the layer table` });
    }
    for (const specifier of importSpecifiers(source)) {
      if (!specifier.startsWith('.')) continue; // node: built-ins and packages
      const target = posix.join(posix.dirname(file), specifier).replace(/\.js$/, '.ts');
      const to = moduleOf(target);
      if (to === from) continue;
      const reasons: string[] = [];
      if (to === undefined) {
        if (target.startsWith('src/')) reasons.push('not a module: use src/<module>/index.ts');
        else if (!target.startsWith('test/')) reasons.push('outside src/: only test/ may be imported');
      } else {
        if (allowedImports(to) === undefined) reasons.push(`module '${to}' is not in the layer table`);
        else if (allowed !== undefined && !allowed.includes(to)) {
          reasons.push(`${from} may not import ${to} (allowed: ${allowed.join(', ') || 'nothing'})`);
        }
        if (target !== `src/${to}/index.ts`) reasons.push(`deep import: use src/${to}/index.ts`);
      }
      if (reasons.length > 0) violations.push({ file, target, reason: reasons.join('; ') });
    }
  }
  return violations;
}

/** Reads src/**\/*.ts under `root` into the map checkImports takes. */
export function readTree(root: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' }).sort()) {
    if (!entry.endsWith('.ts')) continue;
    files.set(`src/${entry.split(sep).join('/')}`, readFileSync(join(root, 'src', entry), 'utf8'));
  }
  return files;
}

function main(): void {
  const files = readTree(fileURLToPath(new URL('..', import.meta.url)));
  const violations = checkImports(files);
  for (const v of violations) console.error(formatViolation(v));
  console.log(`layers: ${files.size} files checked, ${violations.length} violations`);
  if (violations.length > 0) process.exitCode = 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
