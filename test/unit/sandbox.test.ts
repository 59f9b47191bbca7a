// The Docker sandbox, checked statically (no Docker daemon runs here): docker-compose.yml wires
// the services the way envoy/envoy.yaml expects them, images are pinned to patch releases, every
// file it mounts or copies exists (or is the filter build), every variable it needs is supplied by
// scripts/sandbox-up.sh, and the scripts are sound shell.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { clusterNames, compose, envoy, root, wasm } from "./envoy-yaml.ts";

/* eslint-disable @typescript-eslint/no-explicit-any */
const services: Record<string, any> = compose.services;
const composeText = readFileSync(`${root}docker-compose.yml`, "utf8");
const dockerfile = readFileSync(`${root}service/Dockerfile`, "utf8");
const sandboxUp = readFileSync(`${root}scripts/sandbox-up.sh`, "utf8");
const releaseWasm = JSON.parse(readFileSync(`${root}asconfig.json`, "utf8")).targets.release.binaryFile;

// `image: name:tag` → the tag, with ${VAR:-default} resolved to its default.
const imageOf = (service: any): string | undefined => service.image?.replace(/^\$\{[A-Z_]+:-(.+)\}$/, "$1");
// A patch release: 1.2.3, v1.2.3, 1.2.3-suffix — never latest, 1.2 or a bare major. PostgreSQL numbers
// its releases major.minor since 10, so there 17.6 is the patch release (and 17 would float).
const PINNED = /:v?\d+\.\d+\.\d+(?:-[a-z0-9.]+)*$/;
const PINNED_POSTGRES = /^postgres:\d+\.\d+(?:-[a-z0-9.]+)*$/;
const pinned = (image: string) => (image.startsWith("postgres:") ? PINNED_POSTGRES : PINNED).test(image);

// The cluster nothing serves: the e2e suite's KVM service outage, under Docker as in the local gateway.
const DOWN_CLUSTER = "kvm_service_down";

const endpointsOf = (name: string): { address: string; port_value: number }[] =>
  envoy.static_resources.clusters
    .find((c: any) => c.name === name)
    .load_assignment.endpoints.flatMap((e: any) =>
      e.lb_endpoints.map((l: any) => l.endpoint.address.socket_address),
    );

