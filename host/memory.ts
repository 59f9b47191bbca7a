// Access to a module's linear memory. The buffer is re-read on every access because the module's
// malloc may grow memory (which detaches the old ArrayBuffer). Values handed to the module are
// copied in through its exported malloc, like WasmBase::copyToPointerSize
// (proxy-wasm-cpp-host include/proxy-wasm/wasm.h): an empty value writes pointer 0 and size 0
// without calling malloc.

export class MemoryAccessError extends Error {}

export class VmMemory {
  private memory: WebAssembly.Memory | undefined;
  private malloc: ((size: number) => number) | undefined;

  attach(memory: WebAssembly.Memory, malloc: (size: number) => number): void {
    this.memory = memory;
    this.malloc = malloc;
  }

  /** The module's WebAssembly.Memory (for instrumentation such as AssemblyScript's rtrace). */
  get wasmMemory(): WebAssembly.Memory | undefined {
    return this.memory;
  }

  /** Current size of the module's linear memory (it never shrinks: a leak shows as growth). */
  get byteLength(): number {
    return this.memory?.buffer.byteLength ?? 0;
  }

  private bytes(): Uint8Array {
    if (!this.memory) throw new MemoryAccessError("memory not attached");
    return new Uint8Array(this.memory.buffer);
  }

  /** A copy of [ptr, ptr+size), or undefined when out of bounds (→ InvalidMemoryAccess). */
  read(ptr: number, size: number): Buffer | undefined {
    const mem = this.bytes();
    const p = ptr >>> 0;
    const s = size >>> 0;
    if (p + s > mem.length) return undefined;
    return Buffer.from(mem.subarray(p, p + s));
  }

  write(ptr: number, data: Uint8Array): boolean {
    const mem = this.bytes();
    const p = ptr >>> 0;
    if (p + data.length > mem.length) return false;
    mem.set(data, p);
    return true;
  }

  writeU32(ptr: number, value: number): boolean {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0, 0);
    return this.write(ptr, b);
  }

  writeU64(ptr: number, value: bigint): boolean {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, value), 0);
    return this.write(ptr, b);
  }

  readU32(ptr: number): number | undefined {
    const b = this.read(ptr, 4);
    return b ? b.readUInt32LE(0) : undefined;
  }

  /** Copies data into memory allocated by the module's malloc; returns the pointer or undefined. */
  allocate(data: Uint8Array): number | undefined {
    if (!this.malloc) throw new MemoryAccessError("malloc not attached");
    const ptr = this.malloc(data.length) >>> 0;
    if (ptr === 0) return undefined;
    return this.write(ptr, data) ? ptr : undefined;
  }

  /** WasmBase::copyToPointerSize. */
  copyToPointerSize(data: Uint8Array, ptrPtr: number, sizePtr: number): boolean {
    let ptr = 0;
    if (data.length > 0) {
      const p = this.allocate(data);
      if (p === undefined) return false;
      ptr = p;
    }
    return this.writeU32(ptrPtr, ptr) && this.writeU32(sizePtr, data.length);
  }
}
