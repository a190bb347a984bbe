/**
 * The bearer-token check of the DICOMweb server: static tokens (compared in constant time) and/or
 * JWTs verified against a JWKS URL with jose (signature, expiry, and issuer/audience when
 * configured). Off when neither is configured (the default, on 127.0.0.1).
 */
import { timingSafeEqual } from 'node:crypto';

export interface BearerAuthOptions {
  readonly tokens?: readonly string[] | undefined;
  readonly jwksUrl?: string | undefined;
  readonly issuer?: string | undefined;
  readonly audience?: string | undefined;
}

/** The check for `DicomWebOptions.authorize`, or undefined when nothing is configured. */
export function bearerAuth(
  options: BearerAuthOptions,
): ((authorization: string | undefined) => Promise<boolean>) | undefined {
  const tokens = (options.tokens ?? []).map((t) => Buffer.from(t, 'utf8'));
  if (tokens.length === 0 && !options.jwksUrl) return undefined;
  // jose is loaded only when JWTs are configured (it is several MiB a server without them never needs).
  const jwks = options.jwksUrl
    ? import('jose').then((jose) => ({ jose, keys: jose.createRemoteJWKSet(new URL(options.jwksUrl!)) }))
    : undefined;
  return async (authorization) => {
    const m = /^Bearer\s+(\S+)\s*$/iu.exec(authorization ?? '');
    if (!m) return false;
    const presented = Buffer.from(m[1]!, 'utf8');
    if (tokens.some((t) => t.length === presented.length && timingSafeEqual(t, presented))) return true;
    if (!jwks) return false;
    try {
      const { jose, keys } = await jwks;
      await jose.jwtVerify(m[1]!, keys, {
        ...(options.issuer ? { issuer: options.issuer } : {}),
        ...(options.audience ? { audience: options.audience } : {}),
      });
      return true;
    } catch {
      return false;
    }
  };
}
