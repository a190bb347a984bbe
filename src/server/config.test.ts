import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ConfigError,
  type ConfigFlags,
  duplicatePolicyFor,
  loadConfig,
  parseConfig,
  parsePeerFlag,
} from './config.ts';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-config-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function file(name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

/** The ConfigError of loading, with its message. */
async function failure(options: { file?: string; flags?: ConfigFlags }): Promise<ConfigError> {
  try {
    await loadConfig({ cwd: dir, ...options });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    return err;
  }
  assert.fail('the configuration was accepted');
}

describe('loadConfig', () => {
  test('defaults: everything has one; dataDir is made absolute', async () => {
    const c = await loadConfig({ cwd: dir });
    assert.deepEqual(c, {
      dataDir: join(dir, 'data'),
      index: 'sqlite',
      aeTitle: 'TESSERA',
      dimsePort: 11112,
      httpPort: 8080,
      host: '127.0.0.1',
      peers: {},
      anyCalledAETitle: false,
      fsync: true,
      acceptUnknownSopClasses: false,
      duplicates: 'accept-if-identical',
      duplicatesByAE: {},
      logLevel: 'info',
      maxPduLength: 116_794,
      shutdownGraceMs: 10_000,
      maxQueryResults: 10_000,
      indexLockTimeoutMs: 30_000,
      caseInsensitivePersonNames: true,
      maxRequestBytes: 8 * 1024 ** 3,
      maxConcurrentRequests: 64,
    });
    assert.equal(c.callingAETitles, undefined);
    assert.equal(c.bearerTokens, undefined);
    assert.equal(c.blobs, undefined);
    assert.equal(c.corsOrigins, undefined);
  });

  test('a good JSON file', async () => {
    const path = await file(
      'good.json',
      JSON.stringify({
        dataDir: 'archive',
        aeTitle: 'PACS1',
        dimsePort: 104,
        httpPort: 8042,
        host: '0.0.0.0',
        peers: { VIEWER: { host: 'viewer.local', port: 11113 } },
        callingAETitles: ['CT1', 'MR1'],
        anyCalledAETitle: true,
        duplicates: 'overwrite',
        duplicatesByAE: { CT1: 'reject' },
        logLevel: 'debug',
        maxPduLength: 65536,
        shutdownGraceMs: 30000,
      }),
    );
    const c = await loadConfig({ file: path, cwd: '/' });
    assert.equal(c.dataDir, join(dir, 'archive'), 'relative to the config file');
    assert.equal(c.aeTitle, 'PACS1');
    assert.equal(c.dimsePort, 104);
    assert.equal(c.httpPort, 8042);
    assert.equal(c.host, '0.0.0.0');
    assert.deepEqual(c.peers, { VIEWER: { host: 'viewer.local', port: 11113 } });
    assert.deepEqual(c.callingAETitles, ['CT1', 'MR1']);
    assert.equal(c.anyCalledAETitle, true);
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.maxPduLength, 65536);
    assert.equal(c.shutdownGraceMs, 30000);
    const policy = duplicatePolicyFor(c);
    assert.equal(policy('CT1'), 'reject');
    assert.equal(policy('MR1'), 'overwrite');
  });

  test('a good YAML file (.yaml and .yml); AE titles trimmed', async () => {
    const yaml = [
      '# the archive',
      'aeTitle: " ARCHIVE "',
      'dimsePort: "11112"',
      'peers:',
      '  VIEWER:',
      '    host: 10.0.0.7',
      '    port: 104',
      '  " SPACED ": { host: h, port: 1 }',
      'callingAETitles: [CT1]',
      'duplicatesByAE:',
      '  CT1: accept-if-identical',
      '',
    ].join('\n');
    for (const name of ['good.yaml', 'good.yml']) {
      const c = await loadConfig({ file: await file(name, yaml), cwd: dir });
      assert.equal(c.aeTitle, 'ARCHIVE');
      assert.equal(c.dimsePort, 11112);
      assert.deepEqual(c.peers, { VIEWER: { host: '10.0.0.7', port: 104 }, SPACED: { host: 'h', port: 1 } });
      assert.deepEqual(c.callingAETitles, ['CT1']);
      assert.deepEqual(c.duplicatesByAE, { CT1: 'accept-if-identical' });
      assert.equal(c.dataDir, join(dir, 'data'), 'the default, relative to the working directory');
    }
    const empty = await loadConfig({ file: await file('empty.yaml', '# nothing\n'), cwd: dir });
    assert.equal(empty.aeTitle, 'TESSERA');
  });

  test('flags override the file; peers from flags are added to the file ones (a flag wins per AE)', async () => {
    const path = await file(
      'base.yaml',
      'aeTitle: FROMFILE\ndimsePort: 104\nlogLevel: warn\ndataDir: filedata\ncallingAETitles: [A]\n' +
        'peers:\n  KEEP: { host: keep, port: 1 }\n  SAME: { host: old, port: 2 }\n',
    );
    const c = await loadConfig({
      file: path,
      cwd: '/work',
      flags: {
        aeTitle: 'FROMFLAG',
        dimsePort: '4242',
        dataDir: 'flagdata',
        callingAETitles: ['B', 'C'],
        anyCalledAETitle: true,
        peers: ['SAME=new:3', 'ADDED=[::1]:4'],
        logLevel: undefined,
      },
    });
    assert.equal(c.aeTitle, 'FROMFLAG');
    assert.equal(c.dimsePort, 4242);
    assert.equal(c.logLevel, 'warn', 'an absent flag leaves the file value');
    assert.equal(c.dataDir, '/work/flagdata', 'a flag path is relative to the working directory');
    assert.deepEqual(c.callingAETitles, ['B', 'C'], 'a list flag replaces the list');
    assert.equal(c.anyCalledAETitle, true);
    assert.deepEqual(c.peers, {
      KEEP: { host: 'keep', port: 1 },
      SAME: { host: 'new', port: 3 },
      ADDED: { host: '::1', port: 4 },
    });
  });

  test('the message names each bad field, why, and what was given', async () => {
    const cases: [ConfigFlags, string][] = [
      [{ dimsePort: 'abc' }, 'dimsePort: expected a port 1-65535, got "abc" (from --dimse-port)'],
      [{ httpPort: '70000' }, 'httpPort: expected a port 1-65535, got "70000" (from --http-port)'],
      [
        { aeTitle: 'A\\B' },
        'aeTitle: expected an AE title (1-16 printable ASCII characters, no backslash), got "A\\\\B"',
      ],
      [{ aeTitle: 'SEVENTEEN_CHARS_X' }, 'aeTitle: expected an AE title'],
      [{ aeTitle: '   ' }, 'aeTitle: expected an AE title'],
      [{ callingAETitles: ['OK', 'ÄRZTE'] }, 'callingAETitles[1]: expected an AE title'],
      [
        { duplicates: 'sometimes' },
        'duplicates: expected one of reject, accept-if-identical, overwrite, got "sometimes" (from --duplicates)',
      ],
      [{ logLevel: 'loud' }, 'logLevel: expected one of fatal, error, warn, info, debug, trace, got "loud"'],
      [{ maxPduLength: '100' }, 'maxPduLength: expected a PDU length of 4096-16777216 bytes, got "100"'],
      [{ dataDir: ' ' }, 'dataDir: expected a folder path, got ""'],
      [{ peers: ['PACS=pacs:abc'] }, 'peers.PACS.port: expected a port 1-65535, got "abc" (from --peer)'],
      [{ peers: ['PACS=:104'] }, 'peers.PACS.host: expected a host name or address, got ""'],
      [
        { peers: ['no-equals-sign'] },
        'peers: expected AE=HOST:PORT (e.g. PACS=10.0.0.5:104), got "no-equals-sign"',
      ],
      [{ peers: ['TOO_LONG_FOR_AN_AE=h:1'] }, 'peers.TOO_LONG_FOR_AN_AE: expected an AE title'],
      [{ peers: ['P=h:1', 'P=h:2'] }, 'peers.P: given twice (from --peer)'],
    ];
    for (const [flags, expected] of cases) {
      const err = await failure({ flags });
      assert.ok(
        err.message.includes(expected),
        `${JSON.stringify(flags)}:\n  ${err.message}\n  lacks ${expected}`,
      );
      assert.equal(err.issues.length, 1, err.message);
    }
  });

  test('every bad field of a file is listed, with where it comes from', async () => {
    const path = await file(
      'bad.yaml',
      [
        'dimseport: 104', // a typo
        'dimsePort: -1',
        'anyCalledAETitle: "yes"',
        'callingAETitles: []',
        'peers:',
        '  PACS: { host: pacs, port: 0 }',
        '  VIEWER: 12',
        '  NOPORT: { host: x }',
        '  EXTRA: { host: x, port: 1, ae: X }',
        'duplicatesByAE: { CT1: never }',
        '',
      ].join('\n'),
    );
    const err = await failure({ file: path });
    const messages = err.issues.map((i) => `${i.path}: ${i.message}`);
    const expected = [
      `dimsePort: expected a port 1-65535, got -1 (in ${path})`,
      `peers.PACS.port: expected a port 1-65535, got 0 (in ${path})`,
      `peers.VIEWER: expected { host, port }, got 12 (in ${path})`,
      `peers.NOPORT.port: required (in ${path})`,
      `peers.EXTRA.ae: unknown field (in ${path})`,
      `callingAETitles: expected at least one AE title (leave the field out to accept any calling AE) (in ${path})`,
      `anyCalledAETitle: expected true or false, got "yes" (in ${path})`,
      `duplicatesByAE.CT1: expected one of reject, accept-if-identical, overwrite, got "never" (in ${path})`,
      `dimseport: unknown field (did you mean dimsePort?) (in ${path})`,
    ];
    assert.deepEqual(new Set(messages), new Set(expected));
    assert.match(err.message, /^invalid configuration: /);
    assert.ok(!err.message.includes('\n'), 'one line');
  });

  test('files that cannot be used', async () => {
    const cases: [string, string, RegExp][] = [
      ['broken.json', '{ "aeTitle": "X", }', /config file .*broken\.json: not valid JSON: .*line 1, column/],
      ['broken.yaml', 'aeTitle: [unclosed\n', /config file .*broken\.yaml: not valid YAML: /],
      ['list.yaml', '- a\n- b\n', /config file .*list\.yaml: expected a mapping of settings, got a list/],
      ['config.toml', 'aeTitle = "X"', /config file .*config\.toml: expected a \.json, \.yaml or \.yml file/],
    ];
    for (const [name, content, expected] of cases) {
      const err = await failure({ file: await file(name, content) });
      assert.match(err.message, expected);
    }
    assert.match((await failure({ file: join(dir, 'missing.json') })).message, /cannot read it \(ENOENT\)/);
  });
});

