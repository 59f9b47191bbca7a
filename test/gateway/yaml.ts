// A minimal envoy.yaml for gateway tests: one listener `web` on a free loopback port, the given routes, the given
// HTTP filters before the router, and STATIC clusters (a port of 1 is a placeholder for options.clusters).
export function gatewayYaml(parts: {
  routes: string;
  filters?: string;
  clusters: Record<string, number>;
}): string {
  const clusters = Object.entries(parts.clusters)
    .map(
      ([name, port]) => `
    - name: ${name}
      type: STATIC
      connect_timeout: 0.25s
      load_assignment:
        cluster_name: ${name}
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }]`,
    )
    .join("");
  return `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 9901 } } }
static_resources:
  listeners:
    - name: web
      address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: web
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        ${parts.routes}
                http_filters:${parts.filters ?? ""}
                  - name: envoy.filters.http.router
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:${clusters}
`;
}
