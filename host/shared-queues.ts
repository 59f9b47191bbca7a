import { WasmResult } from "./abi.ts";
import type { Vm } from "./vm.ts";

// Shared queues (proxy-wasm-cpp-host src/shared_queue.cc): one registry per process, keyed by vm_id
// and queue name; enqueue wakes the registering VM's root context with proxy_on_queue_ready.
export class SharedQueues {
  private nextToken = 1;
  private readonly byName = new Map<string, number>();
  private readonly queues = new Map<number, { items: Buffer[]; owner: Vm }>();

  register(vmId: string, name: string, owner: Vm): number {
    const key = `${vmId}\0${name}`;
    let token = this.byName.get(key);
    if (token === undefined) {
      token = this.nextToken++;
      this.byName.set(key, token);
      this.queues.set(token, { items: [], owner });
    } else {
      const q = this.queues.get(token);
      if (q) q.owner = owner;
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
    const owner = q.owner;
    setImmediate(() => {
      if (owner.root && !owner.failed)
        owner.callVoid(owner.root, "proxy_on_queue_ready", owner.root.id, token);
    });
    return WasmResult.Ok;
  }
}

export const sharedQueues = new SharedQueues();
