// package.json promises a Node version; every locked dependency must accept the oldest version that promise
// allows, or `npm ci` prints EBADENGINE warnings (and the dependency may not run there).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import semver from "semver";

const root = new URL("../../", import.meta.url);
const json = (file: string) => JSON.parse(readFileSync(new URL(file, root), "utf8"));

test("every locked dependency accepts the oldest Node that package.json engines allows", () => {
  const promised = json("package.json").engines.node as string;
  const oldest = semver.minVersion(promised);
  assert.ok(oldest !== null, promised);
  const lock = json("package-lock.json") as {
    packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
  };
  const refusing = Object.entries(lock.packages)
    .filter(([where, pkg]) => {
      if (where === "" || pkg.engines === undefined || Array.isArray(pkg.engines)) return false;
      const range = pkg.engines.node;
      return range !== undefined && !semver.satisfies(oldest, range);
    })
    .map(([where, pkg]) => `${where}@${pkg.version} wants node ${(pkg.engines as { node: string }).node}`);
  assert.deepEqual(refusing, [], `package.json promises node ${promised}`);
});
