import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Dataset, decodeDataset, encodeDataset } from '../codec/index.ts';
import { UID } from '../dictionary/index.ts';
import { listen, UL_DEFAULTS } from '../ul/index.ts';
import {
  decodeQrExtendedNegotiation,
  encodeQrExtendedNegotiation,
  find,
  get,
  getStorageContexts,
  identifierOf,
  move,
  QR_SOP_CLASSES,
  qrContexts,
  qrSopClass,
} from './qr-scu.ts';
import { Dimse, type Handlers, type IncomingRequest } from './service.ts';
import { STATUS } from './status.ts';

const CT = UID.CTImageStorage;
const EXPLICIT_LE = UID.ExplicitVRLittleEndian;
const FIND = QR_SOP_CLASSES.STUDY_ROOT.find;

async function readIdentifier(rq: IncomingRequest): Promise<Dataset> {
  const parts: Buffer[] = [];
  for await (const c of rq.dataset!) parts.push(c as Buffer);
  return decodeDataset(Buffer.concat(parts), rq.context.transferSyntax);
}

async function server(handlers: Handlers, relational = false) {
  return listen({
    host: '127.0.0.1',
    port: 0,
    aeTitle: 'QRSCP',
    calledAETitles: ['QRSCP'],
    maxPduLength: 16384,
    implementationClassUid: UL_DEFAULTS.implementationClassUid,
    implementationVersionName: UL_DEFAULTS.implementationVersionName,
    transferSyntaxes: () => [EXPLICIT_LE, UID.ImplicitVRLittleEndian],
    roles: (_sop, asked) => asked,
    extendedNegotiation: (sop, asked) =>
      qrSopClass(sop)?.service === 'find'
        ? encodeQrExtendedNegotiation({ relational: relational && asked[0] === 1 })
        : undefined,
    onAssociation: (a) => {
      new Dimse(a, handlers);
    },
  });
}

const connect = (
  port: number,
  contexts: Parameters<typeof Dimse.connect>[0]['contexts'],
  handlers: Handlers = {},
) =>
  Dimse.connect(
    { host: '127.0.0.1', port, callingAETitle: 'SCU', calledAETitle: 'QRSCP', contexts, timeoutMs: 5000 },
    handlers,
  );

function match(name: string): Dataset {
  const ds = new Dataset();
  ds.setString(0x00100010, name);
  ds.setString(0x00080052, 'STUDY');
  return ds;
}

test('qrSopClass names the model and service of each Query/Retrieve SOP class', () => {
  assert.deepEqual(qrSopClass('1.2.840.10008.5.1.4.1.2.2.1'), { model: 'STUDY_ROOT', service: 'find' });
  assert.deepEqual(qrSopClass('1.2.840.10008.5.1.4.1.2.1.3'), { model: 'PATIENT_ROOT', service: 'get' });
  assert.deepEqual(qrSopClass('1.2.840.10008.5.1.4.1.2.3.2'), {
    model: 'PATIENT_STUDY_ONLY',
    service: 'move',
  });
  assert.equal(qrSopClass(CT), undefined);
});

test('extended negotiation bytes of Query/Retrieve round-trip (PS3.4 C.5.1.1)', () => {
  const bytes = encodeQrExtendedNegotiation({ relational: true, fuzzyPersonNames: true }, 4);
  assert.deepEqual([...bytes], [1, 0, 1, 0]);
  assert.deepEqual(decodeQrExtendedNegotiation(bytes), {
    relational: true,
    combinedDateTime: false,
    fuzzyPersonNames: true,
    timezoneAdjustment: false,
  });
  assert.equal(decodeQrExtendedNegotiation(undefined).relational, false);
  assert.equal(decodeQrExtendedNegotiation(Buffer.from([1])).combinedDateTime, false);
});

test('C-FIND: each Pending response yields its identifier, in order, then the final status; relational is negotiated', async () => {
  let asked: string | undefined;
  let relationalSeen: boolean | undefined;
  const l = await server(
    {
      'C-FIND-RQ': async (rq) => {
        const id = await readIdentifier(rq);
        asked = id.string(0x00100010);
        relationalSeen = decodeQrExtendedNegotiation(
          rq.association.info.extendedNegotiation.get(rq.context.abstractSyntax),
        ).relational;
        for (const name of ['A^ONE', 'B^TWO', 'C^THREE'])
          await rq.pending({
            status: STATUS.Pending,
            dataset: encodeDataset(match(name), rq.context.transferSyntax),
          });
        return { status: STATUS.Success };
      },
    },
    true,
  );
  try {
    const dimse = await connect(l.port, qrContexts('STUDY_ROOT', ['find'], { relational: true }));
    assert.equal(
      decodeQrExtendedNegotiation(dimse.association.info.extendedNegotiation.get(FIND)).relational,
      true,
    );
    const names: string[] = [];
    const it = find(dimse, { model: 'STUDY_ROOT', identifier: identifierOf('STUDY', [[0x00100010, 'A*']]) });
    let r = await it.next();
    while (!r.done) {
      assert.equal(r.value.status, STATUS.Pending);
      names.push(r.value.identifier.string(0x00100010) ?? '');
      r = await it.next();
    }
    assert.equal(r.value.status, STATUS.Success);
    assert.deepEqual(names, ['A^ONE', 'B^TWO', 'C^THREE']);
    assert.equal(asked, 'A*');
    assert.equal(relationalSeen, true);
    await dimse.release();
  } finally {
    await l.close(1000);
  }
});

