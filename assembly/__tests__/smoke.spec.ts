import { ROOT_ID } from "../constants";
describe("constants", () => {
  it("root id", () => {
    expect(ROOT_ID).toBe("envoy_kvm");
  });
});
