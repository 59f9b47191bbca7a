// HTTP/1.1 requests as bytes, sent over a plain socket so that malformed ones reach the server as
// they are (fetch and http.request refuse or repair them), and the one answer read back.
import { connect } from "node:net";
import type { Gen } from "./generator.ts";

export interface RawRequest {
  method: string;
  target: string;
  headers: [string | Buffer, string | Buffer][];
  body?: Buffer;
  /** Send the body with Transfer-Encoding: chunked, in two chunks, instead of Content-Length. */
  chunked?: boolean;
}

export function serialize(req: RawRequest): Buffer {
  const parts: Buffer[] = [Buffer.from(`${req.method} ${req.target} HTTP/1.1\r\n`, "latin1")];
  for (const [name, value] of req.headers) {
    parts.push(Buffer.from(name), Buffer.from(": "), Buffer.from(value), Buffer.from("\r\n"));
  }
  const body = req.body;
  if (body !== undefined && req.chunked) {
    const half = body.length >> 1;
    parts.push(Buffer.from("transfer-encoding: chunked\r\nconnection: close\r\n\r\n"));
    for (const chunk of [body.subarray(0, half), body.subarray(half)]) {
      if (chunk.length > 0)
        parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n"));
    }
    parts.push(Buffer.from("0\r\n\r\n"));
  } else {
    if (body !== undefined) parts.push(Buffer.from(`content-length: ${body.length}\r\n`));
    parts.push(Buffer.from("connection: close\r\n\r\n"));
    if (body !== undefined) parts.push(body);
  }
  return Buffer.concat(parts);
}

export interface RawAnswer {
  /** 0 when the connection closed without a status line; -1 when nothing came within the bound. */
  status: number;
  head: string;
  body: Buffer;
}

/**
 * Sends `bytes` and reads until the server closes (or `boundMs` passes: a hang). The client does not
 * half-close: Envoy (allow_half_close off) and Node's server both take a FIN as the end of the
 * exchange and drop a response still in preparation.
 */
export function exchange(port: number, bytes: Buffer, boundMs: number): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ status: -1, head: "", body: Buffer.alloc(0) });
    }, boundMs);
    socket.on("data", (d: Buffer) => chunks.push(d));
    // A server that answers and closes before it read everything resets the connection: what it
    // sent is still in `chunks`.
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const end = all.indexOf("\r\n\r\n");
      const head = (end < 0 ? all : all.subarray(0, end)).toString("latin1");
      let body: Buffer = end < 0 ? Buffer.alloc(0) : all.subarray(end + 4);
      if (/\r\ntransfer-encoding: chunked/i.test(head)) body = dechunk(body);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body });
    });
    socket.write(bytes);
  });
}

function dechunk(data: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const line = data.indexOf("\r\n", at);
    if (line < 0) break;
    const size = parseInt(data.subarray(at, line).toString("latin1"), 16);
    if (!(size > 0)) break;
    out.push(data.subarray(line + 2, line + 2 + size));
    at = line + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/** A header answer's value, first occurrence. */
export function headerValue(head: string, name: string): string | undefined {
  const re = new RegExp(`\\r\\n${name}: ([^\\r]*)`, "i");
  return re.exec(head)?.[1];
}

/** Headers an adversarial client sends: many, huge, odd bytes, duplicates, names HTTP does not allow. */
export function hostileHeaders(g: Gen, names: string[]): [string | Buffer, string | Buffer][] {
  const headers: [string | Buffer, string | Buffer][] = [["host", "api.example.com"]];
  for (const name of names) if (!g.oneIn(3)) headers.push([name, g.ascii(g.int(30))]);
  switch (g.int(10)) {
    case 0: // many
      for (let i = 200 + g.int(200); i > 0; i--) headers.push([`x-${g.token(8)}`, g.ascii(g.int(20))]);
      break;
    case 1: // huge: around Node's 16 KiB header limit, on either side
      headers.push([`x-${g.token(4)}`, "a".repeat(g.pick([8 * 1024, 15 * 1024, 17 * 1024, 64 * 1024]))]);
      break;
    case 2: // bytes above 0x7f (obs-text, allowed in values) and invalid UTF-8
      headers.push([g.pick(names), Buffer.concat([Buffer.from("v"), g.invalidUtf8(), g.bytes(g.int(10))])]);
      break;
    case 3: // control bytes, CR or LF alone, NUL: not allowed
      headers.push([g.pick(names), Buffer.from([0x61, g.pick([0x00, 0x01, 0x0d, 0x0a, 0x7f]), 0x62])]);
      break;
    case 4: // duplicates of the filter's inputs
      for (let i = 2 + g.int(4); i > 0; i--) headers.push([g.pick(names), g.ascii(g.int(10))]);
      break;
    case 5: // a name HTTP does not allow
      headers.push([g.pick(["bad header", "x:y", "\u00e9t\u00e9", "", "x\ty"]), "v"]);
      break;
    case 6: // a second Content-Length (0: with a body it contradicts the real one) or Host
      headers.push(g.oneIn(2) ? ["content-length", "0"] : ["host", "other.example.com"]);
      break;
    default:
      break;
  }
  return headers;
}
