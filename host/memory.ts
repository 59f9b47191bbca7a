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

  // Views of the current buffer, made again only when memory.grow has replaced it (every host call reads or
  // writes memory, most of them several times: a view per access was a measurable part of a host call).
  private view = Buffer.alloc(0);
  private data = new DataView(new ArrayBuffer(0));

  private bytes(): Buffer {
    if (!this.memory) throw new MemoryAccessError("memory not attached");
    const buffer = this.memory.buffer;
    if (this.view.buffer !== buffer) {
      this.view = Buffer.from(buffer);
      this.data = new DataView(buffer);
    }
    return this.view;
  }

  private dataView(): DataView {
    this.bytes();
    return this.data;
  }

  /** A copy of [ptr, ptr+size), or undefined when out of bounds (→ InvalidMemoryAccess). */
  read(ptr: number, size: number): Buffer | undefined {
    const mem = this.bytes();
    const p = ptr >>> 0;
    const s = size >>> 0;
    if (p + s > mem.length) return undefined;
    return Buffer.from(mem.subarray(p, p + s));
  }

  /** [ptr, ptr+size) as a latin1 string (one character per byte), without a copy in between. */
  readLatin1(ptr: number, size: number): string | undefined {
    const mem = this.bytes();
    const p = ptr >>> 0;
    const s = size >>> 0;
    if (p + s > mem.length) return undefined;
    return mem.toString("latin1", p, p + s);
  }

  write(ptr: number, data: Uint8Array): boolean {
    const mem = this.bytes();
    const p = ptr >>> 0;
    if (p + data.length > mem.length) return false;
    mem.set(data, p);
    return true;
  }

  writeU32(ptr: number, value: number): boolean {
    const view = this.dataView();
    const p = ptr >>> 0;
    if (p + 4 > view.byteLength) return false;
    view.setUint32(p, value >>> 0, true);
    return true;
  }

  writeU64(ptr: number, value: bigint): boolean {
    const view = this.dataView();
    const p = ptr >>> 0;
    if (p + 8 > view.byteLength) return false;
    view.setBigUint64(p, BigInt.asUintN(64, value), true);
    return true;
  }

  readU32(ptr: number): number | undefined {
    const view = this.dataView();
    const p = ptr >>> 0;
    return p + 4 > view.byteLength ? undefined : view.getUint32(p, true);
  }

  /**
   * Copies data — bytes, or a latin1 string (one byte per character, written without an intermediate Buffer) —
   * into memory allocated by the module's malloc; returns the pointer or undefined.
   */
  allocate(data: Uint8Array | string): number | undefined {
    if (!this.malloc) throw new MemoryAccessError("malloc not attached");
    const ptr = this.malloc(data.length) >>> 0;
    if (ptr === 0) return undefined;
    if (typeof data !== "string") return this.write(ptr, data) ? ptr : undefined;
    const mem = this.bytes(); // after malloc: it may have grown the memory
    if (ptr + data.length > mem.length) return undefined;
    mem.write(data, ptr, "latin1");
    return ptr;
  }

  /** WasmBase::copyToPointerSize. */
  copyToPointerSize(data: Uint8Array | string, ptrPtr: number, sizePtr: number): boolean {
    let ptr = 0;
    if (data.length > 0) {
      const p = this.allocate(data);
      if (p === undefined) return false;
      ptr = p;
    }
    return this.writeU32(ptrPtr, ptr) && this.writeU32(sizePtr, data.length);
  }
}