describe("docker-compose.yml", () => {
  it("pins every image to a patch release, Envoy to one with allow_on_headers_stop_iteration (>= 1.35)", () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.build) continue;
      assert.ok(pinned(imageOf(service) ?? ""), `service ${name}: ${service.image} is not a patch release`);
    }
    assert.match(services.envoy.image, /^\$\{ENVOY_IMAGE:-envoyproxy\/envoy:v\d+\.\d+\.\d+\}$/);
    const [major, minor] = imageOf(services.envoy)!.split(":v")[1].split(".").map(Number);
    assert.ok(major > 1 || minor >= 35, `Envoy ${major}.${minor}`);
    for (const from of dockerfile.matchAll(/^FROM\s+(\S+)/gm)) {
      assert.ok(pinned(from[1]), `service/Dockerfile: ${from[1]} is not a patch release`);
    }
    for (const floating of ["postgres:17", "node:20-slim", "envoyproxy/envoy:v1.37-latest", "node:latest"]) {
      assert.ok(!pinned(floating), floating);
    }
  });

  it("mounts the built filter and envoy.yaml where Envoy is told to find them", () => {
    const mounts = new Map<string, string>(
      services.envoy.volumes.map((v: string) => {
        const [source, target] = v.split(":");
        return [target, source];
      }),
    );
    assert.equal(mounts.get(wasm.vm_config.code.local.filename), `./${releaseWasm}`);
    const config = services.envoy.command[services.envoy.command.indexOf("-c") + 1];
    assert.equal(mounts.get(config), "./envoy/envoy.yaml");
    for (const v of services.envoy.volumes as string[]) assert.ok(v.endsWith(":ro"), `${v} is read-only`);
  });

  it("gives the filter's VM the environment variables envoy.yaml hands it", () => {
    for (const key of wasm.vm_config.environment_variables.host_env_keys) {
      assert.ok(key in services.envoy.environment, `${key} is not set on the envoy container`);
    }
  });

  it("runs a service for each cluster envoy.yaml names, on the port it names", () => {
    for (const cluster of clusterNames) {
      if (cluster === DOWN_CLUSTER) continue;
      for (const { address, port_value } of endpointsOf(cluster)) {
        const service = services[address];
        assert.ok(service, `cluster ${cluster} points at ${address}, which is not a service`);
        const command: string[] = service.command ?? [];
        const port = command.includes("--port")
          ? command[command.indexOf("--port") + 1]
          : service.environment?.PORT;
        assert.equal(String(port), String(port_value), `cluster ${cluster}`);
      }
    }
  });

  it(`points ${DOWN_CLUSTER} (envoy/plugins/outage.json) at a service, on a port it does not serve`, () => {
    const [{ address, port_value }] = endpointsOf(DOWN_CLUSTER);
    const service = services[address];
    assert.ok(service, `cluster ${DOWN_CLUSTER} points at ${address}, which is not a service`);
    assert.notEqual(String(service.environment?.PORT), String(port_value));
    assert.ok(!(service.ports ?? []).some((p: string) => p.endsWith(`:${port_value}`)));
  });

  it("starts in order and reports ready: healthchecks everywhere, migrations once before the service", () => {
    for (const [name, service] of Object.entries(services)) {
      for (const dependency of Object.keys(service.depends_on ?? {})) {
        assert.ok(services[dependency], `${name} depends on a missing service ${dependency}`);
      }
      if (name === "migrate") continue;
      assert.ok(service.healthcheck?.test, `${name} has no healthcheck: up --wait would not mean ready`);
    }
    assert.equal(services.migrate.restart, "no");
    assert.deepEqual(services.migrate.command, ["node", "bin/envoy-kvm.js", "migrate", "up"]);
    assert.equal(services["kvm-service"].depends_on.migrate.condition, "service_completed_successfully");
    assert.equal(services.migrate.depends_on.postgres.condition, "service_healthy");
    assert.ok(compose.volumes.pgdata !== undefined && services.postgres.volumes[0].startsWith("pgdata:"));
  });

  it("takes every secret from the environment: each required variable is one sandbox-up.sh supplies", () => {
    const supplied = /for name in ([A-Z_ ]+); do/.exec(sandboxUp)![1].split(" ");
    const required = [...composeText.matchAll(/\$\{([A-Z_]+)(:?[-?])?/g)]
      .filter((m) => m[2] !== ":-" && m[2] !== "-")
      .map((m) => m[1]);
    assert.ok(required.length > 0);
    for (const name of new Set(required)) assert.ok(supplied.includes(name), `${name} is never supplied`);
    assert.doesNotMatch(composeText, /(TOKENS?|PASSWORD):\s+["']?[A-Za-z0-9]/, "a literal secret");
  });

  it("builds only from files that exist, and runs node directly", () => {
    for (const copy of dockerfile.matchAll(/^COPY\s+(.+)\s+\S+$/gm)) {
      for (const source of copy[1].split(/\s+/)) assert.ok(existsSync(`${root}${source}`), `COPY ${source}`);
    }
    assert.match(dockerfile, /^CMD \["node", "bin\/envoy-kvm\.js", "service"\]$/m);
    for (const [name, service] of Object.entries(services)) {
      if (!service.build) continue;
      assert.ok(existsSync(`${root}${service.build.context}/${service.build.dockerfile}`), name);
      assert.ok(!JSON.stringify(service.command ?? []).includes("npm"), `${name}: signals must reach node`);
    }
  });
});

describe("scripts/sandbox-*.sh", () => {
  for (const script of ["sandbox-up.sh", "sandbox-down.sh", "sandbox-e2e.sh", "sandbox-validate.sh"]) {
    it(`${script} is executable, stops on the first error and parses`, () => {
      const path = `${root}scripts/${script}`;
      assert.ok((statSync(path).mode & 0o111) !== 0, "executable");
      assert.match(readFileSync(path, "utf8"), /^set -euo pipefail$/m);
      execFileSync("bash", ["-n", path]);
    });
  }

  it("validates with the image docker-compose.yml pins", () => {
    const extracted = execFileSync(
      "sed",
      ["-n", "s/^ *image: \\${ENVOY_IMAGE:-\\(.*\\)}$/\\1/p", `${root}docker-compose.yml`],
      { encoding: "utf8" },
    ).trim();
    assert.equal(extracted, imageOf(services.envoy));
    assert.match(
      readFileSync(`${root}scripts/sandbox-validate.sh`, "utf8"),
      /--mode validate -c \/etc\/envoy\/envoy\.yaml/,
    );
  });

  it("prints the logs when the e2e run fails and always tears down", () => {
    const e2e = readFileSync(`${root}scripts/sandbox-e2e.sh`, "utf8");
    assert.match(e2e, /trap finish EXIT/);
    assert.match(e2e, /docker compose logs/);
    assert.match(e2e, /scripts\/sandbox-down\.sh/);
  });

  it("runs every e2e file against Envoy with what test/e2e/stack.ts reads from the environment", () => {
    const e2e = readFileSync(`${root}scripts/sandbox-e2e.sh`, "utf8");
    const stack = readFileSync(`${root}test/e2e/stack.ts`, "utf8");
    assert.match(e2e, / test\/e2e\/\*\.test\.ts$/m, "all the files npm test runs, no list to drift");
    const published = (service: string, port: number) =>
      (services[service].ports as string[]).includes(`127.0.0.1:${port}:${port}`);
    assert.match(e2e, /GATEWAY_URL=http:\/\/127\.0\.0\.1:10000 /);
    assert.ok(published("envoy", 10000));
    assert.match(e2e, /KVM_URL=http:\/\/127\.0\.0\.1:8081 /);
    assert.ok(published("kvm-service", 8081));
    // KVM_ADMIN_TOKEN comes from .sandbox/env, exported (set -a) before the run.
    assert.match(e2e, /set -a\n.*\n\. \.sandbox\/env\nset \+a\n/);
    for (const name of ["GATEWAY_URL", "KVM_URL", "KVM_ADMIN_TOKEN"]) {
      assert.ok(stack.includes(`process.env.${name}`), `test/e2e/stack.ts reads ${name}`);
    }
  });
});
/* eslint-enable @typescript-eslint/no-explicit-any */
