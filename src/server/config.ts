/**
 * The configuration of `tessera serve`: one zod schema with the defaults, read from a JSON or YAML
 * file and/or command-line flags (flags win), validated with one message per bad field that names
 * the field, what was expected and what was given.
 */
import { readFile } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { DuplicatePolicy } from '../archive/index.ts';
import { DicomError } from '../core/index.ts';

export const DUPLICATE_POLICIES = [
  'reject',
  'accept-if-identical',
  'overwrite',
] as const satisfies readonly DuplicatePolicy[];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Our receive limit for one PDU: we buffer at most one, so it bounds memory per association. */
const PDU_LIMITS = { min: 4096, max: 16 * 1024 * 1024 } as const;

/** How a value given in the configuration reads in a message. */
function got(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'a list';
  return `a ${typeof value === 'object' ? 'mapping' : typeof value}`;
}

/**
 * Why `title` is not an AE title (PS3.5 Table 6.2-1, VR AE: at most 16 characters of the default
 * repertoire, no backslash or control characters; leading and trailing spaces are not significant).
 */
export function aeTitleProblem(title: string): string | undefined {
  const t = title.trim();
  if (t.length === 0 || t.length > 16 || !/^[\x20-\x7e]+$/.test(t) || t.includes('\\')) {
    return `expected an AE title (1-16 printable ASCII characters, no backslash), got ${got(title)}`;
  }
  return undefined;
}

const text = (what: string) =>
  z
    .string({
      error: (iss) => (iss.input === undefined ? 'required' : `expected ${what}, got ${got(iss.input)}`),
    })
    .trim()
    .min(1, { error: `expected ${what}, got ""` });

const aeTitle = z
  .string({
    error: (iss) => (iss.input === undefined ? 'required' : `expected an AE title, got ${got(iss.input)}`),
  })
  .transform((s, ctx) => {
    const why = aeTitleProblem(s);
    if (why) {
      ctx.issues.push({ code: 'custom', message: why, input: s });
      return z.NEVER;
    }
    return s.trim();
  });

/** An integer in [min, max] given as a number or as decimal text (command-line flags are text). */
const integer = (min: number, max: number, expected: string) =>
  z.unknown().transform((v, ctx) => {
    const n =
      typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.issues.push({
        code: 'custom',
        message: v === undefined ? 'required' : `expected ${expected}, got ${got(v)}`,
        input: v,
      });
      return z.NEVER;
    }
    return n;
  });

/** A port to listen on; 0 (not advertised in messages) picks any free port, printed at start-up. */
const listenPort = integer(0, 65535, 'a port 1-65535');
const peerPort = integer(1, 65535, 'a port 1-65535');

const bool = z.boolean({ error: (iss) => `expected true or false, got ${got(iss.input)}` });

const policy = z.enum(DUPLICATE_POLICIES, {
  error: (iss) => `expected one of ${DUPLICATE_POLICIES.join(', ')}, got ${got(iss.input)}`,
});

const peer = z.strictObject(
  { host: text('a host name or address'), port: peerPort },
  {
    error: (iss) =>
      iss.code === 'invalid_type' ? `expected { host, port }, got ${got(iss.input)}` : undefined,
  },
);

/** A mapping keyed by AE title (keys checked like AE titles, and trimmed). */
const byAETitle = <T extends z.ZodType>(value: T) =>
  z.record(
    z.string().transform((key, ctx) => {
      const why = aeTitleProblem(key);
      if (why) {
        ctx.issues.push({ code: 'custom', message: why, input: key });
        return z.NEVER;
      }
      return key.trim();
    }),
    value,
    {
      error: (iss) =>
        iss.code === 'invalid_type'
          ? `expected a mapping from AE title to a value, got ${got(iss.input)}`
          : undefined,
    },
  );

