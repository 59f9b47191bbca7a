// as-pect 5.0.1 leaves rtrace's in-place resize hook empty and then reports false double frees;
// the shim forwards that event (see the file).
require("./assembly/__tests__/rtrace-onresize.cjs");
// as-pect runs the pure AssemblyScript modules' unit tests (no host imports involved).
module.exports = {
  include: ["assembly/__tests__/**/*.spec.ts"],
  add: ["assembly/__tests__/**/*.include.ts"],
  flags: {
    "--runtime": ["full"],
    // Keep asc from reading the project's asconfig.json (its `use abort=abort_proc_exit` names a
    // global of the proxy-wasm SDK, which unit tests do not link).
    "--config": ["assembly/__tests__/asconfig.json"],
  },
  disclude: [/node_modules/],
  imports(memory, createImports, instantiateSync, binary) {
    // Nothing under test calls WASI; the stub only satisfies the link and fails loudly if reached.
    const unexpected = (name) => () => {
      throw new Error(`unexpected WASI call ${name} in a unit test`);
    };
    const wasi = { proc_exit: unexpected("proc_exit"), fd_write: unexpected("fd_write") };
    return instantiateSync(binary, createImports({ wasi_unstable: wasi, wasi_snapshot_preview1: wasi }));
  },
  outputBinary: false,
};
