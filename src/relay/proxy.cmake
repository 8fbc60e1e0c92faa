# The reverse and forward proxy in front of the nodes and the Observe relay, on the coap server.
add_library(coap_edge_relay_proxy STATIC node_proxy.cpp proxy_target.cpp)
target_link_libraries(coap_edge_relay_proxy
  PUBLIC coap_edge_coap coap_edge_discovery coap_edge_policy coap_edge_relay_cache)