export const configSchema = z.strictObject(
  {
    /** Where the index and the instances live (`index.sqlite`, `blobs/`, `tmp/`). */
    dataDir: text('a folder path').default('./data'),
    /** The index: `sqlite` (in dataDir) or a PostgreSQL URL (`postgres://user:pass@host:5432/db`). */
    index: z
      .string({ error: (iss) => `expected sqlite or a postgres:// URL, got ${got(iss.input)}` })
      .refine((v) => v === 'sqlite' || /^postgres(ql)?:\/\/\S+$/u.test(v), {
        error: (iss) => `expected sqlite or a postgres:// URL, got ${got(iss.input)}`,
      })
      .default('sqlite'),
    /**
     * PostgreSQL index: how long a write waits for a lock another node holds before it fails (and a
     * session idle inside a transaction is ended after twice that). SQLite: unused.
     */
    indexLockTimeoutMs: integer(100, 3_600_000, 'a duration in milliseconds (100-3600000)').default(30_000),
    /** The blobs: a folder (default: dataDir; a shared volume for several nodes) or `s3://bucket/prefix`. */
    blobs: text('a folder path or an s3://bucket/prefix URL')
      .refine((v) => !v.startsWith('s3:') || /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/\S*)?$/u.test(v), {
        error: 'expected s3://bucket[/prefix] with a valid bucket name',
      })
      .optional(),
    aeTitle: aeTitle.default('TESSERA'),
    dimsePort: listenPort.default(11112),
    httpPort: listenPort.default(8080),
    host: text('a host name or address').default('127.0.0.1'),
    /** Known remote AEs (the destinations of C-MOVE). */
    peers: byAETitle(peer).default({}),
    /** Calling AE titles allowed to associate; absent: any. */
    callingAETitles: z
      .array(aeTitle, { error: (iss) => `expected a list of AE titles, got ${got(iss.input)}` })
      .min(1, { error: 'expected at least one AE title (leave the field out to accept any calling AE)' })
      .optional(),
    /**
     * Answer a stored instance only once it is on disk (fsync of the blob, its folder and the index).
     * `false`: answered once the operating system has it, as DCMTK's storescp does: a crash or kill -9
     * of Tessera still loses nothing, a power loss or kernel crash may lose the last seconds.
     */
    fsync: bool.default(true),
    /** Accept any called AE title, not only `aeTitle`. */
    anyCalledAETitle: bool.default(false),
    /** Also accept SOP classes the UID registry does not know (private storage classes). */
    acceptUnknownSopClasses: bool.default(false),
    /** What a SOP Instance UID received again does. */
    duplicates: policy.default('accept-if-identical'),
    /** `duplicates` per calling AE title. */
    duplicatesByAE: byAETitle(policy).default({}),
    logLevel: z
      .enum(LOG_LEVELS, { error: (iss) => `expected one of ${LOG_LEVELS.join(', ')}, got ${got(iss.input)}` })
      .default('info'),
    /** The largest PDU we receive (announced in A-ASSOCIATE). */
    maxPduLength: integer(
      PDU_LIMITS.min,
      PDU_LIMITS.max,
      `a PDU length of ${PDU_LIMITS.min}-${PDU_LIMITS.max} bytes`,
    ).default(116_794),
    /** On SIGTERM, how long associations in progress may go on before they are aborted. */
    shutdownGraceMs: integer(0, 3_600_000, 'a duration in milliseconds (0-3600000)').default(10_000),
    /** Most matches one C-FIND returns; a query with more ends with A700 (refine the query). */
    maxQueryResults: integer(1, 10_000_000, 'a count (1-10000000)').default(10_000),
    /**
     * Worker threads that decode compressed frames (WADO-RS transcoding and rendering, C-GET/C-MOVE
     * decompression) off the event loop; 0 decodes on the main thread. Default: one per core beyond
     * the first (1-4), started on the first frame.
     */
    decodeWorkers: integer(0, 64, 'a count of worker threads (0-64)').optional(),
    /** Person Name matching ignores case (C-FIND, QIDO-RS). */
    caseInsensitivePersonNames: bool.default(true),
    /** The URL clients reach DICOMweb at (RetrieveURL, BulkDataURI); absent: from each request's Host. */
    publicUrl: text('a URL').optional(),
    /** CORS origins allowed on DICOMweb (`*` for any); absent: no CORS headers. */
    corsOrigins: z
      .union([z.literal('*'), z.array(text('an origin'))], {
        error: (iss) => `expected "*" or a list of origins, got ${got(iss.input)}`,
      })
      .optional(),
    /** Static bearer tokens accepted on DICOMweb; with none (and no jwksUrl) no token is asked for. */
    bearerTokens: z.array(text('a token')).optional(),
    /** JWTs accepted on DICOMweb when verified with the keys of this JWKS URL (jose). */
    jwksUrl: text('a URL').optional(),
    jwtIssuer: text('an issuer').optional(),
    jwtAudience: text('an audience').optional(),
    /** Largest STOW-RS request body, bytes. */
    maxRequestBytes: integer(1024, Number.MAX_SAFE_INTEGER, 'a size in bytes (at least 1024)').default(
      8 * 1024 ** 3,
    ),
    /** DICOMweb requests served at once (503 beyond). */
    maxConcurrentRequests: integer(1, 100_000, 'a count (1-100000)').default(64),
  },
  {
    error: (iss) =>
      iss.code === 'invalid_type' ? `expected a mapping of settings, got ${got(iss.input)}` : undefined,
  },
);

