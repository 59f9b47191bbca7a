import { WasmResult } from "./abi.ts";

// Shared queues (proxy-wasm-cpp-host src/shared_queue.cc): one registry per process, keyed by vm_id
// and queue name; enqueue wakes the registering VM's root context with proxy_on_queue_ready (the
// `onReady` callback the VM registered with).
export class SharedQueues {
  private nextToken = 1;
  private readonly byName = new Map<string, number>();
  private readonly queues = new Map<number, { items: Buffer[]; onReady: (token: number) => void }>();

  register(vmId: string, name: string, onReady: (token: number) => void): number {
    const key = `${vmId}\0${name}`;
    let token = this.byName.get(key);
    if (token === undefined) {
      token = this.nextToken++;
      this.byName.set(key, token);
      this.queues.set(token, { items: [], onReady });
    } else {
      const q = this.queues.get(token);
      if (q) q.onReady = onReady;
    }
    return token;
  }

  resolve(vmId: string, name: string): number | undefined {
    return this.byName.get(`${vmId}\0${name}`);
  }

  dequeue(token: number): Buffer | number {
    const q = this.queues.get(token);
    if (!q) return WasmResult.NotFound;
    const item = q.items.shift();
    return item ?? WasmResult.Empty;
  }

  enqueue(token: number, data: Buffer): number {
    const q = this.queues.get(token);
    if (!q) return WasmResult.NotFound;
    q.items.push(Buffer.from(data));
    const onReady = q.onReady;
    setImmediate(() => onReady(token));
    return WasmResult.Ok;
  }
}

export const sharedQueues = new SharedQueues();
