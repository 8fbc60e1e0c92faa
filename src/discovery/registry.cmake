# The node registry (discovery/node_registry.h): pure logic, unit-tested in
# tests/unit/test_node_registry.cpp. Included by src/discovery/CMakeLists.txt after
# coap_edge_discovery is defined; paths are relative to this file wherever it is included from.
target_sources(coap_edge_discovery PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/node_registry.cpp
  ${CMAKE_CURRENT_LIST_DIR}/node_id.cpp
  ${CMAKE_CURRENT_LIST_DIR}/node_links.cpp)