export type ServerConfig = z.output<typeof configSchema>;
/** The configuration as written in a file (every field optional). */
export type ServerConfigInput = z.input<typeof configSchema>;

/** Command-line flags, as text where the command line gives text. */
export interface ConfigFlags {
  readonly dataDir?: string | undefined;
  readonly index?: string | undefined;
  readonly indexLockTimeoutMs?: string | number | undefined;
  readonly blobs?: string | undefined;
  readonly aeTitle?: string | undefined;
  readonly dimsePort?: string | number | undefined;
  readonly httpPort?: string | number | undefined;
  readonly host?: string | undefined;
  /** `AE=HOST:PORT`, repeatable. */
  readonly peers?: readonly string[] | undefined;
  readonly callingAETitles?: readonly string[] | undefined;
  readonly anyCalledAETitle?: boolean | undefined;
  readonly fsync?: boolean | undefined;
  readonly acceptUnknownSopClasses?: boolean | undefined;
  readonly duplicates?: string | undefined;
  readonly logLevel?: string | undefined;
  readonly maxPduLength?: string | number | undefined;
  readonly shutdownGraceMs?: string | number | undefined;
  readonly maxQueryResults?: string | number | undefined;
  readonly decodeWorkers?: string | number | undefined;
  readonly publicUrl?: string | undefined;
  /** `*` alone, or origins. */
  readonly corsOrigins?: '*' | readonly string[] | undefined;
  readonly maxRequestBytes?: string | number | undefined;
  readonly maxConcurrentRequests?: string | number | undefined;
}

/** The command-line flag of each field, for messages. */
export const FLAG_NAMES: Readonly<Record<keyof ConfigFlags, string>> = {
  dataDir: '--data-dir',
  index: '--index',
  indexLockTimeoutMs: '--index-lock-timeout',
  blobs: '--blobs',
  aeTitle: '--ae-title',
  dimsePort: '--dimse-port',
  httpPort: '--http-port',
  host: '--host',
  peers: '--peer',
  callingAETitles: '--calling-ae',
  anyCalledAETitle: '--any-called-ae',
  fsync: '--no-fsync',
  acceptUnknownSopClasses: '--accept-unknown-sop-classes',
  duplicates: '--duplicates',
  logLevel: '--log-level',
  maxPduLength: '--max-pdu',
  shutdownGraceMs: '--shutdown-grace',
  maxQueryResults: '--max-query-results',
  decodeWorkers: '--decode-workers',
  publicUrl: '--public-url',
  corsOrigins: '--cors-origin',
  maxRequestBytes: '--max-request-bytes',
  maxConcurrentRequests: '--max-concurrent-requests',
};

export interface ConfigIssue {
  /** The field, e.g. `dimsePort`, `peers.PACS.port`, `callingAETitles[1]`. */
  readonly path: string;
  readonly message: string;
}

