// Envoy's route table as the local gateway models it: the first route whose path and header conditions hold.
// Regular expressions are RE2's (Envoy's only engine, envoy/type/matcher/v3/regex.proto), through re2js, a port
// of RE2 with the same syntax and linear-time matching: a `safe_regex` must match the whole input (RE2's
// FullMatch, as Envoy's source/common/common/regex.cc calls it), and a pattern RE2 refuses — backreferences,
// lookaround, possessive repetition — is a start-up error, as Envoy refuses the configuration.
import type { IncomingMessage } from "node:http";
import { RE2JS } from "re2js";

/** A compiled RE2 pattern with the text it was given (for messages). */
export interface Re2 {
  source: string;
  matches(input: string): boolean;
}

export interface HeaderMatch {
  name: string;
  exact?: string;
  regex?: Re2;
}

export interface RouteMatch {
  prefix?: string;
  path?: string;
  regex?: Re2;
  headers: HeaderMatch[];
}

/** Compiles an RE2 pattern; RE2's own message when it refuses it. */
export function compileRe2(source: string): Re2 | { error: string } {
  try {
    const compiled = RE2JS.compile(source);
    return { source, matches: (input) => compiled.matches(input) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

// A header's value as Envoy's HeaderUtility sees it: HTTP/1's Host is :authority, several values joined by ",".
function headerValue(
  name: string,
  method: string,
  path: string,
  headers: IncomingMessage["headers"],
): string | undefined {
  if (name === ":method") return method;
  if (name === ":path") return path;
  if (name === ":scheme") return "http"; // the gateway serves plain HTTP/1.1 only
  const value = headers[name === ":authority" ? "host" : name];
  return Array.isArray(value) ? value.join(",") : value;
}

/**
 * The first route that takes the request. A prefix is matched against the whole :path (query included), an
 * exact path and a safe_regex against the path without the query (envoy/config/route/v3/route_components.proto).
 */
export function matchRoute<R extends RouteMatch>(
  routes: R[],
  method: string,
  path: string,
  headers: IncomingMessage["headers"],
): R | null {
  const bare = path.split("?", 1)[0];
  for (const route of routes) {
    if (route.prefix !== undefined && !path.startsWith(route.prefix)) continue;
    if (route.path !== undefined && bare !== route.path) continue;
    if (route.regex !== undefined && !route.regex.matches(bare)) continue;
    const headersHold = route.headers.every(({ name, exact, regex }) => {
      const value = headerValue(name, method, path, headers);
      if (value === undefined) return false;
      return exact !== undefined ? value === exact : regex!.matches(value);
    });
    if (headersHold) return route;
  }
  return null;
}
