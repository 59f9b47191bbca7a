// Why an operation failed. Messages name the operation's inputs (source types and names),
// never a key or value: the local reply body and the logs must not leak data.
export class OpError {
  constructor(
    public status: u32, // HTTP status of the local reply when the error stops the request
    public code: string, // stable machine-readable code, also in the reply's `error` field
    public message: string,
  ) {}
}

export function badRequest(code: string, message: string): OpError {
  return new OpError(400, code, message);
}

export function storeFailure(message: string): OpError {
  return new OpError(503, "store_unavailable", message);
}
