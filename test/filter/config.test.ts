// The compiled filter accepts and rejects exactly the configurations of the shared table, with
// the exact message, in one critical log line (the schema side is test/unit/config-schema.test.ts).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { configCases } from "./config-cases.ts";
import { startKvm } from "./support.ts";

const CRITICAL = 5;

describe("plugin configuration through the compiled filter", () => {
  for (const c of configCases) {
    it(c.name, async () => {
      const critical: string[] = [];
      const started = await startKvm(c.config, {
        logSink: (level, message) => {
          if (level === CRITICAL) critical.push(message);
        },
      }).then(
        () => true,
        () => false,
      );
      if (c.error === null) {
        assert.equal(started, true, `rejected: ${critical.join(" | ")}`);
        assert.deepEqual(critical, []);
      } else {
        assert.equal(started, false, "accepted a configuration that must be rejected");
        assert.deepEqual(critical, [`invalid configuration: ${c.error}`]);
      }
    });
  }
});
