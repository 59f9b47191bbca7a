// A representative subset of test/filter/config-cases.ts (the full table runs through the compiled
// filter and the JSON Schema), plus what only the parsed model shows: defaults, lower-cased header
// names, operation paths.
import { parseConfig } from "../config";
import {
  DestinationType,
  KvmService,
  Operation,
  OperationType,
  PluginConfig,
  Policy,
  SourceType,
} from "../model";
import {
  DEFAULT_CACHE_TTL,
  DEFAULT_ON_ERROR_CONTINUE,
  DEFAULT_OVERRIDE,
  DEFAULT_POLICY,
  DEFAULT_SERVICE_AUTHORITY,
  DEFAULT_SERVICE_CLUSTER,
  DEFAULT_SERVICE_PATH_PREFIX,
  DEFAULT_SERVICE_TIMEOUT_MS,
  DEFAULT_SERVICE_TOKEN,
  DEFAULT_TTL,
  DESTINATION_TYPE_VALUES,
  OPERATION_TYPE_VALUES,
  POLICY_VALUES,
  SOURCE_TYPE_VALUES,
} from "../generated/schema_constants";
import { encodeUtf8 } from "../utf8";

const GET =
  '"kvm_name":"settings","operation_type":"get","key_source_type":"literal","key_source_name":"k",' +
  '"output_destination_type":"header","output_destination_name":"x-v"';
const PUT =
  '"kvm_name":"settings","operation_type":"put","key_source_type":"header","key_source_name":"x-k",' +
  '"value_source_type":"body","value_source_name":"user.id"';

function errorOf(text: string): string {
  const result = parseConfig(encodeUtf8(text));
  expect(result.config).toBeNull("accepted " + text);
  return result.error;
}

function configOf(text: string): PluginConfig {
  const result = parseConfig(encodeUtf8(text));
  expect(result.error).toBe("", "rejected " + text);
  return <PluginConfig>result.config;
}

describe("parseConfig: the document", () => {
  it("rejects empty text, broken JSON and non-objects", () => {
    expect(errorOf(" \n\t")).toBe("configuration: is empty; expected a JSON object");
    expect(errorOf('{"kvm_name":')).toBe(
      "configuration: not valid JSON (unexpected end of input at byte 12)",
    );
    expect(errorOf("[]")).toBe("configuration: must be a JSON object");
    expect(errorOf('{"operations":[]}')).toBe(
      'configuration: has no operations (give "operations" or "routes")',
    );
  });

  it("rejects invalid UTF-8 as invalid JSON", () => {
    const bytes = encodeUtf8('{"a":"  "}');
    bytes[6] = 0xc0;
    bytes[7] = 0x80;
    const result = parseConfig(bytes);
    expect(result.error).toBe("configuration: not valid JSON (invalid UTF-8 at byte 6)");
  });
});

describe("parseConfig: the Kong shape", () => {
  it("reads one operation with defaults", () => {
    const config = configOf("{" + GET + "}");
    expect(config.operations.length).toBe(1);
    expect(config.routes.length).toBe(0);
    const op = config.operations[0];
    expect(op.path).toBe("");
    expect(op.policy).toBe(Policy.Local);
    expect(op.operationType).toBe(OperationType.Get);
    expect(op.key.length).toBe(1);
    expect(op.key[0].type).toBe(SourceType.Literal);
    expect(op.key[0].name).toBe("k");
    expect(op.output!.type).toBe(DestinationType.Header);
    expect(op.defaultValue).toBeNull();
    expect(op.onErrorContinue).toBe(false);
    const service = config.kvmService!;
    expect(service.cluster).toBe("kvm_service");
    expect(service.authority).toBe("kvm-service");
    expect(service.pathPrefix).toBe("/v1");
    expect(service.timeoutMs).toBe(1000);
  });

  it("reads put fields and lower-cases header names", () => {
    const op = configOf("{" + PUT + ',"ttl":60,"override":false,"on_error_continue":true}').operations[0];
    expect(op.operationType).toBe(OperationType.Put);
    expect(op.key[0].type).toBe(SourceType.Header);
    expect(op.value!.type).toBe(SourceType.Body);
    expect(op.value!.name).toBe("user.id");
    expect(op.ttlSeconds).toBe(60);
    expect(op.override).toBe(false);
    expect(op.onErrorContinue).toBe(true);
    const upper = configOf(
      '{"kvm_name":"m","operation_type":"get","key_source_type":"header","key_source_name":"X-User",' +
        '"output_destination_type":"response_header","output_destination_name":"X-Out"}',
    ).operations[0];
    expect(upper.key[0].name).toBe("x-user");
    expect(upper.output!.name).toBe("x-out");
  });

  it("names fields without a prefix", () => {
    expect(errorOf("{" + GET + ',"ttl":1}')).toBe("ttl: only allowed when operation_type is put");
    expect(errorOf("{" + PUT + ',"ttl":-1}')).toBe("ttl: must be a whole number ≥ 0");
    expect(errorOf("{" + PUT + ',"ttl":1.5}')).toBe("ttl: must be a whole number ≥ 0");
    expect(errorOf("{" + PUT + ',"ttl":2147483648}')).toBe("ttl: must be at most 2147483647");
    expect(errorOf("{" + GET + ',"extra":1}')).toBe("extra: unknown field");
    expect(errorOf('{"kvm_name":"m"}')).toBe("operation_type: is required");
  });
});