/** The configuration is invalid; `issues` has one entry per bad field, and the message lists them all. */
export class ConfigError extends DicomError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], where?: string) {
    const list = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
    super('ERR_CONFIG_INVALID', `invalid configuration${where ? ` (${where})` : ''}: ${list}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_$][\w$]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out;
}

const FIELDS: readonly string[] = Object.keys(configSchema.shape);

function issuesOf(
  error: z.ZodError,
  origin: (path: readonly PropertyKey[]) => string | undefined,
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const push = (path: readonly PropertyKey[], message: string): void => {
    const from = origin(path);
    out.push({ path: formatPath(path), message: from ? `${message} (${from})` : message });
  };
  for (const issue of error.issues) {
    if (issue.code === 'invalid_key') {
      // A record key that is not an AE title: the key's own issue says why.
      for (const inner of issue.issues) push(issue.path, inner.message);
    } else if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const near =
          issue.path.length === 0 ? FIELDS.find((f) => f.toLowerCase() === key.toLowerCase()) : undefined;
        push([...issue.path, key], `unknown field${near ? ` (did you mean ${near}?)` : ''}`);
      }
    } else {
      push(issue.path, issue.message);
    }
  }
  return out;
}

/** Validates a configuration object (as read from a file, flags already merged); throws ConfigError. */
export function parseConfig(input: unknown, where?: string): ServerConfig {
  const r = configSchema.safeParse(input);
  if (!r.success)
    throw new ConfigError(
      issuesOf(r.error, () => undefined),
      where,
    );
  return r.data;
}

/**
 * `AE=HOST:PORT` (IPv6 in brackets: `PACS=[::1]:104`) as a peer entry; the AE title and port are
 * checked by the schema afterwards, so that their messages are the same as for a config file.
 */
export function parsePeerFlag(flag: string): { ae: string; host: string; port: string } | undefined {
  const m = /^([^=]*)=(?:\[([^\]]*)\]|([^:]*)):([^:]*)$/.exec(flag);
  if (!m) return undefined;
  return { ae: m[1]!, host: m[2] ?? m[3] ?? '', port: m[4]! };
}

/** What `duplicates` applies to a calling AE title. */
export function duplicatePolicyFor(config: ServerConfig): (callingAETitle: string) => DuplicatePolicy {
  return (calling) => config.duplicatesByAE[calling.trim()] ?? config.duplicates;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function lineAndColumn(text: string, position: number): string {
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  return `line ${line}, column ${position - before.lastIndexOf('\n')}`;
}

async function readConfigFile(file: string): Promise<unknown> {
  const ext = extname(file).toLowerCase();
  const bad = (why: string): never => {
    throw new ConfigError([{ path: '', message: `config file ${file}: ${why}` }]);
  };
  if (ext !== '.json' && ext !== '.yaml' && ext !== '.yml') bad('expected a .json, .yaml or .yml file');
  let source: string;
  try {
    source = await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return bad(`cannot read it (${e.code ?? e.message})`);
  }
  if (ext === '.json') {
    try {
      return JSON.parse(source) as unknown;
    } catch (err) {
      const msg = (err as Error).message;
      const at = /position (\d+)/.exec(msg);
      return bad(`not valid JSON: ${msg}${at ? ` (${lineAndColumn(source, Number(at[1]))})` : ''}`);
    }
  }
  try {
    return parseYaml(source) ?? {};
  } catch (err) {
    return bad(`not valid YAML: ${((err as Error).message.split('\n')[0] ?? '').trim()}`);
  }
}

/**
 * The server configuration: the file (JSON or YAML by extension) if given, the flags over it, then
 * defaults; validated. `dataDir` comes back absolute: relative to the config file's folder when the
 * file sets it, to the working directory otherwise. Throws ConfigError (`ERR_CONFIG_INVALID`).
 */
export async function loadConfig(options: {
  readonly file?: string | undefined;
  readonly flags?: ConfigFlags;
  readonly cwd?: string;
}): Promise<ServerConfig> {
  const cwd = options.cwd ?? process.cwd();
  const flags = options.flags ?? {};
  const file = options.file === undefined ? undefined : resolve(cwd, options.file);
  const fromFile = file === undefined ? {} : await readConfigFile(file);
  if (!isMapping(fromFile)) {
    throw new ConfigError([
      { path: '', message: `config file ${file}: expected a mapping of settings, got ${got(fromFile)}` },
    ]);
  }
  const merged: Record<string, unknown> = { ...fromFile };
  const fromFlags = new Set<string>();
  const flagPeers = new Set<string>();
  const early: ConfigIssue[] = [];
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined || key === 'peers') continue;
    merged[key] = Array.isArray(value) ? [...(value as unknown[])] : value;
    fromFlags.add(key);
  }
  if (flags.peers && flags.peers.length > 0) {
    const peers: Record<string, unknown> = isMapping(fromFile.peers) ? { ...fromFile.peers } : {};
    for (const text of flags.peers) {
      const p = parsePeerFlag(text);
      if (!p) {
        early.push({
          path: 'peers',
          message: `expected AE=HOST:PORT (e.g. PACS=10.0.0.5:104), got ${got(text)} (from --peer)`,
        });
        continue;
      }
      if (flagPeers.has(p.ae)) {
        early.push({ path: formatPath(['peers', p.ae]), message: 'given twice (from --peer)' });
        continue;
      }
      flagPeers.add(p.ae);
      peers[p.ae] = { host: p.host, port: p.port };
    }
    merged.peers = peers;
  }
  const r = configSchema.safeParse(merged);
  const issues = [
    ...early,
    ...(r.success
      ? []
      : issuesOf(r.error, ([field, key]) => {
          if (typeof field !== 'string') return undefined;
          const flag =
            field === 'peers' ? typeof key === 'string' && flagPeers.has(key) : fromFlags.has(field);
          if (flag) return `from ${FLAG_NAMES[field as keyof ConfigFlags]}`;
          return file !== undefined && field in fromFile ? `in ${file}` : undefined;
        })),
  ];
  if (!r.success || issues.length > 0) throw new ConfigError(issues);
  const config = r.data;
  const base = !fromFlags.has('dataDir') && 'dataDir' in fromFile && file !== undefined ? dirname(file) : cwd;
  return { ...config, dataDir: resolve(base, config.dataDir) };
}
