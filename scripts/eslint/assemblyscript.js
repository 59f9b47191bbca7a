// ESLint rules for the AssemblyScript 0.17 filter under assembly/: the compiler accepts these
// shapes but miscompiles them or turns them into traps inside Envoy (see eslint.config.js).

const NUMERIC_TYPES = new Set([
  "i8",
  "i16",
  "i32",
  "i64",
  "isize",
  "u8",
  "u16",
  "u32",
  "u64",
  "usize",
  "f32",
  "f64",
  "bool",
]);
const ARITHMETIC = new Set(["-", "*", "/", "%", "|", "&", "^", "<<", ">>", ">>>", "**"]);
const COMPARISON = new Set(["==", "!=", "===", "!==", "<", "<=", ">", ">="]);
const NUMERIC_MEMBERS = new Set(["length", "byteLength", "byteOffset"]);

// Whether `node` is, by its shape alone, a number or a boolean (never a managed value). Plain
// identifiers and calls are not: their type is not visible without the AssemblyScript compiler,
// so a branch that needs one is cast (`<i32>x`) or the conditional is written as if/else.
function isUnmanaged(node) {
  switch (node.type) {
    case "Literal":
      return typeof node.value === "number" || typeof node.value === "boolean";
    case "TSTypeAssertion":
    case "TSAsExpression":
      return (
        node.typeAnnotation.type === "TSBooleanKeyword" ||
        node.typeAnnotation.type === "TSNumberKeyword" ||
        (node.typeAnnotation.type === "TSTypeReference" &&
          node.typeAnnotation.typeName.type === "Identifier" &&
          NUMERIC_TYPES.has(node.typeAnnotation.typeName.name))
      );
    case "UnaryExpression":
      return (
        node.operator === "!" ||
        ((node.operator === "-" || node.operator === "~") && isUnmanaged(node.argument))
      );
    case "BinaryExpression":
      if (COMPARISON.has(node.operator)) return true;
      if (ARITHMETIC.has(node.operator) || node.operator === "+") {
        return isUnmanaged(node.left) && isUnmanaged(node.right);
      }
      return false;
    case "MemberExpression":
      // `x.length`, or an enum member (`Kind.Member`, PascalCase object).
      if (node.computed || node.property.type !== "Identifier") return false;
      if (NUMERIC_MEMBERS.has(node.property.name)) return true;
      return (
        node.object.type === "Identifier" &&
        /^[A-Z]/.test(node.object.name) &&
        /^[A-Z]/.test(node.property.name)
      );
    default:
      return false;
  }
}

const noManagedConditional = {
  meta: {
    type: "problem",
    docs: {
      description:
        "AssemblyScript 0.17 miscounts references in `cond ? a : b` over managed values (strings, arrays, objects): write if/else",
    },
    schema: [],
    messages: {
      managed:
        "conditional expression whose branch may be a managed value: AssemblyScript 0.17 leaks or double-frees it; use if/else (or cast a numeric branch, e.g. <i32>x)",
    },
  },
  create(context) {
    return {
      ConditionalExpression(node) {
        if (!isUnmanaged(node.consequent) || !isUnmanaged(node.alternate)) {
          context.report({ node, messageId: "managed" });
        }
      },
    };
  },
};

export default {
  meta: { name: "envoy-kvm-assemblyscript" },
  rules: { "no-managed-conditional": noManagedConditional },
};