test('parsePeerFlag: AE=HOST:PORT, IPv6 in brackets', () => {
  assert.deepEqual(parsePeerFlag('PACS=10.0.0.5:104'), { ae: 'PACS', host: '10.0.0.5', port: '104' });
  assert.deepEqual(parsePeerFlag('VIEWER=viewer.example.org:11112'), {
    ae: 'VIEWER',
    host: 'viewer.example.org',
    port: '11112',
  });
  assert.deepEqual(parsePeerFlag('V6=[fe80::1]:104'), { ae: 'V6', host: 'fe80::1', port: '104' });
  assert.equal(parsePeerFlag('PACS'), undefined);
  assert.equal(parsePeerFlag('PACS=host'), undefined);
  assert.equal(parsePeerFlag('PACS=::1:104'), undefined, 'IPv6 without brackets is ambiguous');
});

test('parseConfig validates an object (programmatic use)', () => {
  assert.equal(parseConfig({ dimsePort: 0, httpPort: 0 }).dimsePort, 0, '0: any free port');
  assert.throws(() => parseConfig({ dimsePort: 1.5 }), /dimsePort: expected a port 1-65535, got 1\.5/);
  assert.throws(() => parseConfig('nope'), /expected a mapping of settings, got "nope"/);
});

test('scale-out locations: index sqlite or postgres://, blobs a folder or s3://bucket/prefix', () => {
  const c = parseConfig({ index: 'postgres://tessera:pw@db:5432/pacs', blobs: 's3://pacs-archive/prod' });
  assert.equal(c.index, 'postgres://tessera:pw@db:5432/pacs');
  assert.equal(c.blobs, 's3://pacs-archive/prod');
  assert.equal(parseConfig({ blobs: '/mnt/shared' }).blobs, '/mnt/shared');
  assert.throws(
    () => parseConfig({ index: 'mysql://db/pacs' }),
    /index: expected sqlite or a postgres:\/\/ URL, got "mysql:\/\/db\/pacs"/,
  );
  assert.throws(
    () => parseConfig({ blobs: 's3://Bad_Bucket' }),
    /blobs: expected s3:\/\/bucket\[\/prefix\] with a valid bucket name/,
  );
});