test('C-FIND: breaking out of the loop sends C-CANCEL; the SCP stops and answers Cancel', async () => {
  let sent = 0;
  let cancelled = false;
  const l = await server({
    'C-FIND-RQ': async (rq) => {
      await readIdentifier(rq);
      for (let i = 0; i < 1000; i++) {
        if (rq.signal.aborted) {
          cancelled = true;
          return { status: STATUS.Cancel };
        }
        sent++;
        await rq.pending({
          status: STATUS.Pending,
          dataset: encodeDataset(match(`P${i}`), rq.context.transferSyntax),
        });
        await new Promise((r) => setTimeout(r, 2));
      }
      return { status: STATUS.Success };
    },
  });
  try {
    const dimse = await connect(l.port, qrContexts('STUDY_ROOT', ['find']));
    let seen = 0;
    for await (const _ of find(dimse, { model: 'STUDY_ROOT', identifier: identifierOf('STUDY', []) })) {
      if (++seen === 3) break;
    }
    assert.equal(cancelled, true);
    assert.ok(sent < 1000, `the SCP stopped early (${sent} sent)`);
    // The association is still usable after the cancelled query.
    const again = find(dimse, { model: 'STUDY_ROOT', identifier: identifierOf('STUDY', []) });
    const first = await again.next();
    assert.equal(first.done, false);
    await again.return(undefined as never);
    await dimse.release();
  } finally {
    await l.close(1000);
  }
});

test('C-GET: C-STORE sub-operations come back on the same association to the SCU-side handler', async () => {
  const l = await server({
    'C-GET-RQ': async (rq) => {
      await readIdentifier(rq);
      const ctx = [...rq.association.info.contexts.values()].find(
        (c) => c.abstractSyntax === CT && c.requestorIsScp,
      );
      assert.ok(ctx, 'the requestor took the SCP role for CT');
      let completed = 0;
      for (let i = 1; i <= 3; i++) {
        const ds = new Dataset();
        ds.setString(0x00080016, CT);
        ds.setString(0x00080018, `1.2.3.${i}`);
        const rsp = await rq.dimse.store(
          ctx,
          { sopClassUid: CT, sopInstanceUid: `1.2.3.${i}` },
          encodeDataset(ds, ctx.transferSyntax),
        );
        if (rsp.status === 0) completed++;
        await rq.pending({
          status: STATUS.Pending,
          fields: { remaining: 3 - i, completed, failed: 0, warning: 0 },
        });
      }
      return { status: STATUS.Success, fields: { completed, failed: 0, warning: 0 } };
    },
  });
  try {
    const received: string[] = [];
    const progress: number[] = [];
    const dimse = await connect(
      l.port,
      [...qrContexts('STUDY_ROOT', ['get']), ...getStorageContexts([CT], [EXPLICIT_LE])],
      {
        'C-STORE-RQ': async (rq) => {
          const parts: Buffer[] = [];
          for await (const c of rq.dataset!) parts.push(c as Buffer);
          received.push(
            decodeDataset(Buffer.concat(parts), rq.context.transferSyntax).string(0x00080018) ?? '',
          );
          return { status: 0 };
        },
      },
    );
    const result = await get(dimse, {
      model: 'STUDY_ROOT',
      identifier: identifierOf('STUDY', [[0x0020000d, '1.2.3']]),
      onProgress: (c) => progress.push(c.remaining ?? -1),
    });
    assert.equal(result.status, STATUS.Success);
    assert.equal(result.completed, 3);
    assert.deepEqual(received, ['1.2.3.1', '1.2.3.2', '1.2.3.3']);
    assert.deepEqual(progress, [2, 1, 0]);
    await dimse.release();
  } finally {
    await l.close(1000);
  }
});

test('C-MOVE: the final response carries the counts and the Failed SOP Instance UID List', async () => {
  const l = await server({
    'C-MOVE-RQ': async (rq) => {
      await readIdentifier(rq);
      assert.equal(rq.command.moveDestination, 'DEST');
      const failed = new Dataset();
      failed.setValues(0x00080058, ['1.2.9.1', '1.2.9.2'], 'UI');
      return {
        status: STATUS.SubOperationsCompleteWithFailures,
        fields: { completed: 5, failed: 2, warning: 0 },
        dataset: encodeDataset(failed, rq.context.transferSyntax),
      };
    },
  });
  try {
    const dimse = await connect(l.port, qrContexts('STUDY_ROOT', ['move']));
    const result = await move(dimse, {
      model: 'STUDY_ROOT',
      destination: 'DEST',
      identifier: identifierOf('STUDY', [[0x0020000d, '1.2.3']]),
    });
    assert.equal(result.status, 0xb000);
    assert.equal(result.completed, 5);
    assert.equal(result.failed, 2);
    assert.deepEqual(result.failedSopInstanceUids, ['1.2.9.1', '1.2.9.2']);
    await dimse.release();
  } finally {
    await l.close(1000);
  }
});
