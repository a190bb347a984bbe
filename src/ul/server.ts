import { createServer, type Server } from 'node:net';
import { Association } from './association.ts';
import type { AcceptorPolicy } from './negotiation.ts';

export interface ListenOptions extends AcceptorPolicy {
  readonly host: string;
  readonly port: number;
  readonly artimMs?: number;
  /** Called for each established association. */
  readonly onAssociation: (association: Association) => void;
}

export interface Listener {
  readonly port: number;
  /** Stops accepting; resolves when every association has ended (or after `graceMs`, aborting the rest). */
  close(graceMs?: number): Promise<void>;
}

/**
 * Accepts associations on a TCP port (the acceptor side of PS3.8): one Association per connection,
 * each independent, so a malformed PDU on one aborts only that one.
 */
export async function listen(options: ListenOptions): Promise<Listener> {
  const live = new Set<Association>();
  const server: Server = createServer({ noDelay: true }, (socket) => {
    const a = Association.accept(socket, options, options.onAssociation);
    live.add(a);
    void a.closed.then(() => live.delete(a));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    port,
    async close(graceMs = 10_000): Promise<void> {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const all = Promise.all([...live].map((a) => a.closed));
      const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([all, timer]);
      for (const a of live) a.abort();
      await Promise.race([all, new Promise((r) => setTimeout(r, 1000).unref())]);
      await closed;
    },
  };
}
