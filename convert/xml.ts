// A small element tree with line numbers over saxes (a streaming XML parser that reports positions), for the
// converters' per-element report.
import { SaxesParser } from "saxes";

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** The element's own text (child elements' text excluded), trimmed. */
  text: string;
  /** Line of the start tag's name (1-based). */
  line: number;
}

export class XmlError extends Error {}

export function parseXml(text: string): XmlElement {
  const parser = new SaxesParser({ position: true });
  const stack: XmlElement[] = [];
  const texts: string[][] = [];
  let root: XmlElement | undefined;
  let startLine = 1;
  let error: Error | undefined;
  parser.on("opentagstart", () => {
    startLine = parser.line;
  });
  parser.on("opentag", (tag) => {
    const attrs: Record<string, string> = {};
    for (const [k, v] of Object.entries(tag.attributes)) attrs[k] = typeof v === "string" ? v : v.value;
    const el: XmlElement = { name: tag.name, attrs, children: [], text: "", line: startLine };
    if (stack.length > 0) stack[stack.length - 1].children.push(el);
    else root = el;
    stack.push(el);
    texts.push([]);
  });
  const onText = (t: string) => {
    if (texts.length > 0) texts[texts.length - 1].push(t);
  };
  parser.on("text", onText);
  parser.on("cdata", onText);
  parser.on("closetag", () => {
    const el = stack.pop()!;
    el.text = texts.pop()!.join("").trim();
  });
  parser.on("error", (err) => {
    error ??= err;
  });
  parser.write(text).close();
  if (error !== undefined) throw new XmlError(error.message);
  if (root === undefined) throw new XmlError("no root element");
  return root;
}

/** The first child element with that name. */
export function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

export function children(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}
