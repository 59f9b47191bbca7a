// WASI as Envoy provides it to every module, under both wasi_unstable and wasi_snapshot_preview1
// (proxy-wasm-cpp-host src/exports.cc, the wasi_unstable_* functions).
import { randomFillSync } from "node:crypto";
import { LogLevel } from "../abi.ts";
import { msToNanos } from "../clock.ts";
import type { PluginCore } from "../core.ts";
import type { VmMemory } from "../memory.ts";

export function wasiFunctions(
  mem: VmMemory,
  core: PluginCore,
  log: (level: number, message: string) => void,
): Record<string, (...args: never[]) => unknown> {
  const EBADF = 8;
  const EFAULT = 21;
  const ENOSYS = 52;
  const ENOTSUP = 58;
  const trace = (message: string) => log(LogLevel.Trace, message);
  // exports.cc writevImpl: fd 1 → info log, fd 2 → error log, trailing newline dropped.
  const writev = (fd: number, iovs: number, iovsLen: number): number | { written: number } => {
    let level: number;
    if (fd === 1) level = LogLevel.Info;
    else if (fd === 2) level = LogLevel.Error;
    else return EBADF;
    const parts: Buffer[] = [];
    for (let i = 0; i < iovsLen >>> 0; i++) {
      const iov = mem.read(iovs + i * 8, 8);
      if (!iov) return EFAULT;
      const len = iov.readUInt32LE(4);
      if (len) {
        const data = mem.read(iov.readUInt32LE(0), len);
        if (!data) return EFAULT;
        parts.push(data);
      }
    }
    const all = Buffer.concat(parts);
    if (all.length > 0) {
      const text = all[all.length - 1] === 0x0a ? all.subarray(0, all.length - 1) : all;
      log(level, text.toString("utf8"));
    }
    return { written: all.length };
  };
  const envEntries = Object.entries(core.environment).map(([k, v]) => Buffer.from(`${k}=${v}\0`, "utf8"));
  const badfUnlessStdio = (fd: number) => (fd >>> 0 > 2 ? EBADF : 0);
  return {
    fd_write: (fd: number, iovs: number, iovsLen: number, nwrittenPtr: number) => {
      const r = writev(fd >>> 0, iovs, iovsLen);
      if (typeof r === "number") return r;
      return mem.writeU32(nwrittenPtr, r.written) ? 0 : EFAULT;
    },
    fd_pwrite: (fd: number, iovs: number, iovsLen: number, _offset: bigint, nwrittenPtr: number) => {
      const r = writev(fd >>> 0, iovs, iovsLen);
      if (typeof r === "number") return r;
      return mem.writeU32(nwrittenPtr, r.written) ? 0 : EFAULT;
    },
    fd_read: () => ENOSYS,
    fd_pread: () => ENOSYS,
    fd_seek: () => {
      trace("wasi_unstable fd_seek");
      return 0;
    },
    fd_close: () => 0,
    fd_fdstat_get: (fd: number, statPtr: number) => {
      if (fd !== 1 && fd !== 2) return EBADF;
      const stat = Buffer.alloc(24);
      stat.writeBigUInt64LE(64n, 8); // fs_rights_base = __WASI_RIGHTS_FD_WRITE
      mem.write(statPtr, stat);
      return 0;
    },
    fd_fdstat_set_flags: () => ENOSYS,
    fd_fdstat_set_rights: (fd: number) => badfUnlessStdio(fd),
    fd_advise: (fd: number) => badfUnlessStdio(fd),
    fd_allocate: (fd: number) => badfUnlessStdio(fd),
    fd_datasync: (fd: number) => badfUnlessStdio(fd),
    fd_filestat_set_size: (fd: number) => badfUnlessStdio(fd),
    fd_filestat_set_times: (fd: number) => badfUnlessStdio(fd),
    fd_sync: (fd: number) => badfUnlessStdio(fd),
    fd_tell: (fd: number, ptr: number) => {
      if (fd >>> 0 > 2) return EBADF;
      return mem.writeU64(ptr, 0n) ? 0 : EFAULT;
    },
    fd_renumber: (fd: number) => (fd >>> 0 > 2 ? EBADF : ENOTSUP),
    fd_readdir: () => 20,
    fd_filestat_get: (fd: number, ptr: number) => {
      if (fd >>> 0 > 2) return EBADF;
      const stat = Buffer.alloc(64);
      stat[16] = 2; // filetype: character device
      return mem.write(ptr, stat) ? 0 : EFAULT;
    },
    fd_prestat_get: () => EBADF,
    fd_prestat_dir_name: () => ENOSYS,
    path_open: () => 44,
    path_filestat_get: () => ENOTSUP,
    path_create_directory: () => ENOTSUP,
    path_filestat_set_times: () => ENOTSUP,
    path_link: () => ENOTSUP,
    path_readlink: () => ENOTSUP,
    path_remove_directory: () => ENOTSUP,
    path_rename: () => ENOTSUP,
    path_symlink: () => ENOTSUP,
    path_unlink_file: () => ENOTSUP,
    sock_accept: () => ENOTSUP,
    sock_recv: () => ENOTSUP,
    sock_send: () => ENOTSUP,
    sock_shutdown: () => ENOTSUP,
    environ_sizes_get: (countPtr: number, sizePtr: number) => {
      if (!mem.writeU32(countPtr, envEntries.length)) return EFAULT;
      return mem.writeU32(
        sizePtr,
        envEntries.reduce((n, e) => n + e.length, 0),
      )
        ? 0
        : EFAULT;
    },
    environ_get: (arrayPtr: number, bufPtr: number) => {
      let a = arrayPtr >>> 0;
      let b = bufPtr >>> 0;
      for (const entry of envEntries) {
        if (!mem.writeU32(a, b) || !mem.write(b, entry)) return EFAULT;
        a += 4;
        b += entry.length;
      }
      return 0;
    },
    args_sizes_get: (argcPtr: number, bufSizePtr: number) =>
      mem.writeU32(argcPtr, 0) && mem.writeU32(bufSizePtr, 0) ? 0 : EFAULT,
    args_get: () => 0,
    clock_time_get: (clockId: number, _precision: bigint, resultPtr: number) => {
      let ns: bigint;
      if (clockId === 0) ns = msToNanos(core.clock.nowMs());
      else if (clockId === 1) ns = msToNanos(core.clock.monotonicMs?.() ?? core.clock.nowMs());
      else return ENOTSUP;
      return mem.writeU64(resultPtr, ns) ? 0 : EFAULT;
    },
    clock_res_get: (clockId: number, resultPtr: number) => {
      if (clockId !== 0 && clockId !== 1) return ENOTSUP;
      return mem.writeU64(resultPtr, 1n) ? 0 : EFAULT;
    },
    random_get: (ptr: number, len: number) => {
      const n = len >>> 0;
      if (n > 64 * 1024) return 28; // EINVAL above PROXY_WASM_HOST_WASI_RANDOM_GET_MAX_SIZE_BYTES
      const bytes = Buffer.alloc(n);
      randomFillSync(bytes);
      return mem.write(ptr, bytes) ? 0 : EFAULT;
    },
    // exports.cc wasi_unstable_proc_exit only logs (Context::error → trace); it does not stop the VM.
    // AssemblyScript's abort → proc_exit is followed by `unreachable`, and that trap fails the VM.
    proc_exit: () => {
      trace("wasi_unstable proc_exit");
    },
    sched_yield: () => 0,
    poll_oneoff: (_in: number, _out: number, _n: number, neventsPtr: number) =>
      mem.writeU32(neventsPtr, 0) ? 0 : EFAULT,
  };
}
