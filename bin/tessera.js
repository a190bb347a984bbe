#!/usr/bin/env node
// The `tessera` command. It runs dist/main.js, the esbuild bundle of src/cli/main.ts (`npm run build`,
// made by `npm install` through the `prepare` script), when that bundle is newer than every source
// file: it starts in a third of the time tsx takes to compile the sources. Otherwise (no build yet,
// or sources edited since) it runs the TypeScript sources through tsx, so it is never stale.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'main.js');

/** The newest modification time of the files under `dir`, in ms. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const t = entry.isDirectory() ? newest(path) : statSync(path).mtimeMs;
    if (t > latest) latest = t;
  }
  return latest;
}

function fresh() {
  try {
    return statSync(bundle).mtimeMs >= Math.max(newest(join(root, 'src')), statSync(join(root, 'package.json')).mtimeMs);
  } catch {
    return false;
  }
}

if (fresh()) {
  await import(pathToFileURL(bundle).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
