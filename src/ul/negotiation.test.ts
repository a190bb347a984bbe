// Association negotiation without sockets (PS3.8 §7.1, §9.3; PS3.7 Annex D.3.3): the acceptor's decision
// (negotiateAsAcceptor) and what the requestor learns from the A-ASSOCIATE-AC (acceptedByPeer).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  associateAc,
  associateRq,
  CT,
  EVRLE,
  IVRLE,
  JPEG_BASELINE,
  MR,
  VERIFICATION,
} from './fake-peer.test-util.ts';
import {
  type AAssociateAc,
  type AAssociateRq,
  type AcceptDecision,
  type AcceptorPolicy,
  DICOM_APPLICATION_CONTEXT,
  decodePdu,
  encodePdu,
  negotiateAsAcceptor,
} from './index.ts';
import { acceptedByPeer } from './negotiation.ts';

const POLICY: AcceptorPolicy = {
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
};

function accepted(decision: AcceptDecision) {
  if (!('accept' in decision)) assert.fail(`rejected: ${decision.why}`);
  return decision;
}

function rejected(decision: AcceptDecision) {
  if (!('reject' in decision)) assert.fail('accepted');
  return decision;
}

function rq(change: (rq: AAssociateRq) => void = () => {}): AAssociateRq {
  const value = associateRq();
  change(value);
  return value;
}

const withRoles = (roles: AAssociateRq['userInformation']['roles']) => (r: AAssociateRq) => {
  r.userInformation.roles = roles;
};

const withAsyncOps = (maxInvoked: number, maxPerformed: number) => (r: AAssociateRq) => {
  r.userInformation.asyncOps = { maxInvoked, maxPerformed };
};

describe('negotiateAsAcceptor: A-ASSOCIATE-RJ (PS3.8 Table 9-21)', () => {
  test('protocol version without bit 0: rejected-permanent, service-provider (ACSE), protocol-version-not-supported', async () => {
    const d = rejected(
      await negotiateAsAcceptor(
        rq((r) => (r.protocolVersion = 2)),
        POLICY,
      ),
    );
    assert.deepEqual(d.reject, { type: 'A-ASSOCIATE-RJ', result: 1, source: 2, reason: 2 });
    assert.match(d.why, /protocol version 2/);
  });

  test('protocol version with bit 0 among others is accepted', async () => {
    accepted(
      await negotiateAsAcceptor(
        rq((r) => (r.protocolVersion = 3)),
        POLICY,
      ),
    );
  });

  test('called AE title not in calledAETitles: (1, 1, 7)', async () => {
    const d = rejected(
      await negotiateAsAcceptor(
        rq((r) => (r.calledAETitle = 'NOBODY')),
        POLICY,
      ),
    );
    assert.deepEqual(d.reject, { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 7 });
    assert.match(d.why, /NOBODY/);
  });

  test("calledAETitles 'any' accepts any called AE title", async () => {
    accepted(
      await negotiateAsAcceptor(
        rq((r) => (r.calledAETitle = 'WHOEVER')),
        { ...POLICY, calledAETitles: 'any' },
      ),
    );
  });

  test('calling AE title not in callingAETitles: (1, 1, 3); without the list every calling AE is allowed', async () => {
    const policy = { ...POLICY, callingAETitles: ['FRIEND'] };
    const d = rejected(await negotiateAsAcceptor(rq(), policy));
    assert.deepEqual(d.reject, { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 3 });
    accepted(
      await negotiateAsAcceptor(
        rq((r) => (r.callingAETitle = 'FRIEND')),
        policy,
      ),
    );
    accepted(await negotiateAsAcceptor(rq(), POLICY));
  });

  test('application context other than the DICOM one: (1, 1, 2)', async () => {
    const d = rejected(
      await negotiateAsAcceptor(
        rq((r) => (r.applicationContextName = '1.2.3')),
        POLICY,
      ),
    );
    assert.deepEqual(d.reject, { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 2 });
  });

  test('user identity refused by the policy: (1, 1, 1); the policy sees the identity and the calling AE', async () => {
    const seen: unknown[] = [];
    const request = rq((r) => {
      r.userInformation.userIdentity = {
        type: 2,
        positiveResponseRequested: true,
        primaryField: Buffer.from('mallory'),
        secondaryField: Buffer.from('guess'),
      };
    });
    const d = rejected(
      await negotiateAsAcceptor(request, {
        ...POLICY,
        userIdentity: async (identity, calling) => {
          seen.push([
            identity.type,
            identity.primaryField.toString(),
            identity.secondaryField.toString(),
            calling,
          ]);
          return { accepted: false, response: Buffer.from('never sent') };
        },
      }),
    );
    assert.deepEqual(d.reject, { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 1 });
    assert.deepEqual(seen, [[2, 'mallory', 'guess', 'FAKESCU']]);
  });

  test('the checks come in order: a bad called AE title is reported before the rest', async () => {
    const d = rejected(
      await negotiateAsAcceptor(
        rq((r) => {
          r.calledAETitle = 'NOBODY';
          r.applicationContextName = '1.2.3';
        }),
        { ...POLICY, callingAETitles: ['FRIEND'] },
      ),
    );
    assert.equal(d.reject.reason, 7);
  });
});

