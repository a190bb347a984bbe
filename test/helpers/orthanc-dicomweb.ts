/**
 * A real Orthanc (Debian packages `orthanc` and `orthanc-dicomweb`) with its DICOMweb plugin, started
 * on free loopback ports with a temporary configuration and storage: the peer of the DICOMweb client
 * tests (src/client/client.int.test.ts, src/cli/web.int.test.ts). Not a test file itself.
 */
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, freePort, sleep, start } from './interop.ts';

export const ORTHANC = '/usr/sbin/Orthanc';
export const ORTHANC_DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';

export interface OrthancWeb {
  readonly dir: string;
  readonly httpPort: number;
  /** The DICOMweb service root, e.g. http://127.0.0.1:PORT/dicom-web */
  readonly baseUrl: string;
  readonly child: Child;
  /** Stops Orthanc (SIGTERM, then SIGKILL) and removes its files. */
  stop(): Promise<void>;
}

export async function startOrthancWeb(name = 'tessera-dicomweb'): Promise<OrthancWeb> {
  for (const file of [ORTHANC, ORTHANC_DICOMWEB_PLUGIN]) {
    await access(file).catch(() => {
      throw new Error(
        `${file} not found: these tests need Orthanc and its DICOMweb plugin (apt-get install orthanc orthanc-dicomweb)`,
      );
    });
  }
  const dir = await mkdtemp(join(tmpdir(), 'tessera-orthanc-web-'));
  const httpPort = await freePort();
  const dicomPort = await freePort();
  const config = {
    Name: name,
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'index'),
    DicomAet: 'ORTHANC',
    DicomPort: dicomPort,
    HttpPort: httpPort,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    Plugins: [ORTHANC_DICOMWEB_PLUGIN],
    DicomWeb: { Enable: true, Root: '/dicom-web/' },
  };
  const configPath = join(dir, 'orthanc.json');
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  const child = start(ORTHANC, [configPath], { timeoutMs: 900_000 });
  let exited = false;
  child.done.then(
    () => {
      exited = true;
    },
    () => {
      exited = true;
    },
  );
  const baseUrl = `http://127.0.0.1:${httpPort}/dicom-web`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`Orthanc exited before answering:\n${child.output()}`);
    try {
      const res = await fetch(`${baseUrl}/studies`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.process.kill('SIGKILL');
      throw new Error(`Orthanc did not answer on ${baseUrl} within 30 s:\n${child.output()}`);
    }
    await sleep(100);
  }
  return {
    dir,
    httpPort,
    baseUrl,
    child,
    async stop() {
      if (!exited) {
        child.process.kill('SIGTERM');
        const timer = setTimeout(() => child.process.kill('SIGKILL'), 10_000);
        await child.done.catch(() => undefined);
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
