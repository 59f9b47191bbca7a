// Apigee flow conditions as Envoy route matches: the routing forms convert, and requests match the converted
// route exactly when Apigee's condition holds; other forms say why they cannot.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { conditionToMatch } from "../../convert/apigee-conditions.ts";
import { routeFor } from "./support.ts";

function matches(condition: string | null, basePath: string, method: string, path: string): boolean {
  const match = conditionToMatch(condition, basePath);
  assert.ok(!("reason" in match), JSON.stringify(match));
  return routeFor([{ name: "r", match }], method, path) === "r";
}

describe("conditionToMatch", () => {
  it('MatchesPath: "*" is one path segment, "**" any number of them', () => {
    const c = '(proxy.pathsuffix MatchesPath "/orders/*") and (request.verb = "GET")';
    assert.equal(matches(c, "/v1", "GET", "/v1/orders/17"), true);
    assert.equal(matches(c, "/v1", "GET", "/v1/orders/17/items"), false);
    assert.equal(matches(c, "/v1", "POST", "/v1/orders/17"), false);
    assert.equal(matches('proxy.pathsuffix ~/ "/orders/**"', "/v1", "GET", "/v1/orders/17/items"), true);
    assert.equal(
      matches('proxy.pathsuffix MatchesPath "/a.b"', "/", "GET", "/aXb"),
      false,
      "dots are literal",
    );
  });

  it("=, StartsWith and JavaRegex on the path suffix; a verb alone; no condition matches the base path", () => {
    assert.deepEqual(conditionToMatch('proxy.pathsuffix = "/last"', "/v1/orders/"), {
      path: "/v1/orders/last",
    });
    assert.deepEqual(conditionToMatch('proxy.pathsuffix StartsWith "/admin"', "/v1"), {
      prefix: "/v1/admin",
    });
    assert.equal(matches('proxy.pathsuffix JavaRegex "/[0-9]+"', "/v1", "GET", "/v1/42"), true);
    assert.equal(matches('proxy.pathsuffix ~~ "/[0-9]+"', "/v1", "GET", "/v1/42x"), false);
    // A backslash escape in the pattern keeps its regex meaning (it was once dropped: \d became d).
    assert.equal(matches('proxy.pathsuffix JavaRegex "/\\d+"', "/v1", "GET", "/v1/42"), true);
    assert.equal(matches('proxy.pathsuffix JavaRegex "/\\d+"', "/v1", "GET", "/v1/ddd"), false);
    assert.equal(matches('proxy.pathsuffix = "/say \\"hi\\""', "/v1", "GET", '/v1/say "hi"'), true);
    assert.deepEqual(conditionToMatch('request.verb == "PUT"', "/"), {
      prefix: "/",
      headers: [{ name: ":method", string_match: { exact: "PUT" } }],
    });
    assert.deepEqual(conditionToMatch(null, "/v1"), { prefix: "/v1" });
  });

  it("or, not, other variables, other operators and two path tests have no route match", () => {
    const reason = (c: string) => (conditionToMatch(c, "/") as { reason: string }).reason;
    assert.equal(reason('a = "1" or b = "2"'), '"or" in a condition has no route-match equivalent');
    assert.equal(reason('!(request.verb = "GET")'), '"!" in a condition has no route-match equivalent');
    assert.equal(
      reason('request.header.x = "1"'),
      "a test of request.header.x = has no route-match equivalent (only proxy.pathsuffix and request.verb)",
    );
    assert.equal(reason('request.verb Matches "G*"'), "operator Matches has no route-match equivalent");
    assert.equal(reason('proxy.pathsuffix = "/a" and proxy.pathsuffix = "/b"'), "two path tests");
    assert.equal(reason("request.verb = GET"), '"request.verb = GET" is not <variable> <operator> "<value>"');
    assert.equal(
      reason('proxy.pathsuffix JavaRegex "/[0-9]++"'),
      'JavaRegex "/[0-9]++" is not RE2 syntax (Envoy\'s only regex engine): error parsing regexp: invalid nested repetition operator: `++`',
    );
    assert.match(reason('proxy.pathsuffix ~~ "/(?!admin).*"'), /^JavaRegex .* is not RE2 syntax/);
  });
});