describe('negotiateAsAcceptor: A-ASSOCIATE-AC', () => {
  test('echoes the AE titles, the DICOM application context, and gives our user information', async () => {
    const { accept } = accepted(await negotiateAsAcceptor(rq(), POLICY));
    assert.equal(accept.type, 'A-ASSOCIATE-AC');
    assert.equal(accept.protocolVersion, 1);
    assert.equal(accept.calledAETitle, 'TESSERA');
    assert.equal(accept.callingAETitle, 'FAKESCU');
    assert.equal(accept.applicationContextName, DICOM_APPLICATION_CONTEXT);
    assert.equal(accept.userInformation.maxPduLength, 16384);
    assert.equal(accept.userInformation.implementationClassUid, POLICY.implementationClassUid);
    assert.equal(accept.userInformation.implementationVersionName, 'TESSERA_TEST');
    assert.deepEqual(accept.userInformation.roles, []);
    assert.equal(accept.userInformation.asyncOps, undefined);
    assert.equal(accept.userInformation.userIdentityResponse, undefined);
    // What we answer always encodes.
    assert.deepEqual(decodePdu(encodePdu(accept)), accept);
  });

  test('presentation contexts: 3 abstract syntax not supported, 4 transfer syntaxes not supported, else the first proposed we support', async () => {
    const request = rq((r) => {
      r.presentationContexts = [
        { id: 1, abstractSyntax: '1.2.3.999', transferSyntaxes: [IVRLE] },
        { id: 3, abstractSyntax: CT, transferSyntaxes: [JPEG_BASELINE] },
        { id: 5, abstractSyntax: CT, transferSyntaxes: [JPEG_BASELINE, EVRLE, IVRLE] },
        { id: 7, abstractSyntax: CT, transferSyntaxes: [IVRLE, EVRLE] },
        { id: 9, abstractSyntax: VERIFICATION, transferSyntaxes: [EVRLE, IVRLE] },
      ];
    });
    const d = accepted(await negotiateAsAcceptor(request, POLICY));
    assert.deepEqual(d.accept.presentationContexts, [
      { id: 1, result: 3, transferSyntax: '' },
      { id: 3, result: 4, transferSyntax: '' },
      { id: 5, result: 0, transferSyntax: EVRLE },
      { id: 7, result: 0, transferSyntax: IVRLE },
      { id: 9, result: 0, transferSyntax: IVRLE },
    ]);
    assert.deepEqual(
      d.contexts.map((c) => [c.id, c.abstractSyntax, c.transferSyntax]),
      [
        [5, CT, EVRLE],
        [7, CT, IVRLE],
        [9, VERIFICATION, IVRLE],
      ],
    );
    assert.deepEqual(d.rejected, [
      { id: 1, abstractSyntax: '1.2.3.999', result: 3 },
      { id: 3, abstractSyntax: CT, result: 4 },
    ]);
    assert.deepEqual(decodePdu(encodePdu(d.accept)), d.accept);
  });

  test('every context rejected: still an A-ASSOCIATE-AC, with no usable context', async () => {
    const d = accepted(
      await negotiateAsAcceptor(
        rq((r) => {
          r.presentationContexts = [{ id: 1, abstractSyntax: '1.2.3.999', transferSyntaxes: [IVRLE] }];
        }),
        POLICY,
      ),
    );
    assert.deepEqual(d.contexts, []);
    assert.equal(d.rejected.length, 1);
  });

  test('no role item: the requestor is SCU only (PS3.7 D.3.3.4 defaults), and no role item is answered', async () => {
    const d = accepted(
      await negotiateAsAcceptor(rq(), { ...POLICY, roles: () => ({ scu: true, scp: true }) }),
    );
    assert.deepEqual(d.accept.userInformation.roles, []);
    for (const c of d.contexts) {
      assert.equal(c.requestorIsScu, true);
      assert.equal(c.requestorIsScp, false);
    }
  });

  test('role selection: the SCP role asked and granted by policy.roles', async () => {
    const asked: unknown[] = [];
    const d = accepted(
      await negotiateAsAcceptor(rq(withRoles([{ sopClassUid: CT, scu: true, scp: true }])), {
        ...POLICY,
        roles: (abstractSyntax, roles) => {
          asked.push([abstractSyntax, roles]);
          return { scu: true, scp: true };
        },
      }),
    );
    assert.deepEqual(asked, [[CT, { scu: true, scp: true }]]);
    assert.deepEqual(d.accept.userInformation.roles, [{ sopClassUid: CT, scu: true, scp: true }]);
    const ct = d.contexts.find((c) => c.abstractSyntax === CT)!;
    assert.equal(ct.requestorIsScp, true);
    assert.equal(ct.requestorIsScu, true);
  });

  test('role selection without policy.roles: the SCU role as asked, the SCP role refused', async () => {
    const d = accepted(
      await negotiateAsAcceptor(rq(withRoles([{ sopClassUid: CT, scu: true, scp: true }])), POLICY),
    );
    assert.deepEqual(d.accept.userInformation.roles, [{ sopClassUid: CT, scu: true, scp: false }]);
    assert.equal(d.contexts.find((c) => c.abstractSyntax === CT)!.requestorIsScp, false);
  });

  test('role selection: a role not proposed is never granted, whatever policy.roles says (PS3.7 D.3.3.4)', async () => {
    const d = accepted(
      await negotiateAsAcceptor(rq(withRoles([{ sopClassUid: CT, scu: false, scp: true }])), {
        ...POLICY,
        roles: () => ({ scu: true, scp: true }),
      }),
    );
    assert.deepEqual(d.accept.userInformation.roles, [{ sopClassUid: CT, scu: false, scp: true }]);
    const ct = d.contexts.find((c) => c.abstractSyntax === CT)!;
    assert.equal(ct.requestorIsScu, false);
    assert.equal(ct.requestorIsScp, true);
  });

  test('role selection: one role item per SOP class even with several contexts for it', async () => {
    const d = accepted(
      await negotiateAsAcceptor(
        rq((r) => {
          r.presentationContexts = [
            { id: 1, abstractSyntax: CT, transferSyntaxes: [IVRLE] },
            { id: 3, abstractSyntax: CT, transferSyntaxes: [EVRLE] },
          ];
          r.userInformation.roles = [{ sopClassUid: CT, scu: true, scp: true }];
        }),
        { ...POLICY, roles: () => ({ scu: true, scp: true }) },
      ),
    );
    assert.equal(d.accept.userInformation.roles.length, 1);
    assert.deepEqual(
      d.contexts.map((c) => c.requestorIsScp),
      [true, true],
    );
  });

  describe('asynchronous operations window (PS3.7 D.3.3.3): min of asked and ours, 0 = unlimited', () => {
    const cases: [string, [number, number], Partial<AcceptorPolicy>, [number, number]][] = [
      ['asked (8, 1), we perform 4', [8, 1], { maxOpsPerformed: 4 }, [4, 1]],
      ['asked (2, 1), we perform 4: the smaller', [2, 1], { maxOpsPerformed: 4 }, [2, 1]],
      ['asked unlimited invocations, we perform 4', [0, 1], { maxOpsPerformed: 4 }, [4, 1]],
      ['asked 5, we perform unlimited', [5, 1], { maxOpsPerformed: 0 }, [5, 1]],
      ['both unlimited', [0, 0], { maxOpsPerformed: 0, maxOpsInvoked: 0 }, [0, 0]],
      ['no policy: 1 and 1', [8, 8], {}, [1, 1]],
      ['asked to perform 3, we invoke 2', [1, 3], { maxOpsInvoked: 2 }, [1, 2]],
    ];
    for (const [name, [invoked, performed], policy, expected] of cases) {
      test(name, async () => {
        const d = accepted(
          await negotiateAsAcceptor(rq(withAsyncOps(invoked, performed)), { ...POLICY, ...policy }),
        );
        assert.deepEqual(d.accept.userInformation.asyncOps, {
          maxInvoked: expected[0],
          maxPerformed: expected[1],
        });
      });
    }

    test('not asked: not answered, whatever the policy', async () => {
      const d = accepted(
        await negotiateAsAcceptor(rq(), { ...POLICY, maxOpsPerformed: 4, maxOpsInvoked: 4 }),
      );
      assert.equal(d.accept.userInformation.asyncOps, undefined);
    });
  });

  describe('user identity (PS3.7 D.3.3.7)', () => {
    const identity = (positiveResponseRequested: boolean) => (r: AAssociateRq) => {
      r.userInformation.userIdentity = {
        type: 5,
        positiveResponseRequested,
        primaryField: Buffer.from('eyJhbGciOi...'),
        secondaryField: Buffer.alloc(0),
      };
    };

    test('accepted with positiveResponseRequested: the response goes in the AC', async () => {
      const d = accepted(
        await negotiateAsAcceptor(rq(identity(true)), {
          ...POLICY,
          userIdentity: async () => ({ accepted: true, response: Buffer.from('ok') }),
        }),
      );
      assert.deepEqual(d.accept.userInformation.userIdentityResponse, Buffer.from('ok'));
      assert.deepEqual(decodePdu(encodePdu(d.accept)), d.accept);
    });

    test('accepted without positiveResponseRequested: no response', async () => {
      const d = accepted(
        await negotiateAsAcceptor(rq(identity(false)), {
          ...POLICY,
          userIdentity: async () => ({ accepted: true, response: Buffer.from('ok') }),
        }),
      );
      assert.equal(d.accept.userInformation.userIdentityResponse, undefined);
    });

    test('without policy.userIdentity the identity is not checked and not answered', async () => {
      const d = accepted(await negotiateAsAcceptor(rq(identity(true)), POLICY));
      assert.equal(d.accept.userInformation.userIdentityResponse, undefined);
    });

    test('policy.userIdentity is not called when the requestor sent no identity', async () => {
      let calls = 0;
      accepted(
        await negotiateAsAcceptor(rq(), {
          ...POLICY,
          userIdentity: async () => {
            calls++;
            return { accepted: false };
          },
        }),
      );
      assert.equal(calls, 0);
    });
  });
});

