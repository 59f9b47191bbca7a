// One configuration and one round of requests that between them take every request path of the
// filter (each source and destination, successes, local replies, trailers), for the leak tests.
import type { Worker } from "../../host/index.ts";
import { op, type Pairs } from "./support.ts";

export const everyPathConfiguration = {
  operations: [
    op({
      operation_type: "put",
      key: [
        { source_type: "header", source_name: "x-k" },
        { source_type: "query", source_name: "q" },
      ],
      value_source_type: "body",
      value_source_name: "user.name",
      ttl: 60,
      on_error_continue: true,
    }),
    op({
      operation_type: "put",
      key_source_type: "header",
      key_source_name: "x-k",
      value_source_type: "header",
      value_source_name: "x-v",
      override: false,
      on_error_continue: true,
    }),
    op({
      operation_type: "get",
      key_source_type: "header",
      key_source_name: "x-k",
      output_destination_type: "body",
      output_destination_name: "meta.v",
      on_error_continue: true,
    }),
    op({
      operation_type: "get",
      key_source_type: "header",
      key_source_name: "x-k",
      output_destination_type: "query",
      output_destination_name: "v",
      on_error_continue: true,
    }),
    op({
      operation_type: "get",
      key_source_type: "header",
      key_source_name: "x-k",
      output_destination_type: "shared_context",
      output_destination_name: "c",
      on_error_continue: true,
    }),
    op({
      operation_type: "get",
      key_source_type: "shared_context",
      key_source_name: "c",
      output_destination_type: "response_header",
      output_destination_name: "x-r",
      default_value: "d",
      on_error_continue: true,
    }),
    op({
      operation_type: "delete",
      key_source_type: "body",
      key_source_name: "user.gone",
      on_error_continue: true,
    }),
    op({
      operation_type: "get",
      key_source_type: "header",
      key_source_name: "x-k",
      output_destination_type: "header",
      output_destination_name: "x-out",
    }),
  ],
};

const requests: { path: string; headers: Pairs; body?: string; trailers?: Pairs }[] = [
  {
    path: "/?q=1",
    headers: [
      ["x-k", "a"],
      ["x-v", "v"],
    ],
    body: '{"user":{"name":"n","gone":"a"}}',
  },
  { path: "/?q=%zz", headers: [["x-k", "b"]], body: "not json" },
  { path: "/", headers: [["x-v", "v"]] }, // missing key: local reply 400 from the last operation
  { path: "/?q=2", headers: [["x-k", "c".repeat(600)]], body: "{}" }, // key too large
  {
    path: "/?q=3",
    headers: [
      ["x-k", "d"],
      ["x-v", "line\u0001break"],
    ],
    body: '{"user":{"name":"\\u00e9"}}',
  },
  { path: "/?q=4", headers: [["x-k", "e"]], body: '{"user":{"name":"t"}}', trailers: [["x-t", "1"]] },
];

export async function everyPathRound(worker: Worker): Promise<void> {
  for (const r of requests)
    await worker.http({ method: r.body ? "POST" : "GET", ...r }, () => ({ status: 200 }));
}
