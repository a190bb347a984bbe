import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listen, UL_DEFAULTS } from '../ul/index.ts';
import { Dimse, type Handlers } from './service.ts';
import { STATUS } from './status.ts';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

async function server(handlers: Handlers) {
  return listen({
    host: '127.0.0.1',
    port: 0,
    aeTitle: 'TESSERA',
    calledAETitles: ['TESSERA'],
    maxPduLength: 16384,
    implementationClassUid: UL_DEFAULTS.implementationClassUid,
    implementationVersionName: UL_DEFAULTS.implementationVersionName,
    maxOpsPerformed: 4,
    transferSyntaxes: () => [EXPLICIT_LE],
    onAssociation: (a) => {
      new Dimse(a, handlers);
    },
  });
}

test('C-CANCEL reaches the handler of the request it names; the request answers Cancel', async () => {
  let sawAbort = false;
  const l = await server({
    'C-STORE-RQ': async ({ signal, dataset }) => {
      dataset?.resume();
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      sawAbort = signal.aborted;
      return { status: STATUS.Cancel };
    },
  });
  try {
    const dimse = await Dimse.connect({
      host: '127.0.0.1',
      port: l.port,
      callingAETitle: 'SCU',
      calledAETitle: 'TESSERA',
      contexts: [{ abstractSyntax: CT, transferSyntaxes: [EXPLICIT_LE] }],
      timeoutMs: 5000,
    });
    const context = dimse.contextFor(CT)!;
    const pending = dimse.store(context, { sopClassUid: CT, sopInstanceUid: '1.2.3' }, Buffer.alloc(64));
    await new Promise((r) => setTimeout(r, 50));
    await dimse.cancel(context, 1);
    const rsp = await pending;
    assert.equal(rsp.status, STATUS.Cancel);
    assert.equal(sawAbort, true);
    await dimse.release();
  } finally {
    await l.close(1000);
  }
});

test('a handler that throws answers with a failure status and the association goes on', async () => {
  const l = await server({
    'C-STORE-RQ': async () => {
      throw new Error('disk on fire');
    },
    'C-ECHO-RQ': async () => ({ status: 0 }),
  });
  try {
    const dimse = await Dimse.connect({
      host: '127.0.0.1',
      port: l.port,
      callingAETitle: 'SCU',
      calledAETitle: 'TESSERA',
      contexts: [
        { abstractSyntax: CT, transferSyntaxes: [EXPLICIT_LE] },
        { abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: [EXPLICIT_LE] },
      ],
      timeoutMs: 5000,
    });
    const rsp = await dimse.store(
      dimse.contextFor(CT)!,
      { sopClassUid: CT, sopInstanceUid: '1.2.3' },
      Buffer.alloc(10),
    );
    assert.equal(rsp.status, STATUS.CannotUnderstand);
    assert.equal(rsp.command.errorComment, 'disk on fire');
    assert.equal(await dimse.echo(), 0);
    await dimse.release();
  } finally {
    await l.close(1000);
  }
});