describe('acceptedByPeer: the requestor reads the A-ASSOCIATE-AC', () => {
  const request = rq((r) => {
    r.presentationContexts = [
      { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IVRLE] },
      { id: 3, abstractSyntax: CT, transferSyntaxes: [EVRLE, IVRLE] },
      { id: 5, abstractSyntax: MR, transferSyntaxes: [EVRLE] },
    ];
  });

  function ac(change: (ac: AAssociateAc) => void = () => {}): AAssociateAc {
    const value = associateAc(request);
    change(value);
    return value;
  }

  test('accepted contexts with the transfer syntax the acceptor chose; the rest with their result', () => {
    const { contexts, rejected: refused } = acceptedByPeer(
      request,
      ac((a) => {
        a.presentationContexts = [
          { id: 1, result: 0, transferSyntax: IVRLE },
          { id: 3, result: 0, transferSyntax: IVRLE },
          { id: 5, result: 4, transferSyntax: '' },
        ];
      }),
    );
    assert.deepEqual(contexts, [
      {
        id: 1,
        abstractSyntax: VERIFICATION,
        transferSyntax: IVRLE,
        requestorIsScu: true,
        requestorIsScp: false,
      },
      { id: 3, abstractSyntax: CT, transferSyntax: IVRLE, requestorIsScu: true, requestorIsScp: false },
    ]);
    assert.deepEqual(refused, [{ id: 5, abstractSyntax: MR, result: 4 }]);
  });

  test('an answer for a context ID we never proposed is ignored', () => {
    const { contexts, rejected: refused } = acceptedByPeer(
      request,
      ac((a) => {
        a.presentationContexts = [
          { id: 1, result: 0, transferSyntax: IVRLE },
          { id: 99, result: 0, transferSyntax: IVRLE },
        ];
      }),
    );
    assert.deepEqual(
      contexts.map((c) => c.id),
      [1],
    );
    assert.deepEqual(refused, []);
  });

  test('role asked and granted: SCP on that SOP class', () => {
    const asking = {
      ...request,
      userInformation: { ...request.userInformation, roles: [{ sopClassUid: CT, scu: true, scp: true }] },
    };
    const { contexts } = acceptedByPeer(
      asking,
      ac((a) => {
        a.userInformation.roles = [{ sopClassUid: CT, scu: true, scp: true }];
      }),
    );
    const ct = contexts.find((c) => c.abstractSyntax === CT)!;
    assert.equal(ct.requestorIsScp, true);
    assert.equal(ct.requestorIsScu, true);
    assert.equal(contexts.find((c) => c.abstractSyntax === MR)!.requestorIsScp, false);
  });

  test('role asked and refused (scp=0): SCU only', () => {
    const asking = {
      ...request,
      userInformation: { ...request.userInformation, roles: [{ sopClassUid: CT, scu: true, scp: true }] },
    };
    const { contexts } = acceptedByPeer(
      asking,
      ac((a) => {
        a.userInformation.roles = [{ sopClassUid: CT, scu: true, scp: false }];
      }),
    );
    const ct = contexts.find((c) => c.abstractSyntax === CT)!;
    assert.deepEqual([ct.requestorIsScu, ct.requestorIsScp], [true, false]);
  });

  test('role asked but no role item answered: the defaults, SCU only (PS3.7 D.3.3.4)', () => {
    const asking = {
      ...request,
      userInformation: { ...request.userInformation, roles: [{ sopClassUid: CT, scu: false, scp: true }] },
    };
    const { contexts } = acceptedByPeer(asking, ac());
    const ct = contexts.find((c) => c.abstractSyntax === CT)!;
    assert.deepEqual([ct.requestorIsScu, ct.requestorIsScp], [true, false]);
  });

  test('a role item answered for a role never asked is ignored (PS3.7 D.3.3.4)', () => {
    const { contexts } = acceptedByPeer(
      request,
      ac((a) => {
        a.userInformation.roles = [{ sopClassUid: CT, scu: true, scp: true }];
      }),
    );
    assert.equal(contexts.find((c) => c.abstractSyntax === CT)!.requestorIsScp, false);
  });

  test('an SCP role granted that was not proposed (scp=0 asked) is ignored', () => {
    const asking = {
      ...request,
      userInformation: { ...request.userInformation, roles: [{ sopClassUid: CT, scu: true, scp: false }] },
    };
    const { contexts } = acceptedByPeer(
      asking,
      ac((a) => {
        a.userInformation.roles = [{ sopClassUid: CT, scu: true, scp: true }];
      }),
    );
    const ct = contexts.find((c) => c.abstractSyntax === CT)!;
    assert.deepEqual([ct.requestorIsScu, ct.requestorIsScp], [true, false]);
  });

  test('both sides agree: what the acceptor decided is what the requestor reads from the bytes', async () => {
    const asking = rq((r) => {
      r.presentationContexts = [
        { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IVRLE] },
        { id: 3, abstractSyntax: CT, transferSyntaxes: [JPEG_BASELINE, EVRLE] },
        { id: 5, abstractSyntax: '1.2.3.999', transferSyntaxes: [IVRLE] },
        { id: 7, abstractSyntax: MR, transferSyntaxes: [JPEG_BASELINE] },
      ];
      r.userInformation.roles = [
        { sopClassUid: CT, scu: true, scp: true },
        { sopClassUid: VERIFICATION, scu: false, scp: true },
      ];
    });
    const d = accepted(
      await negotiateAsAcceptor(asking, { ...POLICY, roles: (uid) => ({ scu: true, scp: uid === CT }) }),
    );
    const wire = decodePdu(encodePdu(d.accept));
    assert.equal(wire.type, 'A-ASSOCIATE-AC');
    const seen = acceptedByPeer(asking, wire as AAssociateAc);
    assert.deepEqual(seen.contexts, d.contexts);
    assert.deepEqual(seen.rejected, d.rejected);
  });
});
