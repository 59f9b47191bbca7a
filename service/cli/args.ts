// Argument parsers and input helpers shared by the command files.
import { InvalidArgumentError } from "commander";

export const positiveInt = (raw: string): number => {
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new InvalidArgumentError("must be a positive integer");
  return Number(raw);
};

/** Whole seconds, 0 included (a TTL of 0 means "never expires", as on the service). */
export const nonNegativeInt = (raw: string): number => {
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new InvalidArgumentError("must be whole seconds, 0 or more (0 = never expires)");
  }
  return Number(raw);
};

export async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** An entry number in a file, 0 included. */
export const entryOffset = (raw: string): number => {
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new InvalidArgumentError("must be an entry number, 0 or more");
  }
  return Number(raw);
};
