// Reads an Apigee proxy as the converter needs it: one policy XML file, an apiproxy folder (or the folder
// holding apiproxy/), or a proxy bundle .zip as Apigee and apigeecli export it. File names in the report are the
// path given plus the file's place in the bundle.
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import AdmZip from "adm-zip";

export interface BundleFile {
  /** Path inside the bundle, from `apiproxy/`, e.g. `apiproxy/policies/KVM-Get.xml`. */
  path: string;
  /** How the report names it. */
  display: string;
  text: string;
}

export interface Bundle {
  kind: "policy" | "bundle";
  files: BundleFile[];
}

function walk(dir: string, base: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    const rel = base === "" ? name : `${base}/${name}`;
    if (statSync(full).isDirectory()) out.push(...walk(full, rel));
    else out.push(rel);
  }
  return out;
}

export function readBundle(input: string): Bundle {
  if (!existsSync(input)) throw new Error(`${input} does not exist`);
  if (statSync(input).isDirectory()) {
    // The folder holding apiproxy/, or apiproxy/ itself.
    const hasApiproxy =
      existsSync(join(input, "apiproxy")) && statSync(join(input, "apiproxy")).isDirectory();
    const dir = hasApiproxy ? join(input, "apiproxy") : input;
    const shown = hasApiproxy ? `${input.replace(/\/+$/, "")}/apiproxy` : input.replace(/\/+$/, "");
    if (!existsSync(join(dir, "policies")) && !existsSync(join(dir, "proxies"))) {
      throw new Error(`${input} is not an Apigee proxy: no apiproxy/, policies/ or proxies/ folder`);
    }
    const files = walk(dir, "")
      .filter((f) => f.endsWith(".xml"))
      .map((f) => ({
        path: `apiproxy/${f}`,
        display: `${shown}/${f}`,
        text: readFileSync(join(dir, f), "utf8"),
      }));
    return { kind: "bundle", files };
  }
  if (input.toLowerCase().endsWith(".zip")) {
    let zip: AdmZip;
    try {
      zip = new AdmZip(input);
    } catch (err) {
      throw new Error(`${input} is not a zip file (${(err as Error).message})`);
    }
    const files: BundleFile[] = [];
    for (const entry of zip.getEntries()) {
      if (entry.isDirectory || !entry.entryName.endsWith(".xml")) continue;
      const at = entry.entryName.indexOf("apiproxy/");
      if (at < 0) continue;
      const path = entry.entryName.slice(at);
      files.push({ path, display: `${input}:${path}`, text: entry.getData().toString("utf8") });
    }
    if (files.length === 0)
      throw new Error(`${input} holds no apiproxy/ folder (not an Apigee proxy bundle)`);
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { kind: "bundle", files };
  }
  return { kind: "policy", files: [{ path: input, display: input, text: readFileSync(input, "utf8") }] };
}
