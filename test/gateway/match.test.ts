// The gateway's route matching with safe_regex, as Envoy's: RE2 syntax, the whole path (without the query) or
// header value must match, and a pattern RE2 refuses stops the start with the path of the field.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { GatewayConfigError, parseGatewayConfig, type RouteSpec } from "../../gateway/config.ts";
import { matchRoute } from "../../gateway/match.ts";
import { recordReliability } from "../reliability/record.ts";
import { bootstrap } from "./bootstrap.ts";

const ROUTES_AT =
  "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]";

function routesOf(routes: object[]): RouteSpec[] {
  const yaml = bootstrap({
    route_config: { virtual_hosts: [{ name: "all", domains: ["*"], routes }] },
    clusters: [{ name: "backend", load_assignment: { endpoints: [] } }],
  });
  return parseGatewayConfig(yaml, {}).listeners[0].virtualHosts[0].routes;
}

const route = (name: string, match: object) => ({ name, match, route: { cluster: "backend" } });
const take = (routes: RouteSpec[], method: string, path: string, headers: Record<string, string> = {}) =>
  matchRoute(routes, method, path, headers)?.name ?? null;

describe("gateway route matching: safe_regex", () => {
  it("the whole path without the query must match; a partial match does not take the request", () => {
    const routes = routesOf([
      route("one-order", { safe_regex: { regex: "/v1/orders/[^/]+" } }),
      route("anchored", { safe_regex: { regex: "^/v2/(a|b)$" } }),
      route("rest", { prefix: "/" }),
    ]);
    assert.equal(take(routes, "GET", "/v1/orders/17"), "one-order");
    assert.equal(take(routes, "GET", "/v1/orders/17?expand=1"), "one-order", "the query is not part of it");
    assert.equal(take(routes, "GET", "/v1/orders/17/items"), "rest", "RE2 FullMatch, not a search");
    assert.equal(take(routes, "GET", "/x/v1/orders/17"), "rest");
    assert.equal(take(routes, "GET", "/v1/orders/"), "rest");
    assert.equal(take(routes, "GET", "/v2/b"), "anchored");
    assert.equal(take(routes, "GET", "/v2/ab"), "rest");
  });

  it("header string_match safe_regex: several methods, :authority from Host, other headers joined by commas", () => {
    const routes = routesOf([
      route("reads", {
        prefix: "/",
        headers: [
          { name: ":method", string_match: { safe_regex: { regex: "GET|HEAD" } } },
          { name: ":authority", string_match: { safe_regex: { regex: "[^.]+\\.example\\.com(:[0-9]+)?" } } },
        ],
      }),
      route("tagged", {
        prefix: "/",
        headers: [{ name: "x-tag", string_match: { safe_regex: { regex: "a,b" } } }],
      }),
    ]);
    assert.equal(take(routes, "HEAD", "/", { host: "api.example.com:8000" }), "reads");
    assert.equal(take(routes, "GET", "/", { host: "api.example.com" }), "reads");
    assert.equal(take(routes, "POST", "/", { host: "api.example.com" }), null);
    assert.equal(take(routes, "GET", "/", { host: "a.b.example.com" }), null, "[^.]+ is one label");
    assert.equal(take(routes, "GET", "/"), null, "no Host, no :authority");
    assert.equal(matchRoute(routes, "PUT", "/", { "x-tag": ["a", "b"] })?.name, "tagged");
  });

  it("RE2 syntax, not JavaScript's: \\Q…\\E and [[:digit:]] work; backreferences and lookaround stop the start", () => {
    const routes = routesOf([
      route("quoted", { safe_regex: { regex: "/files/\\Q a.b\\E" } }),
      route("posix", { safe_regex: { regex: "/n/[[:digit:]]+", google_re2: {} } }),
    ]);
    assert.equal(take(routes, "GET", "/files/ a.b"), "quoted");
    assert.equal(take(routes, "GET", "/files/ axb"), null);
    assert.equal(take(routes, "GET", "/n/42"), "posix");
    const refused = ["/(a)\\1", "/(?=a)", "/(?!a)", "/(?<=a)b", "/a++"];
    for (const regex of refused) {
      assert.throws(
        () => routesOf([route("bad", { safe_regex: { regex } })]),
        (err: Error) => {
          assert.ok(err instanceof GatewayConfigError);
          assert.match(
            err.message,
            new RegExp(
              `^${ROUTES_AT.replace(/[[\].]/g, "\\$&")}\\.routes\\[0\\]\\.match\\.safe_regex\\.regex: ` +
                "not a valid RE2 pattern \\(Envoy refuses it\\): error parsing regexp: ",
            ),
          );
          return true;
        },
        regex,
      );
    }
    assert.throws(
      () =>
        routesOf([
          route("bad", {
            prefix: "/",
            headers: [{ name: "x", string_match: { safe_regex: { regex: "(?=x)" } } }],
          }),
        ]),
      /routes\[0\]\.match\.headers\[0\]\.string_match\.safe_regex\.regex: not a valid RE2 pattern/,
    );
    assert.throws(
      () => routesOf([route("two", { prefix: "/", safe_regex: { regex: "/" } })]),
      /routes\[0\]\.match: exactly one of prefix, path and safe_regex$/,
    );
    assert.throws(
      () => routesOf([route("h", { prefix: "/", headers: [{ name: "x", string_match: { prefix: "a" } }] })]),
      /string_match\.prefix: not supported by the local gateway/,
    );
    recordReliability({
      area: "bad input",
      name: "route regexes RE2 refuses (backreferences, lookaround, possessive repetition)",
      cases: refused.length + 1,
      result: "start refused, naming the field",
    });
  });
});