describe("parseConfig: the list shape", () => {
  it("reads operations, routes and kvm_service with their paths", () => {
    const config = configOf(
      '{"kvm_service":{"cluster":"kvm","timeout_ms":250,"token":"t0k"},"operations":[{' +
        GET +
        '}],"routes":{"orders":[{' +
        PUT +
        '},{"policy":"cluster","kvm_name":"m","operation_type":"delete","key":[' +
        '{"source_type":"literal","source_name":"a"},{"source_type":"query","source_name":"id"}]}]}}',
    );
    expect(config.operations.length).toBe(1);
    expect(config.operations[0].path).toBe("operations[0]");
    expect(config.routes.length).toBe(1);
    expect(config.routes[0].routeName).toBe("orders");
    const ops = config.routes[0].operations;
    expect(ops.length).toBe(2);
    expect(ops[1].path).toBe('routes["orders"][1]');
    expect(ops[1].policy).toBe(Policy.Cluster);
    expect(ops[1].key.length).toBe(2);
    expect(ops[1].key[1].type).toBe(SourceType.Query);
    const service = config.kvmService!;
    expect(service.cluster).toBe("kvm");
    expect(service.timeoutMs).toBe(250);
    expect(service.token).toBe("t0k");
    expect(service.authority).toBe("kvm-service");
  });

  it("names the field with its full path", () => {
    expect(errorOf('{"operations":[{' + GET + "},{" + PUT + ',"ttl":"x"}]}')).toBe(
      "operations[1].ttl: must be a whole number ≥ 0",
    );
    expect(errorOf('{"routes":{"orders":[{' + GET + ',"kvm_name":"a b"}]}}')).toBe(
      'routes["orders"][0].kvm_name: must be 1 to 128 letters, digits, ".", "_" or "-"',
    );
    expect(errorOf('{"operations":[{' + GET + '}],"kvm_service":{"timeout_ms":0}}')).toBe(
      "kvm_service.timeout_ms: must be a whole number ≥ 1",
    );
    expect(
      errorOf(
        '{"operations":[{"kvm_name":"m","operation_type":"delete","key":[' +
          '{"source_type":"literal","source_name":"a"},{"source_type":"cookie","source_name":"b"}]}]}',
      ),
    ).toBe("operations[0].key[1].source_type: must be one of header, query, body, shared_context, literal");
    expect(errorOf('{"routes":{"":[{' + GET + "}]}}")).toBe('routes[""]: route name must not be empty');
    expect(errorOf('{"operations":[{' + GET + '}],"extra":{}}')).toBe("extra: unknown field");
  });

  it("reports unknown fields before other problems, in source order", () => {
    expect(errorOf('{"operations":[{"zz":1,"kvm_name":1,"aa":2}]}')).toBe("operations[0].zz: unknown field");
    expect(errorOf('{"operations":[{"weird key":1}]}')).toBe('operations[0]["weird key"]: unknown field');
  });

  it("lets the last duplicate key win, like JSON.parse", () => {
    const config = configOf('{"operations":[{' + GET + ',"kvm_name":"second"}]}');
    expect(config.operations[0].kvmName).toBe("second");
    expect(configOf('{"routes":{"r":5,"r":[{' + GET + "}]}}").routes.length).toBe(1);
  });
});

describe("the model and the schema's constants", () => {
  it("takes its defaults from the generated constants", () => {
    const op = new Operation();
    expect(op.policy).toBe(<Policy>DEFAULT_POLICY);
    expect(op.ttlSeconds).toBe(DEFAULT_TTL);
    expect(op.override).toBe(DEFAULT_OVERRIDE);
    expect(op.cacheTtlSeconds).toBe(DEFAULT_CACHE_TTL);
    expect(op.onErrorContinue).toBe(DEFAULT_ON_ERROR_CONTINUE);
    const service = new KvmService();
    expect(service.cluster).toBe(DEFAULT_SERVICE_CLUSTER);
    expect(service.authority).toBe(DEFAULT_SERVICE_AUTHORITY);
    expect(service.pathPrefix).toBe(DEFAULT_SERVICE_PATH_PREFIX);
    expect(service.timeoutMs).toBe(DEFAULT_SERVICE_TIMEOUT_MS);
    expect(service.token).toBe(DEFAULT_SERVICE_TOKEN);
  });

  it("numbers each enum as the schema orders its values", () => {
    expect(POLICY_VALUES[Policy.Local]).toBe("local");
    expect(POLICY_VALUES[Policy.Cluster]).toBe("cluster");
    expect(POLICY_VALUES.length).toBe(2);
    expect(OPERATION_TYPE_VALUES[OperationType.Get]).toBe("get");
    expect(OPERATION_TYPE_VALUES[OperationType.Put]).toBe("put");
    expect(OPERATION_TYPE_VALUES[OperationType.Delete]).toBe("delete");
    expect(OPERATION_TYPE_VALUES.length).toBe(3);
    expect(SOURCE_TYPE_VALUES[SourceType.Header]).toBe("header");
    expect(SOURCE_TYPE_VALUES[SourceType.Query]).toBe("query");
    expect(SOURCE_TYPE_VALUES[SourceType.Body]).toBe("body");
    expect(SOURCE_TYPE_VALUES[SourceType.SharedContext]).toBe("shared_context");
    expect(SOURCE_TYPE_VALUES[SourceType.Literal]).toBe("literal");
    expect(SOURCE_TYPE_VALUES.length).toBe(5);
    expect(DESTINATION_TYPE_VALUES[DestinationType.Header]).toBe("header");
    expect(DESTINATION_TYPE_VALUES[DestinationType.Query]).toBe("query");
    expect(DESTINATION_TYPE_VALUES[DestinationType.Body]).toBe("body");
    expect(DESTINATION_TYPE_VALUES[DestinationType.SharedContext]).toBe("shared_context");
    expect(DESTINATION_TYPE_VALUES[DestinationType.ResponseHeader]).toBe("response_header");
    expect(DESTINATION_TYPE_VALUES.length).toBe(5);
  });
});