test('DICOMweb flags: public URL, CORS origins (or *), limits', async () => {
  const c = await loadConfig({
    flags: {
      publicUrl: 'https://pacs.example.org/dicomweb',
      corsOrigins: ['https://viewer.example.org'],
      maxConcurrentRequests: '8',
    },
  });
  assert.equal(c.publicUrl, 'https://pacs.example.org/dicomweb');
  assert.deepEqual(c.corsOrigins, ['https://viewer.example.org']);
  assert.equal(c.maxConcurrentRequests, 8);
  assert.equal((await loadConfig({ flags: { corsOrigins: '*' } })).corsOrigins, '*');
  await assert.rejects(
    loadConfig({ flags: { maxRequestBytes: '12' } }),
    /maxRequestBytes: expected a size in bytes \(at least 1024\), got "12" \(from --max-request-bytes\)/,
  );
});

test('PostgreSQL index lock timeout: from the flag, checked', async () => {
  assert.equal((await loadConfig({ flags: { indexLockTimeoutMs: '5000' } })).indexLockTimeoutMs, 5000);
  await assert.rejects(
    loadConfig({ flags: { indexLockTimeoutMs: '5' } }),
    /indexLockTimeoutMs: expected a duration in milliseconds \(100-3600000\), got "5" \(from --index-lock-timeout\)/,
  );
});
