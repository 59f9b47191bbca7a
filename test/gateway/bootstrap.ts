// An Envoy bootstrap around an HTTP connection manager's parts, for tests that start the gateway on a route
// table or on a `convert --envoy` fragment: one listener `ingress` on 127.0.0.1, the given clusters.
const HCM =
  "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER = {
  name: "envoy.filters.http.router",
  typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
};

export function bootstrap(parts: {
  route_config: unknown;
  /** Default: the router alone. */
  http_filters?: unknown[];
  clusters: unknown[];
}): string {
  return JSON.stringify({
    static_resources: {
      listeners: [
        {
          name: "ingress",
          address: { socket_address: { address: "127.0.0.1", port_value: 10000 } },
          filter_chains: [
            {
              filters: [
                {
                  name: "envoy.filters.network.http_connection_manager",
                  typed_config: {
                    "@type": HCM,
                    stat_prefix: "ingress",
                    route_config: parts.route_config,
                    http_filters: parts.http_filters ?? [ROUTER],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: parts.clusters,
    },
  });
}
