# The durable telemetry queue (SQLite file, mode 0600) and SenML packs (RFC 8428) of its values:
# the storage half of "relay ... lose nothing" (issue #5); the upstream session sends the packs.
add_library(coap_edge_relay_store STATIC telemetry_queue.cpp senml.cpp)
target_link_libraries(coap_edge_relay_store PUBLIC coap_edge_common PkgConfig::SQLITE3
                      PRIVATE nlohmann_json::nlohmann_json)
