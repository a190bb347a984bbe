// The association driver over real 127.0.0.1 sockets against a scripted fake peer (the pynetdicom test_fsm
// habit: one scenario per behaviour). The acceptor runs through listen() (or Association.accept directly
// where a test needs the association before it is established); the requestor through Association.request.
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type Server } from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import {
  associateAc,
  associateRq,
  CT,
  connectTo,
  delay,
  EVRLE,
  FakeAcceptor,
  HOST,
  IVRLE,
  JPEG_BASELINE,
  MR,
  PEER_IMPLEMENTATION,
  VERIFICATION,
  type Wire,
  withTimeout,
} from './fake-peer.test-util.ts';
import {
  type AcceptorPolicy,
  Association,
  AssociationAbortedError,
  AssociationRejectedError,
  type AssociationUser,
  encodePdu,
  fragment,
  type ListenOptions,
  listen,
  type Pdv,
  type RequestOptions,
  TimeoutError,
} from './index.ts';

const T = { timeout: 8000 };
const ARTIM_MS = 200;

const POLICY: AcceptorPolicy & { artimMs: number } = {
  aeTitle: 'TESSERA',
  calledAETitles: ['TESSERA'],
  maxPduLength: 16384,
  implementationClassUid: '1.2.826.0.1.3680043.9.7433.2.2',
  implementationVersionName: 'TESSERA_TEST',
  transferSyntaxes: (abstractSyntax) =>
    abstractSyntax === VERIFICATION
      ? [IVRLE]
      : abstractSyntax === CT || abstractSyntax === MR
        ? [IVRLE, EVRLE]
        : undefined,
  artimMs: ARTIM_MS,
};

// Golden bytes of the short PDUs (PS3.8 Tables 9-21, 9-24, 9-25, 9-26).
const A_RELEASE_RQ = Buffer.from('050000000004' + '00000000', 'hex');
const A_RELEASE_RP = Buffer.from('060000000004' + '00000000', 'hex');
const A_ABORT_USER = Buffer.from('070000000004' + '00000000', 'hex');

/** Everything a test opens, closed after it whatever happens: fake peers first, then servers. */
class Scope {
  private readonly wires: Wire[] = [];
  private readonly closers: (() => Promise<void>)[] = [];
  private readonly associations: Association[] = [];

  constructor(t: TestContext) {
    t.after(async () => {
      for (const w of this.wires) w.destroy();
      for (const a of this.associations) a.abort();
      for (const close of this.closers) await close();
      await withTimeout(
        Promise.all(this.associations.map((a) => a.closed)),
        3000,
        'associations still open after the test',
      );
    });
  }

  /** The acceptor as the server runs it: listen() on an ephemeral port. */
  async listener(over: Partial<ListenOptions> = {}): Promise<{
    port: number;
    established: Association[];
    next(): Promise<Association>;
  }> {
    const established: Association[] = [];
    const waiting: ((a: Association) => void)[] = [];
    const listener = await listen({
      ...POLICY,
      host: HOST,
      port: 0,
      onAssociation: (a) => {
        established.push(a);
        waiting.shift()?.(a);
      },
      ...over,
    });
    this.closers.push(() => listener.close(100));
    let taken = 0;
    return {
      port: listener.port,
      established,
      next: () => {
        const ready = established[taken];
        if (ready) {
          taken++;
          return Promise.resolve(ready);
        }
        return withTimeout(
          new Promise<Association>((resolve) =>
            waiting.push((a) => {
              taken++;
              resolve(a);
            }),
          ),
          2000,
          'no association established',
        );
      },
    };
  }

