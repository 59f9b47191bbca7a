// Finds references in the repository's text that point nowhere: Markdown links to a missing file or
// heading, a `*.md` file name that resolves to no file, a `../` path that leaves the file's folder for
// something absent (or leaves the repository), and a code span naming a path under one of the
// repository's own top-level folders that does not exist. Paths of other projects (Envoy's
// `source/…`, proxy-wasm-cpp-host's `src/…`) are not under those folders and are left alone.
//
//   node --import tsx scripts/doc-references.ts [file …]   default: every Markdown file; exit 1 on any
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

// Folders whose paths a code span may name as this repository's files. Generated folders (build/,
// .data/) are not among them: their files exist only after a build or a run.
export const REPOSITORY_FOLDERS = [
  "assembly",
  "bench",
  "bin",
  "docs",
  "envoy",
  "gateway",
  "host",
  "schema",
  "scripts",
  "service",
  "test",
];

export interface BrokenReference {
  file: string; // relative to the root
  line: number;
  reference: string;
  reason: string;
}

// GitHub's heading anchor: lower case, punctuation other than `-` and `_` dropped, spaces to `-`;
// a repeated heading gets `-1`, `-2`, ….
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) continue;
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const base = heading[1]
      .replace(/`/g, "")
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, "")
      .replace(/ /g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== "" && !rel.startsWith("..") && !rel.startsWith(sep);
}

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

// The broken references in one file's text. `file` is the file's path relative to `root`.
export function findBrokenReferences(root: string, file: string, text: string): BrokenReference[] {
  const broken: BrokenReference[] = [];
  const folder = dirname(join(root, file));
  const lines = text.split("\n");
  const report = (index: number, reference: string, reason: string) =>
    broken.push({ file, line: index + 1, reference, reason });

  const checkTarget = (index: number, reference: string, target: string, anchor: string | undefined) => {
    if (target === "") {
      if (anchor !== undefined && !headingAnchors(text).has(anchor.toLowerCase())) {
        report(index, reference, `no heading with anchor #${anchor}`);
      }
      return;
    }
    const path = resolve(folder, target);
    if (!inside(root, path)) return report(index, reference, "outside the repository");
    if (!existsSync(path)) return report(index, reference, "no such file or folder");
    if (anchor !== undefined && path.endsWith(".md") && isFile(path)) {
      if (!headingAnchors(readFileSync(path, "utf8")).has(anchor.toLowerCase())) {
        report(index, reference, `no heading with anchor #${anchor}`);
      }
    }
  };

  let fenced = false;
  lines.forEach((line, index) => {
    const fence = /^\s*(```|~~~)/.test(line);
    if (fence) fenced = !fenced;

    if (!fenced && !fence) {
      // Markdown links and images: [text](target) — external and mail links are not checked.
      for (const match of line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const reference = match[1];
        if (/^[a-z][a-z0-9+.-]*:/i.test(reference)) continue;
        const [target, anchor] = reference.split("#", 2);
        checkTarget(index, reference, decodeURI(target), anchor);
      }
    }

    // A Markdown file named anywhere, in prose or code, must be one of ours: relative to the file,
    // else to the root.
    for (const match of line.matchAll(/(?<![\w./-])((?:\.\.?\/)?[\w./-]*[\w-]\.md)\b/g)) {
      const name = match[1];
      if (line.slice(match.index + name.length).startsWith("](")) continue; // a link's text
      if (line.slice(match.index - 2, match.index) === "](") continue; // a link's target, checked above
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(line.slice(Math.max(0, match.index - 12), match.index + 1)))
        continue;
      const candidates = [resolve(folder, name), resolve(root, name)];
      if (!candidates.some((path) => inside(root, path) && existsSync(path))) {
        report(index, name, "no such Markdown file in the repository");
      }
    }

    // `../` paths, in prose or code.
    for (const match of line.matchAll(/(?<![\w./-])(\.\.\/[\w./-]*[\w-])/g)) {
      const name = match[1];
      if (line.slice(match.index - 2, match.index) === "](") continue; // checked as a link
      const path = resolve(folder, name);
      if (!inside(root, path)) report(index, name, "outside the repository");
      else if (!existsSync(path)) report(index, name, "no such file or folder");
    }

    // Code spans naming a path under one of our folders (outside fenced blocks, which show
    // commands and output rather than cite files).
    if (!fenced && !fence) {
      for (const match of line.matchAll(/`([^`\s]+)`/g)) {
        const span = match[1];
        const top = span.split("/")[0];
        if (!span.includes("/") || !REPOSITORY_FOLDERS.includes(top)) continue;
        if (/[*{}<>…]/.test(span)) continue; // a pattern or a placeholder, not a path
        if (!existsSync(join(root, span.replace(/\/$/, "")))) {
          report(index, span, "no such file or folder");
        }
      }
    }
  });
  return broken;
}

// README.md and every Markdown file in the repository's own folders (docs/, envoy/plugins/, bench/, …).
export function documentationFiles(root: string = ROOT): string[] {
  const files = existsSync(join(root, "README.md")) ? ["README.md"] : [];
  const walk = (folder: string) => {
    if (!existsSync(join(root, folder))) return;
    for (const entry of readdirSync(join(root, folder), { withFileTypes: true })) {
      const path = `${folder}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".md")) files.push(path);
    }
  };
  for (const folder of REPOSITORY_FOLDERS) walk(folder);
  return files.sort((a, b) => (a === "README.md" ? -1 : b === "README.md" ? 1 : a < b ? -1 : 1));
}

export function checkFiles(files: string[], root: string = ROOT): BrokenReference[] {
  return files.flatMap((file) => findBrokenReferences(root, file, readFileSync(join(root, file), "utf8")));
}

export function describe(reference: BrokenReference): string {
  return `${reference.file}:${reference.line}: ${reference.reference}: ${reference.reason}`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const broken = checkFiles(args.length > 0 ? args : documentationFiles());
  for (const reference of broken) console.error(describe(reference));
  process.exit(broken.length === 0 ? 0 : 1);
}
