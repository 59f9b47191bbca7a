// One error shape for every non-2xx answer: {"error":"<code>","message":"…"}. Codes are stable snake_case
// strings clients (and the filter) can switch on; messages are for humans.
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (code: string, message: string) => new HttpError(400, code, message);