  /** Association.accept on a bare node:net server, to see associations before they are established. */
  async acceptor(policy: Partial<typeof POLICY> = {}): Promise<{ port: number; all: Association[] }> {
    const all: Association[] = [];
    const server: Server = createServer((socket) => {
      all.push(Association.accept(socket, { ...POLICY, ...policy }, () => undefined));
    });
    server.listen(0, HOST);
    await new Promise((resolve) => server.once('listening', resolve));
    this.closers.push(async () => {
      for (const a of all) a.abort();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    return { port: address.port, all };
  }

  async connect(port: number): Promise<Wire> {
    const wire = await connectTo(port);
    this.wires.push(wire);
    return wire;
  }

  async fakeAcceptor(): Promise<FakeAcceptor> {
    const fake = await FakeAcceptor.start();
    this.closers.push(() => fake.close());
    return fake;
  }

  /** Association.request, tracked so that it is closed after the test. */
  async request(options: Partial<RequestOptions> & { port: number }): Promise<Association> {
    const a = await Association.request(requestOptions(options));
    this.associations.push(a);
    return a;
  }
}

function requestOptions(over: Partial<RequestOptions> & { port: number }): RequestOptions {
  return {
    host: HOST,
    callingAETitle: 'TESSERA',
    calledAETitle: 'FAKESCP',
    contexts: [{ abstractSyntax: VERIFICATION, transferSyntaxes: [IVRLE] }],
    timeoutMs: 2000,
    artimMs: ARTIM_MS,
    ...over,
  };
}

/** An AssociationUser that records what it is told. */
function recorder(onReleaseRequested?: () => Promise<void>): AssociationUser & {
  readonly pdata: Pdv[][];
  readonly closeError: Promise<Error | undefined>;
} {
  const pdata: Pdv[][] = [];
  let resolveClose!: (e: Error | undefined) => void;
  const closeError = new Promise<Error | undefined>((resolve) => {
    resolveClose = resolve;
  });
  return {
    pdata,
    closeError,
    onPData: (pdvs) => pdata.push([...pdvs]),
    onClose: (err) => resolveClose(err),
    ...(onReleaseRequested ? { onReleaseRequested } : {}),
  };
}

/** Associates a fake requestor with the acceptor on `port`; returns the wire and the AC. */
async function associate(s: Scope, port: number, rq = associateRq()) {
  const wire = await s.connect(port);
  wire.send(rq);
  const ac = await wire.expect('A-ASSOCIATE-AC');
  return { wire, ac };
}

/** A P-DATA-TF of one PDV. */
function pdata(contextId: number, data: Buffer, command = true, last = true): Buffer {
  return encodePdu({ type: 'P-DATA-TF', pdvs: [{ contextId, command, last, data }] });
}

// ---------------------------------------------------------------------------------------------------
// Acceptor

describe('acceptor, Sta2 (transport connection open, awaiting A-ASSOCIATE-RQ)', () => {
  test(
    'ARTIM: a peer that connects and sends nothing is disconnected after artimMs (AE-5, Evt18 AA-2)',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.acceptor();
      const wire = await s.connect(acc.port);
      const took = await wire.expectClosed(ARTIM_MS + 1500);
      assert.ok(took >= ARTIM_MS - 50, `closed after ${took} ms, before ARTIM`);
      assert.equal(wire.received.length, 0, 'nothing is sent: AA-2 only closes');
      const err = await acc.all[0]!.closed;
      assert.ok(err instanceof TimeoutError, `closed with ${String(err)}`);
      assert.equal(err.timer, 'ARTIM');
    },
  );

  test('ARTIM: part of a PDU header does not hold the connection open', T, async (t) => {
    const s = new Scope(t);
    const acc = await s.listener();
    const wire = await s.connect(acc.port);
    wire.send(Buffer.from([0x01, 0x00, 0x00]));
    const took = await wire.expectClosed(ARTIM_MS + 1500);
    assert.ok(took >= ARTIM_MS - 50, `closed after ${took} ms`);
  });

  test(
    'P-DATA-TF before any association: A-ABORT (source 2, unexpected-PDU) then close (AA-1)',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.listener();
      const wire = await s.connect(acc.port);
      wire.send(pdata(1, Buffer.from([1, 2, 3, 4])));
      const ab = await wire.expect('A-ABORT');
      assert.deepEqual(ab, { type: 'A-ABORT', source: 2, reason: 2 });
      await wire.expectClosed(ARTIM_MS + 1500);
      assert.equal(acc.established.length, 0);
    },
  );

  test('A-RELEASE-RQ before any association: A-ABORT (source 2, unexpected-PDU)', T, async (t) => {
    const s = new Scope(t);
    const acc = await s.listener();
    const wire = await s.connect(acc.port);
    wire.send(A_RELEASE_RQ);
    assert.deepEqual(await wire.expect('A-ABORT'), { type: 'A-ABORT', source: 2, reason: 2 });
    await wire.expectClosed(ARTIM_MS + 1500);
  });

  test('unknown PDU type 0x09: A-ABORT (source 2, reason 1 unrecognized-PDU) then close', T, async (t) => {
    const s = new Scope(t);
    const acc = await s.listener();
    const wire = await s.connect(acc.port);
    wire.send(Buffer.from('090000000004' + '00000000', 'hex'));
    const { pdu, raw } = await wire.next();
    assert.deepEqual(pdu, { type: 'A-ABORT', source: 2, reason: 1 });
    assert.deepEqual(raw, Buffer.from('070000000004' + '00000201', 'hex'));
    await wire.expectClosed(ARTIM_MS + 1500);
  });

  test(
    'PDU-length above the maximum: A-ABORT (source 2, reason 6) from the header alone, then close',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.listener();
      const wire = await s.connect(acc.port);
      // Only the 6-byte header of a 2 GiB A-ASSOCIATE-RQ: the answer must not wait for (or buffer) the body.
      wire.send(Buffer.from('01007fffffff', 'hex'));
      assert.deepEqual(await wire.expect('A-ABORT', 1000), { type: 'A-ABORT', source: 2, reason: 6 });
      // Whatever else the peer sends is ignored; the connection closes at ARTIM at the latest.
      if (wire.isOpen) wire.send(Buffer.alloc(64 * 1024, 0x41));
      await wire.expectClosed(ARTIM_MS + 1500);
      assert.equal(wire.received.length, 1);
    },
  );

  test('garbage (an HTTP request): A-ABORT and the connection is closed', T, async (t) => {
    const s = new Scope(t);
    const acc = await s.listener();
    const wire = await s.connect(acc.port);
    wire.send(Buffer.from('GET / HTTP/1.1\r\nHost: pacs\r\n\r\n', 'latin1'));
    const ab = await wire.expect('A-ABORT');
    assert.equal(ab.source, 2);
    assert.equal(ab.reason, 1, "'G' (0x47) is no PDU type");
    await wire.expectClosed(ARTIM_MS + 1500);
    assert.equal(acc.established.length, 0);
  });

  test(
    'garbage in an A-ASSOCIATE-RQ body: A-ABORT (source 2, invalid parameter) and closed',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.listener();
      const wire = await s.connect(acc.port);
      const body = Buffer.alloc(100, 0xee);
      const header = Buffer.from([0x01, 0, 0, 0, 0, body.length]);
      wire.send(Buffer.concat([header, body]));
      const ab = await wire.expect('A-ABORT');
      assert.equal(ab.source, 2);
      assert.ok(ab.reason === 5 || ab.reason === 6, `reason ${ab.reason}`);
      await wire.expectClosed(ARTIM_MS + 1500);
    },
  );

  test(
    'the peer closing before any A-ASSOCIATE-RQ ends the association quietly (Evt17 AA-5)',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.acceptor({ artimMs: 10_000 });
      const wire = await s.connect(acc.port);
      await wire.end();
      const err = await withTimeout(acc.all[0]!.closed, 1000, 'not closed');
      assert.equal(err, undefined);
    },
  );

  test('listener.close() ends a connection still in Sta2 without throwing', T, async (t) => {
    const s = new Scope(t);
    const listener = await listen({
      ...POLICY,
      artimMs: 10_000,
      host: HOST,
      port: 0,
      onAssociation: () => {},
    });
    const wire = await s.connect(listener.port);
    await delay(20);
    await withTimeout(listener.close(50), 2000, 'listener.close() did not resolve');
    await wire.expectClosed(500);
  });
});

