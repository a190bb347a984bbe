import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isDicomError } from '../core/index.ts';
import {
  EXPLICIT_VR_LITTLE_ENDIAN,
  formatMediaType,
  MediaType,
  type MediaTypeOffer,
  multipartContentType,
  negotiate,
  parseAccept,
  parseContentType,
} from './media-type.ts';

describe('parseContentType', () => {
  test('lower-cases type and parameter names, unquotes values, keeps value case', () => {
    assert.deepEqual(parseContentType('Multipart/Related; Type="application/dicom"; boundary="abc def"'), {
      type: 'multipart/related',
      params: { type: 'application/dicom', boundary: 'abc def' },
    });
    assert.deepEqual(parseContentType('application/dicom+json; charset=utf-8'), {
      type: 'application/dicom+json',
      params: { charset: 'utf-8' },
    });
    assert.deepEqual(parseContentType('multipart/related;type=application/dicom;boundary=XyZ;'), {
      type: 'multipart/related',
      params: { type: 'application/dicom', boundary: 'XyZ' },
    });
    // A quoted value may hold ; and escaped quotes.
    assert.deepEqual(parseContentType('a/b; x="p;q \\"r\\""').params, { x: 'p;q "r"' });
  });

  test('refuses what is not a media type', () => {
    for (const bad of ['', 'dicom', '/json', 'a/b; =x', 'a/b; x="unterminated', 'a b/c']) {
      assert.throws(
        () => parseContentType(bad),
        (err: unknown) => isDicomError(err) && err.code === 'ERR_DICOMWEB_BAD_MEDIA_TYPE',
        bad,
      );
    }
  });

  test('formatMediaType quotes only what is not a token; round trip', () => {
    const text = multipartContentType(MediaType.DICOM, 'abc def');
    assert.equal(text, 'multipart/related; type="application/dicom"; boundary="abc def"');
    assert.deepEqual(parseContentType(text).params, { type: 'application/dicom', boundary: 'abc def' });
    assert.equal(
      formatMediaType('image/jpeg', { 'transfer-syntax': '1.2.840.10008.1.2.4.50' }),
      'image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50',
    );
  });
});

describe('parseAccept', () => {
  test('q-values order the ranges; specificity breaks ties; malformed ranges are dropped', () => {
    const ranges = parseAccept(
      'image/*;q=0.5, multipart/related; type="application/dicom"; transfer-syntax=*, */*;q=0.1, bad, application/dicom+json;q=0.5, x/y;q=2',
    );
    assert.deepEqual(
      ranges.map((r) => [r.type, r.q, r.params]),
      [
        ['multipart/related', 1, { type: 'application/dicom', 'transfer-syntax': '*' }],
        ['application/dicom+json', 0.5, {}],
        ['image/*', 0.5, {}],
        ['*/*', 0.1, {}],
      ],
    );
  });

  test('an absent or empty header accepts anything', () => {
    assert.deepEqual(parseAccept(undefined), [{ type: '*/*', params: {}, q: 1 }]);
    assert.deepEqual(parseAccept('  '), [{ type: '*/*', params: {}, q: 1 }]);
  });
});

describe('negotiate (PS3.18 8.7)', () => {
  const JLS = '1.2.840.10008.1.2.4.80';
  // WADO-RS instance retrieval: as stored, or Explicit VR Little Endian; and DICOM JSON for metadata-like routes.
  const instances: MediaTypeOffer = {
    type: MediaType.MULTIPART_RELATED,
    params: { type: MediaType.DICOM },
    transferSyntaxes: ['*', EXPLICIT_VR_LITTLE_ENDIAN, '1.2.840.10008.1.2'],
  };
  const json: MediaTypeOffer = { type: MediaType.DICOM_JSON };
  const jpeg: MediaTypeOffer = { type: MediaType.JPEG, transferSyntaxes: ['1.2.840.10008.1.2.4.50'] };

  test('transfer-syntax=* asks for the server choice (as stored)', () => {
    const r = negotiate('multipart/related; type="application/dicom"; transfer-syntax=*', [instances]);
    assert.ok(r.ok);
    assert.equal(r.transferSyntax, '*');
    assert.equal(r.mediaType, 'multipart/related; type="application/dicom"');
  });

  test('no transfer-syntax parameter implies Explicit VR Little Endian for application/dicom', () => {
    const r = negotiate('multipart/related; type="application/dicom"', [instances]);
    assert.ok(r.ok);
    assert.equal(r.transferSyntax, EXPLICIT_VR_LITTLE_ENDIAN);
  });

  test('an explicit transfer syntax the server cannot produce falls to a lesser range, else 406', () => {
    const r = negotiate(`multipart/related; type="application/dicom"; transfer-syntax=${JLS}, */*;q=0.2`, [
      instances,
    ]);
    assert.ok(r.ok);
    assert.equal(
      r.transferSyntax,
      EXPLICIT_VR_LITTLE_ENDIAN,
      'the */* range gets the default of application/dicom',
    );
    assert.equal(r.q, 0.2);
    const no = negotiate(`multipart/related; type="application/dicom"; transfer-syntax=${JLS}`, [instances]);
    assert.equal(no.ok, false);
    if (!no.ok) {
      assert.equal(no.status, 406);
      assert.match(no.message, /transfer-syntax/);
      assert.deepEqual(no.supported, [
        'multipart/related; type="application/dicom"; transfer-syntax="*,1.2.840.10008.1.2.1,1.2.840.10008.1.2"',
      ]);
    }
  });

  test('the type parameter of multipart/related must name the part type', () => {
    const r = negotiate('multipart/related; type="application/octet-stream"', [instances]);
    assert.equal(r.ok, false);
    const any = negotiate('multipart/related', [json, instances]);
    assert.ok(any.ok);
    assert.equal(any.offer, instances);
  });

  test('q-values choose among offers; ties go to the server order; q=0 excludes', () => {
    const a = negotiate(
      'application/dicom+json;q=0.4, multipart/related; type="application/dicom"; transfer-syntax=*;q=0.9',
      [json, instances],
    );
    assert.ok(a.ok);
    assert.equal(a.offer, instances);
    const b = negotiate('*/*', [json, instances]);
    assert.ok(b.ok);
    assert.equal(b.offer, json);
    assert.equal(b.transferSyntax, undefined);
    const c = negotiate('application/dicom+json;q=0, */*', [json, instances]);
    assert.ok(c.ok);
    assert.equal(c.offer, instances, 'the more specific q=0 range wins over */* for the JSON offer');
    assert.equal(c.transferSyntax, EXPLICIT_VR_LITTLE_ENDIAN);
  });

  test('image/* and image/jpeg (a default that is not offered is refused, a listed one accepted)', () => {
    const wild = negotiate('image/*', [json, jpeg]);
    assert.ok(wild.ok);
    assert.equal(wild.offer, jpeg);
    assert.equal(wild.transferSyntax, '1.2.840.10008.1.2.4.50');
    // image/jpeg without transfer-syntax means the lossless default 1.2.840.10008.1.2.4.70 (PS3.18 Table 8.7.3-5).
    assert.equal(negotiate('image/jpeg', [jpeg]).ok, false);
    const explicit = negotiate('image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50', [jpeg]);
    assert.ok(explicit.ok);
  });

  test('an Accept of only malformed ranges accepts nothing', () => {
    assert.equal(negotiate('garbage', [json]).ok, false);
  });
});
