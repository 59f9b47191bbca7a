// Apigee flow conditions → Envoy route matches, for the forms that are routing: conjunctions of a path-suffix
// test (`proxy.pathsuffix MatchesPath "/orders/*"`, `=`, `StartsWith`, `JavaRegex`) and a verb test
// (`request.verb = "GET"`). Anything else (or, not, other variables) returns why it cannot be routed.

import { compileRe2 } from "../gateway/match.ts";

export type RouteMatch = Record<string, unknown>;

type Token = { kind: "word" | "string" | "op" | "paren"; text: string };

function tokenize(condition: string): Token[] | string {
  const tokens: Token[] = [];
  const re = /\s*(?:(\(|\))|"((?:[^"\\]|\\.)*)"|(&&|\|\||!=|==|=\||~\/|~~|=|~|!)|([A-Za-z_][\w.-]*))/y;
  let at = 0;
  while (at < condition.length) {
    if (/^\s*$/.test(condition.slice(at))) break;
    re.lastIndex = at;
    const m = re.exec(condition);
    if (m === null) return `cannot read the condition at "${condition.slice(at).trim()}"`;
    at = re.lastIndex;
    // Only \" is an escape: any other backslash is kept, so a JavaRegex "\d+" stays \d+.
    if (m[1] !== undefined) tokens.push({ kind: "paren", text: m[1] });
    else if (m[2] !== undefined) tokens.push({ kind: "string", text: m[2].replace(/\\"/g, '"') });
    else if (m[3] !== undefined) tokens.push({ kind: "op", text: m[3] });
    else tokens.push({ kind: "word", text: m[4] });
  }
  return tokens;
}

const OPERATORS: Record<string, string> = {
  "=": "equals",
  "==": "equals",
  equals: "equals",
  is: "equals",
  "~/": "matchespath",
  matchespath: "matchespath",
  lenientmatchespath: "matchespath",
  "=|": "startswith",
  startswith: "startswith",
  "~~": "javaregex",
  javaregex: "javaregex",
};

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Apigee MatchesPath: `*` is one path segment, `**` any number of segments. */
function matchesPathRegex(pattern: string): string {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    if (pattern.startsWith("**", i)) {
      out += ".*";
      i++;
    } else if (pattern[i] === "*") out += "[^/]+";
    else out += escapeRegex(pattern[i]);
  }
  return out;
}

/**
 * The Envoy route match for a flow condition under an endpoint's base path, or a reason it has none.
 * `null` condition: the flow matches every request under the base path.
 */
export function conditionToMatch(
  condition: string | null,
  basePath: string,
): RouteMatch | { reason: string } {
  const base = basePath === "/" ? "" : basePath.replace(/\/+$/, "");
  const prefixAll: RouteMatch = { prefix: base === "" ? "/" : base };
  if (condition === null || condition.trim() === "") return prefixAll;
  const tokens = tokenize(condition);
  if (typeof tokens === "string") return { reason: tokens };
  // Split on `and` / `&&` at any parenthesis depth; parentheses around a single test are dropped.
  const atoms: Token[][] = [[]];
  for (const t of tokens) {
    if (t.kind === "paren") continue;
    if ((t.kind === "word" && t.text.toLowerCase() === "and") || (t.kind === "op" && t.text === "&&")) {
      atoms.push([]);
      continue;
    }
    if (
      (t.kind === "word" && /^(or|not)$/i.test(t.text)) ||
      (t.kind === "op" && /^(\|\||!|!=)$/.test(t.text))
    ) {
      return { reason: `"${t.text}" in a condition has no route-match equivalent` };
    }
    atoms[atoms.length - 1].push(t);
  }
  let path: RouteMatch | null = null;
  let method: string | null = null;
  for (const atom of atoms) {
    if (atom.length !== 3 || atom[0].kind !== "word" || atom[2].kind !== "string") {
      return { reason: `"${atom.map((t) => t.text).join(" ")}" is not <variable> <operator> "<value>"` };
    }
    const [variable, operatorToken, value] = [atom[0].text, atom[1].text, atom[2].text];
    const operator = OPERATORS[operatorToken.toLowerCase()];
    if (operator === undefined) return { reason: `operator ${operatorToken} has no route-match equivalent` };
    if (variable === "request.verb" && operator === "equals") {
      if (method !== null) return { reason: "two verb tests" };
      method = value;
    } else if (variable === "proxy.pathsuffix") {
      if (path !== null) return { reason: "two path tests" };
      if (operator === "equals") path = { path: `${base}${value}` };
      else if (operator === "startswith") path = { prefix: `${base}${value}` };
      else if (operator === "matchespath")
        path = { safe_regex: { regex: `^${escapeRegex(base)}${matchesPathRegex(value)}$` } };
      else {
        // JavaRegex is Java's full match; Envoy's engine is RE2, which refuses backreferences and lookaround.
        const compiled = compileRe2(value);
        if ("error" in compiled) {
          return {
            reason: `JavaRegex "${value}" is not RE2 syntax (Envoy's only regex engine): ${compiled.error}`,
          };
        }
        path = { safe_regex: { regex: `^${escapeRegex(base)}(?:${value})$` } };
      }
    } else {
      return {
        reason: `a test of ${variable} ${operatorToken} has no route-match equivalent (only proxy.pathsuffix and request.verb)`,
      };
    }
  }
  const match: RouteMatch = { ...(path ?? prefixAll) };
  if (method !== null) match.headers = [{ name: ":method", string_match: { exact: method } }];
  return match;
}
