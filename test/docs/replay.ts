// Extracts the console transcripts of a Markdown page and replays them, in the order shown, against a fresh
// state: the convention is docs/docs-that-run.md. One persistent bash per page (so `export`, `unset` and
// files carry from one block to the next), servers in their own process group as in another terminal.
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { ROOT } from "../../scripts/doc-references.ts";
import { createTestDatabase, groupAlive, type TestDatabase } from "../service/helpers.ts";

export { ROOT };

export interface Step {
  command: string;
  /** The output shown under the command, one "\n"-terminated line each. */
  expected: string;
  line: number;
}

export interface Block {
  line: number;
  steps: Step[];
  /** The reason of a `<!-- not replayed: reason -->` marker right above the block, or null. */
  notReplayed: string | null;
}

const MARKER = /^<!-- not replayed: (.+?) -->$/;

/** The ```console blocks of a Markdown page: `$ ` lines are commands (with their here-document, if any),
 *  the lines after them their output. */
export function consoleBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  let block: Block | null = null;
  let heredoc: string | null = null;
  lines.forEach((line, i) => {
    if (block === null) {
      if (line.trim() !== "```console") return;
      let above = i - 1;
      while (above >= 0 && lines[above].trim() === "") above--;
      const marker = above >= 0 ? MARKER.exec(lines[above].trim()) : null;
      block = { line: i + 1, steps: [], notReplayed: marker?.[1] ?? null };
      return;
    }
    const step = block.steps.at(-1);
    if (heredoc !== null && step !== undefined) {
      step.command += `\n${line}`;
      if (line === heredoc) heredoc = null;
    } else if (line.trim() === "```") {
      blocks.push(block);
      block = null;
    } else if (line.startsWith("$ ")) {
      const command = line.slice(2);
      heredoc = /<<-?["']?(\w+)["']?/.exec(command)?.[1] ?? null;
      block.steps.push({ command, expected: "", line: i + 1 });
    } else if (step !== undefined) step.expected += `${line}\n`;
  });
  return blocks;
}

// Commands a fresh clone has already run when the replay starts (npm test builds first); the replay must not
// run them again (npm ci would replace node_modules under the running tests).
const ALREADY_RUN = new Set(["npm ci", "npm run build", "npm run build:release"]);

// Commands that serve until stopped: the replay runs them in the background, as in another terminal.
const SERVER = /^(npm start|(\w+=\S+ )*npx envoy-kvm (service|gateway))\b/;

/** The shown output as a pattern: `…` stands for any text within a line; a line of only `…` for any number of
 *  lines. `prefix`: the output may go on after what is shown (a server still running). */
