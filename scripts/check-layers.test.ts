import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkImports, formatViolation, importSpecifiers, readTree } from './check-layers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The formatted violations of a tree given as path -> source. */
function check(files: Record<string, string>): string[] {
  return checkImports(new Map(Object.entries(files))).map(formatViolation);
}

test('an allowed import through index.ts passes, and so does any import inside a module', () => {
  assert.deepEqual(
    check({
      'src/codec/part10.ts': [
        "import { CodecError, type Tag } from '../core/index.ts';",
        "import type { VR } from '../core/index.ts';",
        "export { lookupTag } from '../dictionary/index.ts';",
        "import { TokenReader } from './tokens.ts';",
        "import { open } from 'node:fs/promises';",
        "import fc from 'fast-check';",
      ].join('\n'),
      'src/codec/tokens.ts': "import { ELEMENTS } from './generated/deep/inside/x.ts';",
      'src/cli/main.ts': "const server = await import('../server/index.ts');",
      'src/server/wiring.ts': "import { Association } from '../ul/index.ts';",
    }),
    [],
  );
});

test('a deep import into another module fails', () => {
  assert.deepEqual(check({ 'src/codec/dataset.ts': "import { Tag } from '../core/tag.ts';" }), [
    'src/codec/dataset.ts: imports src/core/tag.ts — deep import: use src/core/index.ts',
  ]);
  assert.deepEqual(check({ 'src/dictionary/index.ts': "export type { VR } from '../core/vr.ts';" }), [
    'src/dictionary/index.ts: imports src/core/vr.ts — deep import: use src/core/index.ts',
  ]);
});

test('an upward import (codec -> ul) fails', () => {
  assert.deepEqual(check({ 'src/codec/x.ts': "import { type Pdu } from '../ul/index.ts';" }), [
    'src/codec/x.ts: imports src/ul/index.ts — codec may not import ul (allowed: dictionary, core)',
  ]);
});

test('cli -> archive fails, and a deep upward import reports both reasons on one line', () => {
  assert.deepEqual(check({ 'src/cli/serve.ts': "import type { BlobStore } from '../archive/index.ts';" }), [
    'src/cli/serve.ts: imports src/archive/index.ts — cli may not import archive (allowed: server, scp, dimse, client, codec, dictionary, core)',
  ]);
  assert.deepEqual(check({ 'src/core/a.ts': "const m = await import('../codec/part10.ts');" }), [
    'src/core/a.ts: imports src/codec/part10.ts — core may not import codec (allowed: nothing); deep import: use src/codec/index.ts',
  ]);
});

test('modules outside the table, files outside modules and imports leaving src/ fail', () => {
  assert.deepEqual(
    check({
      'src/util/a.ts': "import { x } from '../core/index.ts';",
      'src/codec/b.ts': "import { y } from '../util/index.ts';\nimport z from '../../test/fixtures/z.json';",
      'src/loose.ts': '',
      'src/core/c.ts': "import { gen } from '../../scripts/gen-dictionary.ts';",
    }),
    [
      "src/util/a.ts: module 'util' is not in the layer table",
      "src/codec/b.ts: imports src/util/index.ts — module 'util' is not in the layer table",
      'src/loose.ts: not inside a module folder src/<module>/',
      'src/core/c.ts: imports scripts/gen-dictionary.ts — outside src/: only test/ may be imported',
    ],
  );
});

test('comments, strings, template literals and regular expressions are not imports', () => {
  const source = [
    "// import { a } from '../ul/index.ts';",
    "/* export * from '../ul/index.ts'; */",
    'const s = "import x from \'../ul/index.ts\'";',
    "const t = `import('../ul/index.ts')`;",
    "const r = /'/g; const q = a / b / c; const u = x.import('../ul/index.ts');",
    "import { real } from './real.ts';",
    "import './side-effect.ts';",
    "export type { T } from './types.ts';",
  ].join('\n');
  assert.deepEqual(importSpecifiers(source), ['./real.ts', './side-effect.ts', './types.ts']);
});

test('the current tree passes', () => {
  const files = readTree(ROOT);
  assert.ok(files.has('src/core/index.ts'));
  assert.deepEqual(checkImports(files).map(formatViolation), []);
});

test('run as a script it prints the summary and exits 0 on the current tree', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'scripts/check-layers.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.match(out, /^layers: \d+ files checked, 0 violations\n$/);
});
