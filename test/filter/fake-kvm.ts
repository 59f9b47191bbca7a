// An in-process stand-in for the KVM service's data plane (docs/service.md), as a cluster handler:
// for the memory tests, which send thousands of callouts and need them fast. Behaviour tests use
// the real service (test/filter/cluster-service.test.ts).
import type { ClusterAnswer, ClusterHandler } from "../../host/index.ts";

export function fakeKvmService(): {
  handler: ClusterHandler;
  entries: Map<string, { value: Buffer; version: number }>;
} {
  const entries = new Map<string, { value: Buffer; version: number }>();
  let version = 0;
  const handler: ClusterHandler = (req): ClusterAnswer => {
    const h = (name: string) => req.headers.find(([k]) => k === name)?.[1];
    const path = h(":path") ?? "";
    const m = /^\/v1\/kvms\/([^/]+)\/entries\/(.+)$/.exec(path);
    if (!m) return { headers: [[":status", "400"]] };
    const id = `${m[1]}\0${m[2]}`;
    const current = entries.get(id);
    switch (h(":method")) {
      case "GET":
        if (!current) return { headers: [[":status", "404"]], body: '{"error":"not_found"}' };
        if (h("if-none-match") === `"${current.version}"`) return { headers: [[":status", "304"]] };
        return {
          headers: [
            [":status", "200"],
            ["etag", `"${current.version}"`],
          ],
          body: current.value,
        };
      case "PUT":
        if (h("if-none-match") === "*" && current) return { headers: [[":status", "412"]] };
        entries.set(id, { value: req.body, version: ++version });
        return {
          headers: [
            [":status", current ? "200" : "201"],
            ["etag", `"${version}"`],
          ],
        };
      case "DELETE":
        entries.delete(id);
        return { headers: [[":status", "204"]] };
      default:
        return { headers: [[":status", "405"]] };
    }
  };
  return { handler, entries };
}
