# Response cache (RFC 7252 §5.6-5.9) and request coalescing for the /nodes/{id}/... relay. Pure
# logic with the clock passed in (tests/unit/test_response_cache.cpp). Uses only the plain value
# types of coap/message.h (no libcoap), so it does not link coap_edge_coap.
add_library(coap_edge_relay_cache STATIC response_cache.cpp)
target_link_libraries(coap_edge_relay_cache PUBLIC coap_edge_common)
