# Upstream planning and reconnect backoff (pure logic, no I/O, clock passed in): unit-tested in
# tests/unit/test_upstream.cpp. Included by src/relay/CMakeLists.txt; paths are relative to this file.
add_library(coap_edge_relay_upstream STATIC
  ${CMAKE_CURRENT_LIST_DIR}/backoff.cpp
  ${CMAKE_CURRENT_LIST_DIR}/upstream_rd.cpp)
target_link_libraries(coap_edge_relay_upstream PUBLIC coap_edge_common coap_edge_discovery)
