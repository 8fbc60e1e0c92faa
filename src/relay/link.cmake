# The upstream link: the DTLS session to the upstream, RD registration and telemetry push.
add_library(coap_edge_relay_link STATIC upstream_link.cpp)
target_link_libraries(coap_edge_relay_link
  PUBLIC coap_edge_relay_proxy coap_edge_relay_store coap_edge_relay_upstream coap_edge_config coap_edge_tls)