describe('acceptor, A-ASSOCIATE-RQ (Sta2 Evt6 AE-6, then Sta3 AE-7 or AE-8)', () => {
  async function rejected(
    t: TestContext,
    rq: ReturnType<typeof associateRq>,
    policy: Partial<ListenOptions> = {},
  ) {
    const s = new Scope(t);
    const acc = await s.listener(policy);
    const wire = await s.connect(acc.port);
    wire.send(rq);
    const { pdu, raw } = await wire.next();
    assert.equal(pdu.type, 'A-ASSOCIATE-RJ', JSON.stringify(pdu));
    // AE-8: RJ and ARTIM; the acceptor closes when ARTIM expires if the requestor does not close first.
    const took = await wire.expectClosed(ARTIM_MS + 1500);
    assert.ok(took >= ARTIM_MS - 80, `closed after ${took} ms: before ARTIM`);
    assert.equal(acc.established.length, 0);
    return { pdu, raw };
  }

  test('unknown called AE title: A-ASSOCIATE-RJ (1, 1, 7), then the connection closes', T, async (t) => {
    const { pdu, raw } = await rejected(t, associateRq({ calledAETitle: 'NOBODY' }));
    assert.deepEqual(pdu, { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 7 });
    assert.deepEqual(raw, Buffer.from('030000000004' + '00010107', 'hex'));
  });

  test(
    "the requestor closing after the RJ ends the acceptor's side before ARTIM (Sta13 Evt17 AR-5)",
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.acceptor({ artimMs: 10_000 });
      const wire = await s.connect(acc.port);
      wire.send(associateRq({ calledAETitle: 'NOBODY' }));
      await wire.expect('A-ASSOCIATE-RJ');
      await wire.end();
      const err = await withTimeout(acc.all[0]!.closed, 1000, 'acceptor did not close');
      assert.ok(err instanceof AssociationRejectedError);
      assert.equal(err.reason, 7);
    },
  );

  test('calling AE title not in callingAETitles: A-ASSOCIATE-RJ (1, 1, 3)', T, async (t) => {
    const { pdu } = await rejected(t, associateRq({ callingAETitle: 'STRANGER' }), {
      callingAETitles: ['FRIEND'],
    });
    assert.deepEqual(pdu, { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 3 });
  });

  test('an application context other than 1.2.840.10008.3.1.1.1: A-ASSOCIATE-RJ (1, 1, 2)', T, async (t) => {
    const { pdu } = await rejected(t, associateRq({ applicationContextName: '1.2.3.4.5' }));
    assert.deepEqual(pdu, { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 2 });
  });

  test(
    'protocol version without bit 0: A-ASSOCIATE-RJ (1, 2, 2) from the provider (AE-6 not acceptable)',
    T,
    async (t) => {
      const { pdu } = await rejected(t, associateRq({ protocolVersion: 2 }));
      assert.deepEqual(pdu, { type: 'A-ASSOCIATE-RJ', result: 1, source: 2, reason: 2 });
    },
  );

  test('user identity refused by policy.userIdentity: A-ASSOCIATE-RJ', T, async (t) => {
    const seen: string[] = [];
    const rq = associateRq();
    rq.userInformation.userIdentity = {
      type: 2,
      positiveResponseRequested: false,
      primaryField: Buffer.from('mallory'),
      secondaryField: Buffer.from('guess'),
    };
    const { pdu } = await rejected(t, rq, {
      userIdentity: async (identity, calling) => {
        seen.push(`${identity.primaryField.toString()}/${identity.secondaryField.toString()}@${calling}`);
        return { accepted: false };
      },
    });
    assert.deepEqual(pdu, { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 1 });
    assert.deepEqual(seen, ['mallory/guess@FAKESCU']);
  });

  test(
    'a policy.userIdentity that throws: A-ASSOCIATE-RJ (transient), the acceptor goes on',
    T,
    async (t) => {
      const rq = associateRq();
      rq.userInformation.userIdentity = {
        type: 1,
        positiveResponseRequested: false,
        primaryField: Buffer.from('alice'),
        secondaryField: Buffer.alloc(0),
      };
      const { pdu } = await rejected(t, rq, {
        userIdentity: async () => {
          throw new Error('directory unavailable');
        },
      });
      assert.deepEqual(pdu, { type: 'A-ASSOCIATE-RJ', result: 2, source: 1, reason: 1 });
    },
  );

  test(
    'presentation contexts: abstract syntax not supported (3), transfer syntaxes not supported (4), accepted with the first proposed syntax we support',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.listener();
      const rq = associateRq({
        presentationContexts: [
          { id: 1, abstractSyntax: '1.2.3.999', transferSyntaxes: [IVRLE] },
          { id: 3, abstractSyntax: CT, transferSyntaxes: [JPEG_BASELINE] },
          // We list [IVRLE, EVRLE]; the requestor's order decides.
          { id: 5, abstractSyntax: CT, transferSyntaxes: [JPEG_BASELINE, EVRLE, IVRLE] },
          { id: 7, abstractSyntax: VERIFICATION, transferSyntaxes: [IVRLE] },
        ],
      });
      const { wire, ac } = await associate(s, acc.port, rq);
      assert.deepEqual(ac.presentationContexts, [
        { id: 1, result: 3, transferSyntax: '' },
        { id: 3, result: 4, transferSyntax: '' },
        { id: 5, result: 0, transferSyntax: EVRLE },
        { id: 7, result: 0, transferSyntax: IVRLE },
      ]);
      assert.equal(ac.calledAETitle, 'TESSERA');
      assert.equal(ac.callingAETitle, 'FAKESCU');
      assert.equal(ac.userInformation.maxPduLength, POLICY.maxPduLength);
      assert.equal(ac.userInformation.implementationClassUid, POLICY.implementationClassUid);
      assert.equal(ac.userInformation.implementationVersionName, POLICY.implementationVersionName);
      assert.equal(ac.userInformation.roles.length, 0);
      assert.equal(ac.userInformation.asyncOps, undefined, 'not asked, not answered');

      const a = await acc.next();
      assert.ok(a.established);
      assert.equal(a.role, 'acceptor');
      assert.deepEqual([...a.info.contexts.keys()], [5, 7]);
      assert.deepEqual(a.info.contexts.get(5), {
        id: 5,
        abstractSyntax: CT,
        transferSyntax: EVRLE,
        requestorIsScu: true,
        requestorIsScp: false,
      });
      assert.deepEqual(a.info.rejectedContexts, [
        { id: 1, abstractSyntax: '1.2.3.999', result: 3 },
        { id: 3, abstractSyntax: CT, result: 4 },
      ]);
      assert.equal(a.info.peerMaxPduLength, 16384);
      assert.equal(a.info.peerImplementationClassUid, PEER_IMPLEMENTATION);
      assert.equal(a.info.peerImplementationVersionName, 'FAKE_PEER');
      assert.equal(a.info.callingAETitle, 'FAKESCU');
      assert.equal(a.info.maxOpsInvoked, 1);
      assert.equal(a.info.maxOpsPerformed, 1);
      wire.destroy();
    },
  );

  test(
    'an A-ASSOCIATE-RQ larger than our Maximum Length is accepted (PS3.8 D.1: it limits P-DATA-TF only)',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.listener({ maxPduLength: 4096 });
      const presentationContexts = Array.from({ length: 100 }, (_, i) => ({
        id: 2 * i + 1,
        abstractSyntax: `${CT}.${i}`,
        transferSyntaxes: [EVRLE, IVRLE, JPEG_BASELINE],
      }));
      const rq = associateRq({ presentationContexts });
      assert.ok(encodePdu(rq).length > 4096 + 1024 + 6);
      const { ac } = await associate(s, acc.port, rq);
      assert.equal(ac.presentationContexts.length, 100);
    },
  );

  test(
    'role selection: SCP role asked for a storage class and granted by policy -> the AC role item says scp=1',
    T,
    async (t) => {
      const s = new Scope(t);
      const asked: unknown[] = [];
      const acc = await s.listener({
        roles: (abstractSyntax, roles) => {
          asked.push({ abstractSyntax, ...roles });
          return { scu: true, scp: abstractSyntax === CT };
        },
      });
      const rq = associateRq();
      rq.userInformation.roles = [{ sopClassUid: CT, scu: true, scp: true }];
      const { ac } = await associate(s, acc.port, rq);
      assert.deepEqual(ac.userInformation.roles, [{ sopClassUid: CT, scu: true, scp: true }]);
      assert.deepEqual(asked, [{ abstractSyntax: CT, scu: true, scp: true }]);
      const a = await acc.next();
      assert.equal(a.info.contexts.get(3)?.requestorIsScp, true);
      assert.equal(a.info.contexts.get(3)?.requestorIsScu, true);
      assert.equal(a.info.contexts.get(1)?.requestorIsScp, false, 'no role item: the default roles');
    },
  );

  test('role selection without a policy.roles: the SCP role is refused (scp=0 in the AC)', T, async (t) => {
    const s = new Scope(t);
    const acc = await s.listener();
    const rq = associateRq();
    rq.userInformation.roles = [{ sopClassUid: CT, scu: true, scp: true }];
    const { ac } = await associate(s, acc.port, rq);
    assert.deepEqual(ac.userInformation.roles, [{ sopClassUid: CT, scu: true, scp: false }]);
    assert.equal((await acc.next()).info.contexts.get(3)?.requestorIsScp, false);
  });

  test(
    'asynchronous operations: asked (8, 1) with policy maxOpsPerformed 4 -> the AC says invoked 4, performed 1',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.listener({ maxOpsPerformed: 4 });
      const rq = associateRq();
      rq.userInformation.asyncOps = { maxInvoked: 8, maxPerformed: 1 };
      const { ac } = await associate(s, acc.port, rq);
      assert.deepEqual(ac.userInformation.asyncOps, { maxInvoked: 4, maxPerformed: 1 });
      const a = await acc.next();
      assert.equal(a.info.maxOpsInvoked, 4);
      assert.equal(a.info.maxOpsPerformed, 1);
    },
  );

  test(
    'user identity accepted with positiveResponseRequested: the AC carries the server response',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.listener({
        userIdentity: async () => ({ accepted: true, response: Buffer.from('kerberos-reply') }),
      });
      const rq = associateRq();
      rq.userInformation.userIdentity = {
        type: 3,
        positiveResponseRequested: true,
        primaryField: Buffer.from('ticket'),
        secondaryField: Buffer.alloc(0),
      };
      const { ac } = await associate(s, acc.port, rq);
      assert.deepEqual(ac.userInformation.userIdentityResponse, Buffer.from('kerberos-reply'));
      const a = await acc.next();
      assert.deepEqual(a.info.userIdentity?.primaryField, Buffer.from('ticket'));
    },
  );

  test('user identity accepted without positiveResponseRequested: no response item', T, async (t) => {
    const s = new Scope(t);
    const acc = await s.listener({
      userIdentity: async () => ({ accepted: true, response: Buffer.from('not asked for') }),
    });
    const rq = associateRq();
    rq.userInformation.userIdentity = {
      type: 1,
      positiveResponseRequested: false,
      primaryField: Buffer.from('alice'),
      secondaryField: Buffer.alloc(0),
    };
    const { ac } = await associate(s, acc.port, rq);
    assert.equal(ac.userInformation.userIdentityResponse, undefined);
  });

  test(
    'onAssociation throwing aborts that association only (A-ABORT, service-user), the process goes on',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.listener({
        onAssociation: () => {
          throw new Error('no room for you');
        },
      });
      const { wire } = await associate(s, acc.port);
      assert.deepEqual(await wire.expect('A-ABORT'), { type: 'A-ABORT', source: 0, reason: 0 });
      await wire.expectClosed(ARTIM_MS + 1500);
    },
  );

  test(
    'an A-ASSOCIATE-AC we cannot encode (version name too long): A-ABORT instead, no crash',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.listener({ implementationVersionName: 'SEVENTEEN_CHARS_X' });
      const wire = await s.connect(acc.port);
      wire.send(associateRq());
      assert.deepEqual(await wire.expect('A-ABORT'), { type: 'A-ABORT', source: 0, reason: 0 });
      await wire.expectClosed(ARTIM_MS + 1500);
      assert.equal(acc.established.length, 0);
    },
  );

  test(
    'a second A-ASSOCIATE-RQ after the AC: A-ABORT (source 2, unexpected-PDU) (Sta6 Evt6 AA-8)',
    T,
    async (t) => {
      const s = new Scope(t);
      const acc = await s.listener();
      const { wire } = await associate(s, acc.port);
      const a = await acc.next();
      const user = recorder();
      a.setUser(user);
      wire.send(associateRq());
      assert.deepEqual(await wire.expect('A-ABORT'), { type: 'A-ABORT', source: 2, reason: 2 });
      const err = await user.closeError;
      assert.ok(err instanceof AssociationAbortedError);
      await wire.expectClosed(ARTIM_MS + 1500);
    },
  );
});

