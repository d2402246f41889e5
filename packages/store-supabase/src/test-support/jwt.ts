import { createHmac, timingSafeEqual } from 'node:crypto';

// HS256 JSON Web Tokens, as a Supabase project signs its anon and service-role keys and its users' access tokens.

const base64url = (value: Buffer | string): string => Buffer.from(value).toString('base64url');

export function signJwt(claims: Record<string, unknown>, secret: string): string {
  const now = Math.floor(Date.now() / 1000);
  const head = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = base64url(JSON.stringify({ iat: now, exp: now + 3600, ...claims }));
  const signature = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${signature}`;
}

export class JwtError extends Error {
  constructor(
    readonly code: 'PGRST301' | 'PGRST303',
    message: string,
  ) {
    super(message);
  }
}

/** The claims of a token signed with `secret` (HS256 only), or a JwtError with PostgREST's code for the failure. */
export function verifyJwt(token: string, secret: string, now = Date.now()): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwtError('PGRST301', 'Expected 3 parts in JWT; got ' + parts.length);
  const [head, body, signature] = parts as [string, string, string];
  let header: { alg?: unknown };
  let claims: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8')) as { alg?: unknown };
    claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new JwtError('PGRST301', 'JWT cryptographic operation failed');
  }
  if (header.alg !== 'HS256') throw new JwtError('PGRST301', 'Wrong or unsupported encoding algorithm');
  const expected = createHmac('sha256', secret).update(`${head}.${body}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new JwtError('PGRST301', 'JWT cryptographic operation failed');
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= now) throw new JwtError('PGRST303', 'JWT expired');
  return claims;
}
