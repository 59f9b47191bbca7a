// as-pect 5.0.1 forwards every runtime event to its rtrace shadow memory except `onresize`
// (TestContext.prototype.onresize is an empty "todo: implement shadow memory stuff"). When the
// allocator grows or shrinks a block in place (Array#push, String#concat, __renew), the shadow
// memory goes stale and a later free or allocation of that region is reported as
// "shadow region mismatch" / "shadow region already in use" although the heap is sound.
// Forwarding the event to the Rtrace instance, as AssemblyScript's own lib/rtrace does, removes
// these false reports and keeps the real ones (double frees, leaks).
const { TestContext } = require("@as-pect/core");

TestContext.prototype.onresize = function onresize(block, oldSize) {
  this.rtrace.onresize(block, oldSize);
};
