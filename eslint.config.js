// Lints the Node-side TypeScript (host, service, tests, scripts) and the AssemblyScript filter
// under assembly/. AssemblyScript is TypeScript syntax, so the TypeScript parser reads it; the
// AssemblyScript compiler (which runs in `npm test`) is its type-checker. Only the file of raw
// `@external` import declarations is left out: decorators on declared functions are not TypeScript.
import tseslint from "typescript-eslint";
import assemblyscript from "./scripts/eslint/assemblyscript.js";

// AssemblyScript 0.17 shapes that compile but misbehave; each is an error in assembly/.
const ASSEMBLYSCRIPT_RESTRICTED_SYNTAX = [
  "error",
  {
    selector: "ThrowStatement",
    message:
      "no `throw` in the filter: AssemblyScript 0.17 aborts, which traps the VM inside Envoy; return an error value",
  },
  {
    selector: "TryStatement",
    message: "AssemblyScript 0.17 has no exceptions to catch",
  },
  {
    // `if (x) this.a = ...` in a constructor: AssemblyScript 0.17 mis-tracks the field's
    // initialisation (and with managed values, its references). Initialise every field
    // unconditionally, then change it after construction.
    selector:
      "MethodDefinition[kind='constructor'] :matches(IfStatement, SwitchStatement, ConditionalExpression, LogicalExpression, ForStatement, ForOfStatement, WhileStatement, DoWhileStatement) AssignmentExpression[left.type='MemberExpression'][left.object.type='ThisExpression']",
    message: "no conditional field initialisation in a constructor (AssemblyScript 0.17)",
  },
];

export default tseslint.config(
  {
    ignores: [
      "node_modules/",
      "build/",
      "assembly/hostcalls/imports.ts",
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
  {
    files: ["assembly/**/*.ts"],
    plugins: { assemblyscript },
    rules: {
      "no-restricted-syntax": ASSEMBLYSCRIPT_RESTRICTED_SYNTAX,
      "assemblyscript/no-managed-conditional": "error",
      // AssemblyScript overrides SDK callbacks whose parameters the filter does not need.
      "@typescript-eslint/no-unused-vars": ["error", { args: "none", varsIgnorePattern: "^_" }],
    },
  },
);
