// Checks over a folder of TypeScript sources, for test/unit/structure.test.ts: the import graph
// between the folder's own files (relative imports only, type-only imports included — a cycle of
// types is still a cycle a reader has to untangle) and file lengths. The imports are read with the
// TypeScript compiler's own scanner (ts.preProcessFile), so comments and strings never count.
// Specifiers resolve with or without the .ts extension and to a folder's index.ts, which covers both
// the Node sources (`./x.ts`) and the AssemblyScript ones (`./x`).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

/** Every .ts file under `folder` (recursively), absolute paths, sorted; `.d.ts` files are skipped. */
export function sourceFiles(folder: string, exclude: (path: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (exclude(path)) continue;
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(path);
    }
  };
  walk(resolve(folder));
  return out;
}

function resolveRelative(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return undefined;
  const base = resolve(dirname(from), specifier);
  for (const candidate of [base, `${base}.ts`, join(base, "index.ts")]) {
    if (candidate.endsWith(".ts") && existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

/** file → the files of the same set it imports (import, export … from, import(), import x = require). */
export function importGraph(files: string[]): Map<string, string[]> {
  const inSet = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    const targets = new Set<string>();
    for (const imported of info.importedFiles) {
      const target = resolveRelative(file, imported.fileName);
      if (target && inSet.has(target)) targets.add(target);
    }
    graph.set(file, [...targets].sort());
  }
  return graph;
}

/**
 * The import cycles among `folder`'s .ts files, each as a list of paths relative to `folder`
 * starting and ending with the same file ([] when the graph is acyclic). One cycle — the shortest
 * through the alphabetically first file — is reported per strongly connected component (Tarjan),
 * so a tangle shows once, not once per rotation; fix it and the next one shows.
 */
export function importCycles(folder: string, exclude?: (path: string) => boolean): string[][] {
  const graph = importGraph(sourceFiles(folder, exclude));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  const connect = (v: string) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      const selfLoop = (graph.get(v) ?? []).includes(v);
      if (component.length > 1 || selfLoop) components.push(component);
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) connect(v);
  const root = resolve(folder);
  return components.map((component) => {
    // The shortest cycle through the component's first file (breadth-first inside the component;
    // one exists because every file of a strongly connected component reaches every other).
    const members = new Set(component);
    const start = [...component].sort()[0];
    const cameFrom = new Map<string, string>();
    const queue = [start];
    let last: string | undefined;
    while (queue.length > 0 && last === undefined) {
      const at = queue.shift()!;
      for (const w of graph.get(at) ?? []) {
        if (!members.has(w)) continue;
        if (w === start) {
          last = at;
          break;
        }
        if (!cameFrom.has(w)) {
          cameFrom.set(w, at);
          queue.push(w);
        }
      }
    }
    const path = [start];
    for (let at = last; at !== undefined && at !== start; at = cameFrom.get(at)) path.splice(1, 0, at);
    path.push(start);
    return path.map((p) => relative(root, p));
  });
}

/** Files under `folder` longer than `maxLines` lines, as `path (n lines)` relative to `folder`. */
export function oversizedFiles(
  folder: string,
  maxLines: number,
  exclude?: (path: string) => boolean,
): string[] {
  const root = resolve(folder);
  return sourceFiles(folder, exclude)
    .map((file) => ({ file, lines: readFileSync(file, "utf8").split("\n").length - 1 }))
    .filter(({ lines }) => lines > maxLines)
    .map(({ file, lines }) => `${relative(root, file)} (${lines} lines)`);
}