describe('acceptor, Sta6 (established)', () => {
  async function established(t: TestContext, onReleaseRequested?: () => Promise<void>) {
    const s = new Scope(t);
    const acc = await s.listener();
    const { wire, ac } = await associate(s, acc.port);
    const a = await acc.next();
    const user = recorder(onReleaseRequested);
    a.setUser(user);
    return { s, acc, wire, ac, a, user };
  }

  test('P-DATA-TF is indicated to the user (DT-2), PDV by PDV', T, async (t) => {
    const { wire, user } = await established(t);
    wire.send(
      encodePdu({
        type: 'P-DATA-TF',
        pdvs: [
          { contextId: 1, command: true, last: false, data: Buffer.from('ab') },
          { contextId: 1, command: true, last: true, data: Buffer.from('cd') },
        ],
      }),
    );
    await withTimeout(
      (async () => {
        while (user.pdata.length === 0) await delay(5);
      })(),
      1000,
      'no P-DATA indication',
    );
    assert.deepEqual(
      user.pdata[0]!.map((p) => [p.contextId, p.command, p.last, p.data.toString()]),
      [
        [1, true, false, 'ab'],
        [1, true, true, 'cd'],
      ],
    );
  });

  test('P-DATA-TF before the user is set is kept and handed over by setUser', T, async (t) => {
    const s = new Scope(t);
    const acc = await s.listener();
    const { wire } = await associate(s, acc.port);
    const a = await acc.next();
    wire.send(pdata(1, Buffer.from('early')));
    await delay(50);
    const user = recorder();
    a.setUser(user);
    assert.equal(user.pdata.length, 1);
    assert.equal(user.pdata[0]![0]!.data.toString(), 'early');
  });

  test(
    "the peer's A-ABORT (service-user): onClose gets an AssociationAbortedError naming source and reason (AA-3)",
    T,
    async (t) => {
      const { wire, a, user } = await established(t);
      wire.send({ type: 'A-ABORT', source: 0, reason: 0 });
      const err = await withTimeout(user.closeError, 1000, 'onClose not called');
      assert.ok(err instanceof AssociationAbortedError, String(err));
      assert.equal(err.code, 'ERR_UL_ABORTED');
      assert.match(err.message, /source 0/);
      assert.match(err.message, /reason 0/);
      assert.equal(await a.closed, err);
      assert.equal(a.established, false);
      await wire.expectClosed(500); // AA-3 closes the transport connection at once
    },
  );

  test(
    "the peer's A-ABORT (service-provider, reason 6): the error names source 2 and reason 6 (A-P-ABORT)",
    T,
    async (t) => {
      const { wire, user } = await established(t);
      wire.send({ type: 'A-ABORT', source: 2, reason: 6 });
      const err = await withTimeout(user.closeError, 1000, 'onClose not called');
      assert.ok(err instanceof AssociationAbortedError, String(err));
      assert.match(err.message, /source 2/);
      assert.match(err.message, /reason 6/);
      await wire.expectClosed(500);
    },
  );

  test(
    'the connection dropping: closed resolves with an AssociationAbortedError (Evt17 AA-4)',
    T,
    async (t) => {
      const { wire, a, user } = await established(t);
      wire.destroy();
      const err = await withTimeout(a.closed, 1000, 'closed did not resolve');
      assert.ok(err instanceof AssociationAbortedError, String(err));
      assert.equal(await user.closeError, err);
      await assert.rejects(a.sendPData(pdata(1, Buffer.from('x'))), AssociationAbortedError);
    },
  );

  test(
    'unknown PDU type 0x09: A-ABORT (source 2, reason 1), the user is told, the connection closes (AA-8)',
    T,
    async (t) => {
      const { wire, user } = await established(t);
      wire.send(Buffer.from('090000000004' + '00000000', 'hex'));
      assert.deepEqual(await wire.expect('A-ABORT'), { type: 'A-ABORT', source: 2, reason: 1 });
      const err = await withTimeout(user.closeError, ARTIM_MS + 1500, 'onClose not called');
      assert.ok(err instanceof AssociationAbortedError);
      assert.match(err.message, /unrecognized PDU type 0x09/);
      await wire.expectClosed(ARTIM_MS + 1500);
    },
  );

  test(
    'a P-DATA-TF of exactly our Maximum Length is taken; one past it (plus headroom) is A-ABORT reason 6',
    T,
    async (t) => {
      const { wire, user } = await established(t);
      const max = POLICY.maxPduLength;
      wire.send(pdata(1, Buffer.alloc(max - 6, 1), false, false));
      await withTimeout(
        (async () => {
          while (user.pdata.length === 0) await delay(5);
        })(),
        1000,
        'the P-DATA-TF of our maximum was not indicated',
      );
      assert.equal(user.pdata[0]![0]!.data.length, max - 6);
      // PS3.8 D.1: the peer shall not send more than our Maximum Length; 1024 bytes of slack are tolerated.
      wire.send(pdata(1, Buffer.alloc(max + 1024 + 1 - 6, 2), false, true));
      assert.deepEqual(await wire.expect('A-ABORT'), { type: 'A-ABORT', source: 2, reason: 6 });
      assert.equal(user.pdata.length, 1, 'the oversized PDU is not indicated');
      assert.match(String(await user.closeError), /over the limit/);
      await wire.expectClosed(ARTIM_MS + 1500);
    },
  );

  test(
    'a P-DATA-TF PDU-length far above our maximum: A-ABORT (source 2, reason 6) from the header alone',
    T,
    async (t) => {
      const { wire, user } = await established(t);
      wire.send(Buffer.from('04007fffffff', 'hex'));
      assert.deepEqual(await wire.expect('A-ABORT', 1000), { type: 'A-ABORT', source: 2, reason: 6 });
      const err = await user.closeError;
      assert.match(String(err), /PDU-length/);
      await wire.expectClosed(ARTIM_MS + 1500);
    },
  );

  test(
    'A-RELEASE-RQ: A-RELEASE-RP only after onReleaseRequested resolves; closed after the peer closes (AR-2, AR-4, AR-5)',
    T,
    async (t) => {
      let ready!: () => void;
      let asked = false;
      const gate = new Promise<void>((resolve) => {
        ready = resolve;
      });
      const { wire, a, user } = await established(t, () => {
        asked = true;
        return gate;
      });
      wire.send(A_RELEASE_RQ);
      await wire.quiet(150);
      assert.ok(asked, 'onReleaseRequested was called');
      ready();
      const { raw } = await wire.next();
      assert.deepEqual(raw, A_RELEASE_RP);
      await wire.end();
      assert.equal(await withTimeout(a.closed, 1000, 'not closed'), undefined, 'a normal release');
      assert.equal(await user.closeError, undefined);
    },
  );

  test(
    'A-RELEASE-RQ: the acceptor closes at ARTIM when the requestor keeps the connection open (Sta13 Evt18)',
    T,
    async (t) => {
      const { wire, a } = await established(t);
      wire.send(A_RELEASE_RQ);
      await wire.expect('A-RELEASE-RP');
      const took = await wire.expectClosed(ARTIM_MS + 1500);
      assert.ok(took >= ARTIM_MS - 80, `closed after ${took} ms`);
      assert.equal(await a.closed, undefined);
    },
  );

  test(
    'A-RELEASE-RQ with an onReleaseRequested that rejects: still A-RELEASE-RP, the process goes on',
    T,
    async (t) => {
      const events: unknown[] = [];
      const onEvent = (message: unknown) => events.push(message);
      subscribe('tessera:ul:association', onEvent);
      t.after(() => unsubscribe('tessera:ul:association', onEvent));
      const { wire } = await established(t, async () => {
        throw new Error('not now');
      });
      wire.send(A_RELEASE_RQ);
      await wire.expect('A-RELEASE-RP');
      await wire.end();
      assert.ok(
        events.some((e) => (e as { event?: string }).event === 'release-error'),
        'the failure is published on tessera:ul:association',
      );
    },
  );

  test(
    'release by the acceptor with a collision: the acceptor waits (Sta10), answers after the requestor (Sta12 AR-4)',
    T,
    async (t) => {
      const { wire, a } = await established(t);
      const releasing = a.release();
      assert.deepEqual((await wire.next()).raw, A_RELEASE_RQ);
      // The fake requestor released at the same time: its A-RELEASE-RQ crosses ours (Sta7 Evt12 AR-8 -> Sta10).
      wire.send(A_RELEASE_RQ);
      await wire.quiet(100); // the acceptor does not answer first
      wire.send(A_RELEASE_RP); // the requestor answers first (Sta9 AR-9), then waits for ours (Sta11)
      assert.deepEqual((await wire.next()).raw, A_RELEASE_RP);
      await withTimeout(releasing, 1000, 'release() did not resolve');
      await wire.end();
      assert.equal(await withTimeout(a.closed, 1000, 'not closed'), undefined);
      assert.deepEqual(
        wire.received.map((p) => p.pdu.type),
        ['A-ASSOCIATE-AC', 'A-RELEASE-RQ', 'A-RELEASE-RP'],
      );
    },
  );

  test('abort() by the acceptor sends A-ABORT (source 0) and closes when the peer does', T, async (t) => {
    const { wire, a } = await established(t);
    a.abort();
    assert.deepEqual((await wire.next()).raw, A_ABORT_USER);
    await wire.end();
    const err = await withTimeout(a.closed, 1000, 'not closed');
    assert.ok(err instanceof AssociationAbortedError);
  });
});

