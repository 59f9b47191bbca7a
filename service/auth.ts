// Bearer-token checks. Tokens are compared through their SHA-256 digests with timingSafeEqual, against every
// configured token without an early exit, so neither the position of a mismatch nor which token matched shows
// in the response time.
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { HttpError } from "./errors.ts";

const digest = (token: string) => createHash("sha256").update(token, "utf8").digest();

export class TokenSet {
  private readonly digests: Buffer[];

  constructor(tokens: string[]) {
    this.digests = tokens.map(digest);
  }

  get size(): number {
    return this.digests.length;
  }

  matches(token: string): boolean {
    const candidate = digest(token);
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(candidate, d) || ok;
    return ok;
  }
}

export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match === null ? null : match[1];
}

/**
 * Whether a plane accepts a bearer token (null: none sent). A plane whose own token set is empty runs open (the
 * config only allows that in insecure local mode); otherwise its own tokens and the `alsoAccepted` ones (admin
 * tokens on the data plane: admin is a superset) are valid. Every set is checked (no short-circuit), so the time
 * does not tell which plane's token matched.
 */
export function bearerCheck(own: TokenSet, alsoAccepted: TokenSet[] = []): (token: string | null) => boolean {
  const accepted = [own, ...alsoAccepted];
  return (token) =>
    own.size === 0 || (token !== null && accepted.reduce((ok, set) => set.matches(token) || ok, false));
}

/** An onRequest hook for one plane: 401 unless bearerCheck accepts the request's token. */
export function requireBearer(own: TokenSet, alsoAccepted: TokenSet[] = []) {
  const accepts = bearerCheck(own, alsoAccepted);
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const token = bearerToken(request.headers.authorization);
    if (accepts(token)) return;
    reply.header("www-authenticate", 'Bearer realm="envoy-kvm"');
    throw new HttpError(
      401,
      "unauthorized",
      token === null ? "missing bearer token (Authorization: Bearer <token>)" : "invalid bearer token",
    );
  };
}
