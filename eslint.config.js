// Lints the Node-side TypeScript (host, service, tests, scripts). The AssemblyScript filter under
// assembly/ uses decorators and types plain TypeScript tooling rejects; the AssemblyScript compiler
// (which runs in `npm test`) is its type-checker.
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "node_modules/",
      "build/",
      "assembly/",
      "test/host/fixtures/",
      ".data/",
      ".scratch/",
      "coverage/",
    ],
  },
  ...tseslint.configs.recommended,
  {
    // CommonJS config files (as-pect loads its configuration with require()).
    files: ["**/*.cjs"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
);