// ---------------------------------------------------------------------------------------------------
// Requestor

describe('requestor (Association.request against a fake acceptor)', () => {
  test(
    'A-ASSOCIATE-AC: established, info reflects the contexts, the peer max PDU and the async window',
    T,
    async (t) => {
      const s = new Scope(t);
      const fake = await s.fakeAcceptor();
      const requesting = s.request({
        port: fake.port,
        contexts: [
          { abstractSyntax: VERIFICATION, transferSyntaxes: [IVRLE] },
          { abstractSyntax: MR, transferSyntaxes: [EVRLE] },
          { abstractSyntax: CT, transferSyntaxes: [EVRLE, IVRLE], scpRole: true },
        ],
        maxPduLength: 32768,
        maxOpsInvoked: 5,
        maxOpsPerformed: 2,
      });
      const wire = await fake.connection();
      const rq = await wire.expect('A-ASSOCIATE-RQ');
      assert.equal(rq.protocolVersion, 1);
      assert.equal(rq.calledAETitle, 'FAKESCP');
      assert.equal(rq.callingAETitle, 'TESSERA');
      assert.deepEqual(
        rq.presentationContexts.map((pc) => [pc.id, pc.abstractSyntax, pc.transferSyntaxes]),
        [
          [1, VERIFICATION, [IVRLE]],
          [3, MR, [EVRLE]],
          [5, CT, [EVRLE, IVRLE]],
        ],
      );
      assert.equal(rq.userInformation.maxPduLength, 32768);
      assert.deepEqual(rq.userInformation.asyncOps, { maxInvoked: 5, maxPerformed: 2 });
      assert.deepEqual(rq.userInformation.roles, [{ sopClassUid: CT, scu: true, scp: true }]);
      wire.send(
        associateAc(rq, {
          presentationContexts: [
            { id: 1, result: 0, transferSyntax: IVRLE },
            { id: 3, result: 3, transferSyntax: '' },
            { id: 5, result: 0, transferSyntax: IVRLE },
          ],
          userInformation: {
            ...associateAc(rq).userInformation,
            maxPduLength: 8192,
            asyncOps: { maxInvoked: 3, maxPerformed: 1 },
            roles: [{ sopClassUid: CT, scu: true, scp: true }],
          },
        }),
      );
      const a = await requesting;
      assert.ok(a.established);
      assert.equal(a.role, 'requestor');
      assert.equal(a.info.peerMaxPduLength, 8192);
      assert.equal(a.info.peerImplementationClassUid, PEER_IMPLEMENTATION);
      assert.equal(a.info.maxOpsInvoked, 3);
      assert.equal(a.info.maxOpsPerformed, 1);
      assert.deepEqual([...a.info.contexts.keys()], [1, 5]);
      assert.deepEqual(a.info.contexts.get(5), {
        id: 5,
        abstractSyntax: CT,
        transferSyntax: IVRLE,
        requestorIsScu: true,
        requestorIsScp: true,
      });
      assert.equal(a.info.contexts.get(1)?.requestorIsScp, false);
      assert.deepEqual(a.info.rejectedContexts, [{ id: 3, abstractSyntax: MR, result: 3 }]);
    },
  );

  test('no asynchronous operations window in the AC: 1 and 1 (PS3.7 D.3.3.3)', T, async (t) => {
    const s = new Scope(t);
    const fake = await s.fakeAcceptor();
    const requesting = s.request({ port: fake.port, maxOpsInvoked: 10, maxOpsPerformed: 10 });
    const wire = await fake.connection();
    wire.send(associateAc(await wire.expect('A-ASSOCIATE-RQ')));
    const a = await requesting;
    assert.equal(a.info.maxOpsInvoked, 1);
    assert.equal(a.info.maxOpsPerformed, 1);
  });

  test(
    'A-ASSOCIATE-RJ: rejects with AssociationRejectedError carrying result, source, reason; the connection closes (AE-4)',
    T,
    async (t) => {
      const s = new Scope(t);
      const fake = await s.fakeAcceptor();
      const requesting = s.request({ port: fake.port });
      const wire = await fake.connection();
      await wire.expect('A-ASSOCIATE-RQ');
      wire.send({ type: 'A-ASSOCIATE-RJ', result: 2, source: 3, reason: 1 });
      const err = await requesting.then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof AssociationRejectedError, String(err));
      assert.equal(err.code, 'ERR_UL_ASSOCIATION_REJECTED');
      assert.equal(err.result, 2);
      assert.equal(err.source, 3);
      assert.equal(err.reason, 1);
      assert.match(err.message, /temporary congestion/);
      await wire.expectClosed(1000);
    },
  );

  test(
    'the peer never answers: TimeoutError within timeoutMs, an A-ABORT, the connection is closed',
    T,
    async (t) => {
      const s = new Scope(t);
      const fake = await s.fakeAcceptor();
      const started = Date.now();
      const requesting = s.request({ port: fake.port, timeoutMs: 300 });
      const wire = await fake.connection();
      await wire.expect('A-ASSOCIATE-RQ');
      await assert.rejects(requesting, (err: unknown) => {
        assert.ok(err instanceof TimeoutError, String(err));
        assert.equal(err.code, 'ERR_UL_TIMEOUT');
        return true;
      });
      const took = Date.now() - started;
      assert.ok(took >= 250 && took < 1500, `timed out after ${took} ms`);
      // PS3.8 AA-1: the requestor gives up with an A-ABORT (source 0), then closes.
      await wire.expect('A-ABORT');
      await wire.expectClosed(2000);
    },
  );

  test('connection refused: a clear AssociationAbortedError', T, async () => {
    const server = createServer();
    server.listen(0, HOST);
    await new Promise((resolve) => server.once('listening', resolve));
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await assert.rejects(Association.request(requestOptions({ port: address.port })), (err: unknown) => {
      assert.ok(err instanceof AssociationAbortedError, String(err));
      assert.equal(err.code, 'ERR_UL_ABORTED');
      assert.match(err.message, new RegExp(`cannot connect to ${HOST}:${address.port}.*ECONNREFUSED`));
      return true;
    });
  });

  test('the peer closes instead of answering: AssociationAbortedError (Sta5 Evt17 AA-4)', T, async (t) => {
    const s = new Scope(t);
    const fake = await s.fakeAcceptor();
    const requesting = s.request({ port: fake.port });
    const wire = await fake.connection();
    await wire.expect('A-ASSOCIATE-RQ');
    wire.destroy();
    await assert.rejects(requesting, AssociationAbortedError);
  });

  test(
    "the peer's A-ABORT instead of an answer: AssociationAbortedError naming the source (Sta5 Evt16 AA-3)",
    T,
    async (t) => {
      const s = new Scope(t);
      const fake = await s.fakeAcceptor();
      const requesting = s.request({ port: fake.port });
      const wire = await fake.connection();
      await wire.expect('A-ASSOCIATE-RQ');
      wire.send({ type: 'A-ABORT', source: 2, reason: 0 });
      await assert.rejects(requesting, (err: unknown) => {
        assert.ok(err instanceof AssociationAbortedError, String(err));
        assert.match(err.message, /source 2/);
        return true;
      });
      await wire.expectClosed(1000);
    },
  );

  test('no presentation context: ERR_UL_NO_CONTEXTS before any connection', T, async (t) => {
    const s = new Scope(t);
    const fake = await s.fakeAcceptor();
    await assert.rejects(s.request({ port: fake.port, contexts: [] }), { code: 'ERR_UL_NO_CONTEXTS' });
    await delay(100);
    assert.equal(fake.wires.length, 0, 'no connection was opened (and leaked)');
  });

  test(
    'an AE title that cannot be encoded: ERR_UL_PDU_UNENCODABLE before any connection, no crash',
    T,
    async (t) => {
      const s = new Scope(t);
      const fake = await s.fakeAcceptor();
      await assert.rejects(s.request({ port: fake.port, callingAETitle: 'SEVENTEEN_CHARS_X' }), {
        code: 'ERR_UL_PDU_UNENCODABLE',
      });
      await delay(100);
      assert.equal(fake.wires.length, 0);
    },
  );

  async function established(
    t: TestContext,
    peerMaxPduLength = 16384,
    onReleaseRequested?: () => Promise<void>,
  ) {
    const s = new Scope(t);
    const fake = await s.fakeAcceptor();
    const requesting = s.request({ port: fake.port });
    const wire = await fake.connection();
    const rq = await wire.expect('A-ASSOCIATE-RQ');
    const ac = associateAc(rq);
    ac.userInformation.maxPduLength = peerMaxPduLength;
    wire.send(ac);
    const a = await requesting;
    const user = recorder(onReleaseRequested);
    a.setUser(user);
    return { s, wire, a, user };
  }

  test(
    'release(): sends A-RELEASE-RQ, resolves on A-RELEASE-RP, closes the connection (AR-1, AR-3)',
    T,
    async (t) => {
      const { wire, a, user } = await established(t);
      const releasing = a.release();
      assert.deepEqual((await wire.next()).raw, A_RELEASE_RQ);
      assert.equal(a.established, false, 'Sta7: no longer ready for data transfer');
      wire.send(A_RELEASE_RP);
      await withTimeout(releasing, 1000, 'release() did not resolve');
      await wire.expectClosed(1000);
      assert.equal(await a.closed, undefined);
      assert.equal(await user.closeError, undefined);
      await assert.rejects(a.sendPData(pdata(1, Buffer.from('late'))), AssociationAbortedError);
      await a.release(); // released already: nothing to do
    },
  );

  test(
    'release collision: the requestor answers first (Sta7 -> Sta9 -> Sta11 -> Sta1), bytes on the wire',
    T,
    async (t) => {
      const { wire, a } = await established(t);
      const releasing = a.release();
      const first = await wire.next();
      assert.deepEqual(first.raw, A_RELEASE_RQ);
      // The fake acceptor releases at the same moment: its A-RELEASE-RQ crosses ours (AR-8 -> Sta9).
      wire.send(A_RELEASE_RQ);
      const second = await wire.next();
      assert.deepEqual(second.raw, A_RELEASE_RP, 'AR-9: the requestor sends A-RELEASE-RP first');
      wire.send(A_RELEASE_RP); // the acceptor's answer (Sta12 AR-4); AR-3 in Sta11 closes
      await withTimeout(releasing, 1000, 'release() did not resolve');
      await wire.expectClosed(1000);
      assert.equal(await a.closed, undefined);
      assert.deepEqual(
        Buffer.concat(wire.received.slice(1).map((p) => p.raw)),
        Buffer.concat([A_RELEASE_RQ, A_RELEASE_RP]),
        'exactly A-RELEASE-RQ then A-RELEASE-RP after the A-ASSOCIATE-RQ',
      );
    },
  );

  test('release collision then the peer aborts at once: release() rejects, nothing crashes', T, async (t) => {
    const { wire, a } = await established(t);
    const releasing = a.release();
    await wire.expect('A-RELEASE-RQ');
    wire.send(Buffer.concat([A_RELEASE_RQ, encodePdu({ type: 'A-ABORT', source: 0, reason: 0 })]));
    await assert.rejects(releasing, AssociationAbortedError);
    await delay(20); // the deferred A-RELEASE response of the collision must not fire in Sta1
    assert.ok((await a.closed) instanceof AssociationAbortedError);
  });

  test('release(): the peer answers with A-ABORT -> release() rejects', T, async (t) => {
    const { wire, a } = await established(t);
    const releasing = a.release();
    await wire.expect('A-RELEASE-RQ');
    wire.send({ type: 'A-ABORT', source: 0, reason: 0 });
    await assert.rejects(releasing, AssociationAbortedError);
  });

  test(
    'abort(): A-ABORT (source 0) is sent and the association closes (AA-1, then Evt17 AR-5)',
    T,
    async (t) => {
      const { wire, a, user } = await established(t);
      a.abort();
      assert.deepEqual((await wire.next()).raw, A_ABORT_USER);
      assert.equal(a.established, false);
      await wire.end();
      const err = await withTimeout(a.closed, 1000, 'not closed');
      assert.ok(err instanceof AssociationAbortedError);
      assert.equal(await user.closeError, err);
      a.abort(); // idempotent
    },
  );

  test(
    'abort(): the requestor closes at ARTIM when the peer keeps the connection open (Sta13 Evt18 AA-2)',
    T,
    async (t) => {
      const { wire, a } = await established(t);
      a.abort();
      await wire.expect('A-ABORT');
      const took = await wire.expectClosed(ARTIM_MS + 1500);
      assert.ok(took >= ARTIM_MS - 80, `closed after ${took} ms`);
      assert.ok((await a.closed) instanceof AssociationAbortedError);
    },
  );

  test(
    'sendPData: a 100 KB data set arrives in P-DATA-TF PDUs no longer than the peer max PDU',
    T,
    async (t) => {
      const max = 4096;
      const { wire, a } = await established(t, max);
      assert.equal(a.info.peerMaxPduLength, max);
      const data = Buffer.alloc(100 * 1024);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
      for (const pdu of fragment(1, false, data, a.info.peerMaxPduLength)) await a.sendPData(pdu);
      const parts: Buffer[] = [];
      let pdus = 0;
      for (;;) {
        const { pdu, raw } = await wire.next();
        assert.equal(pdu.type, 'P-DATA-TF');
        assert.ok(raw.readUInt32BE(2) <= max, `PDU-length ${raw.readUInt32BE(2)} > ${max}`);
        pdus++;
        if (pdu.type !== 'P-DATA-TF') break;
        for (const pdv of pdu.pdvs) {
          assert.equal(pdv.contextId, 1);
          assert.equal(pdv.command, false);
          parts.push(pdv.data);
        }
        if (pdu.pdvs.at(-1)!.last) break;
      }
      assert.deepEqual(Buffer.concat(parts), data);
      assert.equal(pdus, Math.ceil(data.length / (max - 6)));
    },
  );

  test('P-DATA-TF from the peer is indicated to the user', T, async (t) => {
    const { wire, user } = await established(t);
    wire.send(pdata(1, Buffer.from('hello'), false, true));
    await withTimeout(
      (async () => {
        while (user.pdata.length === 0) await delay(5);
      })(),
      1000,
      'no P-DATA indication',
    );
    assert.equal(user.pdata[0]![0]!.data.toString(), 'hello');
  });

  test(
    'A-RELEASE-RQ from the acceptor: A-RELEASE-RP after onReleaseRequested (Sta6 Evt12 AR-2, Evt14 AR-4)',
    T,
    async (t) => {
      let released = false;
      const { wire, a } = await established(t, 16384, async () => {
        await delay(100);
        released = true;
      });
      wire.send(A_RELEASE_RQ);
      assert.deepEqual((await wire.next()).raw, A_RELEASE_RP);
      assert.ok(released);
      await wire.end();
      assert.equal(await withTimeout(a.closed, 1000, 'not closed'), undefined);
    },
  );

  test(
    'an A-ASSOCIATE-AC while established: A-ABORT (source 2, unexpected-PDU), the user is told (Sta6 Evt3 AA-8)',
    T,
    async (t) => {
      const { wire, user } = await established(t);
      wire.send(associateAc(associateRq()));
      assert.deepEqual(await wire.expect('A-ABORT'), { type: 'A-ABORT', source: 2, reason: 2 });
      assert.ok((await user.closeError) instanceof AssociationAbortedError);
      await wire.expectClosed(ARTIM_MS + 1500);
    },
  );
});