export function outputPattern(expected: string, prefix = false): RegExp {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const body = expected
    .split(/(?<=\n)/)
    .map((line) => (line === "…\n" ? "(?:[^\\n]*\\n)*?" : line.split("…").map(escape).join("[^\\n]*?")))
    .join("");
  return new RegExp(`^${body}${prefix ? "" : "$"}`);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Until the background shell has called setsid(), its group does not exist yet, but the process does. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function withoutTrailingBlankLines(text: string): string {
  const trimmed = text.replace(/\s+$/, "");
  return trimmed === "" ? "" : `${trimmed}\n`;
}

/** The doc's stand-ins and what the replay uses instead. */
export interface Substitution {
  shown: string;
  actual: string;
}

const SEPARATOR = "\x1e";
const STEP_TIMEOUT_MS = 60_000;

/** One page's shell: `step()` runs a step and asserts its output. */
export class Replay {
  private shell: ChildProcessWithoutNullStreams;
  private output = "";
  private server: { pgid: number; log: string; command: string } | null = null;
  private serverCount = 0;

  constructor(
    private scratch: string,
    env: NodeJS.ProcessEnv,
    private substitutions: Substitution[],
  ) {
    // Its own process group, so that a step that never ends can be stopped with the shell.
    this.shell = spawn("bash", [], { cwd: ROOT, env, detached: true });
    this.shell.stdout.on("data", (d: Buffer) => (this.output += d.toString("utf8")));
    this.shell.stderr.on("data", (d: Buffer) => (this.output += d.toString("utf8")));
    // `npx envoy-kvm` as the local binary without npx's own start-up (a second or more on a busy machine).
    this.shell.stdin.write(
      `npx() { if [ "$1" = envoy-kvm ]; then shift; node ${JSON.stringify(join(ROOT, "bin/envoy-kvm.js"))} "$@"; else command npx "$@"; fi; }\nexport -f npx\n`,
    );
  }

  private toActual(text: string): string {
    return this.substitutions.reduce((s, { shown, actual }) => s.replaceAll(shown, actual), text);
  }

  private toShown(text: string): string {
    return this.substitutions.reduce((s, { shown, actual }) => s.replaceAll(actual, shown), text);
  }

  /** Runs a script in the persistent shell; its stdout and stderr. */
  private async run(script: string): Promise<string> {
    this.output = "";
    // `$?` of a step is the previous step's status, as in a terminal.
    this.shell.stdin.write(
      `(exit $__status); {\n${script}\n} </dev/null 2>&1; __status=$?; printf '${SEPARATOR}'\n`,
    );
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while (!this.output.includes(SEPARATOR)) {
      if (this.shell.exitCode !== null) throw new Error(`the shell exited: ${this.output}`);
      if (Date.now() > deadline) throw new Error(`no end after ${STEP_TIMEOUT_MS} ms: ${this.output}`);
      await sleep(20);
    }
    return this.output.slice(0, this.output.indexOf(SEPARATOR)).replaceAll("\r\n", "\n");
  }

  async step(step: Step): Promise<void> {
    const where = `line ${step.line}: ${step.command}`;
    if (ALREADY_RUN.has(step.command)) {
      assert.equal(step.expected, "", `${where}: set-up steps are not replayed, so they show no output`);
      return;
    }
    if (SERVER.test(step.command)) return this.startServer(step, where);
    // Blank lines after the output only separate it from the next command.
    const output = withoutTrailingBlankLines(this.toShown(await this.run(this.toActual(step.command))));
    const expected = withoutTrailingBlankLines(step.expected);
    if (!outputPattern(expected).test(output)) assert.equal(output, expected, where);
  }

  /** Like pressing Ctrl-C in the server's terminal. */
  async stopServer(): Promise<void> {
    if (this.server === null) return;
    const { pgid, log, command } = this.server;
    this.server = null;
    if (groupAlive(pgid)) process.kill(-pgid, "SIGINT");
    for (let i = 0; i < 300 && groupAlive(pgid); i++) await sleep(100);
    if (groupAlive(pgid)) {
      process.kill(-pgid, "SIGKILL");
      assert.fail(`${command} did not stop on Ctrl-C:\n${readFileSync(log, "utf8")}`);
    }
  }

  private async startServer(step: Step, where: string): Promise<void> {
    assert.notEqual(step.expected, "", `${where}: a server command shows the output that says it is ready`);
    // One server terminal: the reader stops the previous server before starting the next.
    await this.stopServer();
    const log = join(this.scratch, `server-${++this.serverCount}.log`);
    // Created here: the background shell opens it only after `$!` is known.
    writeFileSync(log, "");
    const quoted = `'${this.toActual(step.command).replaceAll("'", `'\\''`)}'`;
    const pgid = Number(
      await this.run(`setsid bash -c ${quoted} >>${log} 2>&1 </dev/null &\nprintf '%s' $!`),
    );
    this.server = { pgid, log, command: step.command };
    const pattern = outputPattern(step.expected, true);
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    let output = "";
    for (;;) {
      output = this.toShown(readFileSync(log, "utf8").replaceAll("\r\n", "\n"));
      if (pattern.test(output) || !(groupAlive(pgid) || processAlive(pgid)) || Date.now() > deadline) break;
      await sleep(100);
    }
    if (!pattern.test(output)) assert.equal(output, step.expected, `${where} (started in the background)`);
  }

  async close(): Promise<void> {
    try {
      await this.stopServer();
    } finally {
      this.shell.stdin.end();
      if (groupAlive(this.shell.pid!)) process.kill(-this.shell.pid!, "SIGKILL");
    }
  }
}

/** The doc's ports, each replaced by a free one: the service, the gateway, the echo upstream, and a port
 *  nothing listens on. */
const DOC_PORTS = { service: 8081, gateway: 10000, upstream: 8080, closed: 8082 };
/** The doc's stand-in for "your own PostgreSQL": replaced by a fresh database. */
const DOC_DATABASE_URL = "postgres://kvm@db.internal:5432/kvm";

/** Replays every block of `file` (relative to the repository) not marked `not replayed`, as subtests of `t`. */
export async function replayDocument(t: TestContext, file: string): Promise<void> {
  const markdown = readFileSync(join(ROOT, file), "utf8");
  const blocks = consoleBlocks(markdown).filter((b) => b.notReplayed === null);
  const scratch = mkdtempSync(join(tmpdir(), "envoy-kvm-docs-"));
  // As root, the embedded PostgreSQL runs as `postgres`, which must be able to enter the folder.
  chmodSync(scratch, 0o755);
  mkdirSync(join(scratch, "tmp"));
  let database: TestDatabase | null = null;
  let replay: Replay | null = null;
  try {
    const ports = Object.fromEntries(
      await Promise.all(Object.entries(DOC_PORTS).map(async ([k, v]) => [k, [v, await freePort()]] as const)),
    ) as Record<keyof typeof DOC_PORTS, [number, number]>;
    const substitutions: Substitution[] = [{ shown: "/tmp/", actual: `${scratch}/tmp/` }];
    for (const [shown, actual] of Object.values(ports)) {
      for (const host of ["127.0.0.1", "localhost"]) {
        substitutions.push({ shown: `${host}:${shown}`, actual: `${host}:${actual}` });
      }
    }
    if (markdown.includes(DOC_DATABASE_URL)) {
      database = await createTestDatabase();
      substitutions.push({ shown: DOC_DATABASE_URL, actual: database.url });
    }
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of Object.keys(env)) {
      if (/^(KVM_|DATABASE_URL$|HOST$|PORT$|GATEWAY_PORT$|UPSTREAM_PORT$|LOG_LEVEL$)/.test(name))
        delete env[name];
    }
    Object.assign(env, {
      // The doc's default ports and data folder (./.data/postgres), moved to free ports and a scratch folder.
      PORT: String(ports.service[1]),
      GATEWAY_PORT: String(ports.gateway[1]),
      UPSTREAM_PORT: String(ports.upstream[1]),
      KVM_URL: `http://127.0.0.1:${ports.service[1]}`,
      KVM_DATA_DIR: join(scratch, ".data", "postgres"),
    });
    replay = new Replay(scratch, env, substitutions);
    for (const block of blocks) {
      await t.test(`${file}:${block.line}: ${block.steps[0]?.command ?? "(empty)"}`, async () => {
        for (const step of block.steps) await replay!.step(step);
      });
    }
  } finally {
    await replay?.close();
    await database?.drop();
    if (existsSync(scratch)) rmSync(scratch, { recursive: true, force: true });
  }
}
