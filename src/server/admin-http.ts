/**
 * The admin endpoints of `tessera serve` on node:http (four fixed GET routes need no framework), and
 * the mount point of the DICOMweb application (fastify, under its base path) on the same port:
 *   GET /healthz   200 {status:'ok'} while the process runs (liveness)
 *   GET /readyz    200 when the DIMSE listener is up and the index answers; 503 otherwise (readiness)
 *   GET /stats     index counts (with bytes), disk usage of the blob volume, open associations
 *   GET /metrics   Prometheus text format (prom-client), fed from the diagnostics channels
 * Unknown paths answer 404, other methods 405.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { statusCategory } from '../dimse/index.ts';
import {
  type AssociationMessage,
  CHANNELS,
  type DimseRequestMessage,
  type IngestMessage,
  on,
} from './logging.ts';

/** Prometheus metrics of the archive, fed from the diagnostics channels by `subscribe()`. */
export class ArchiveMetrics {
  readonly registry = new Registry();
  readonly associations = new Counter({
    name: 'tessera_associations_total',
    help: 'Associations requested from the SCP, by result (accepted, rejected)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly instancesStored = new Counter({
    name: 'tessera_instances_stored_total',
    help: 'Instances through the ingest pipeline, by C-STORE status (0000 stored; others: warnings, failures)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly bytesReceived = new Counter({
    name: 'tessera_bytes_received_total',
    help: 'Data set bytes received in C-STORE requests',
    registers: [this.registry],
  });
  readonly dimseErrors = new Counter({
    name: 'tessera_dimse_errors_total',
    help: 'DIMSE requests answered with a failure status',
    registers: [this.registry],
  });
  readonly storeDuration = new Histogram({
    name: 'tessera_store_duration_seconds',
    help: 'C-STORE requests from the command to the response (data set received and durable)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly associationsOpen = new Gauge({
    name: 'tessera_associations_open',
    help: 'Associations accepted and not yet closed',
    registers: [this.registry],
  });
  /** Ids of the associations accepted and still open. */
  private readonly open = new Set<number>();

  constructor(options: { readonly processMetrics?: boolean } = {}) {
    // Known label values start at 0, so that rate() sees their first increase.
    this.associations.inc({ result: 'accepted' }, 0);
    this.associations.inc({ result: 'rejected' }, 0);
    this.instancesStored.inc({ status: '0000' }, 0);
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  get openAssociations(): number {
    return this.open.size;
  }

  /** Subscribes to the channels; returns the function that unsubscribes. */
  subscribe(): () => void {
    const offs = [
      on<AssociationMessage>(CHANNELS.association, (m) => {
        if (m.event === 'established' && m.role === 'acceptor') {
          this.associations.inc({ result: 'accepted' });
          this.open.add(m.association);
        } else if (m.event === 'rejected') {
          this.associations.inc({ result: 'rejected' });
        } else if (m.event === 'closed') {
          this.open.delete(m.association);
        } else return;
        this.associationsOpen.set(this.open.size);
      }),
      on<DimseRequestMessage>(CHANNELS.dimseRequest, (m) => {
        if (m.type === 'C-STORE-RQ') this.storeDuration.observe(m.ms / 1000);
        if (statusCategory(m.status) === 'failure') this.dimseErrors.inc();
      }),
      on<IngestMessage>(CHANNELS.ingest, (m) => {
        this.instancesStored.inc({ status: m.status.toString(16).toUpperCase().padStart(4, '0') });
        // C-STORE's come with a calling AE title; STOW-RS's do not.
        if (m.source?.aeTitle !== undefined && m.bytes) this.bytesReceived.inc(m.bytes);
      }),
    ];
    return () => {
      for (const off of offs) off();
    };
  }
}

export interface Readiness {
  readonly ready: boolean;
  /** Each check and whether it passed (or why not). */
  readonly checks: Readonly<Record<string, true | string>>;
}

export interface AdminHttpOptions {
  readonly host: string;
  readonly port: number;
  readonly readiness: () => Promise<Readiness> | Readiness;
  readonly stats: () => Promise<unknown>;
  readonly metrics: Registry;
  /** Requests under `prefix` go to this handler (the DICOMweb application). */
  readonly mount?: { readonly prefix: string; handle(req: IncomingMessage, res: ServerResponse): void };
}

export interface AdminHttp {
  readonly port: number;
  /** Stops accepting, ends idle keep-alive connections, and resolves when every connection is closed. */
  close(): Promise<void>;
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

const ROUTES = ['/healthz', '/readyz', '/stats', '/metrics'] as const;
type Route = (typeof ROUTES)[number];

export async function startAdminHttp(options: AdminHttpOptions): Promise<AdminHttp> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://admin').pathname;
    const mount = options.mount;
    if (mount && (path === mount.prefix || path.startsWith(`${mount.prefix}/`)))
      return mount.handle(req, res);
    const route = ROUTES.find((r) => r === path) as Route | undefined;
    if (!route) return send(res, 404, { error: `no such endpoint: ${path}`, endpoints: ROUTES });
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(res, 405, { error: `${req.method} not allowed on ${path}` }, { allow: 'GET, HEAD' });
    }
    switch (route) {
      case '/healthz':
        return send(res, 200, { status: 'ok' });
      case '/readyz': {
        const r = await options.readiness();
        return send(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', checks: r.checks });
      }
      case '/stats':
        return send(res, 200, await options.stats());
      case '/metrics': {
        const text = await options.metrics.metrics();
        return send(res, 200, text, { 'content-type': options.metrics.contentType });
      }
    }
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: (err as Error).message });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // A request still being answered gets a moment; then every connection goes.
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      }),
  };
}
