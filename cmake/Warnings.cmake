# One INTERFACE target carries the project's warnings and feature defines; every part links it.
add_library(agent-config INTERFACE)
target_compile_options(agent-config INTERFACE
  -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion -Wnull-dereference
  -Wformat=2 -Wimplicit-fallthrough)
target_compile_definitions(agent-config INTERFACE
  COAP_EDGE_VERSION="${PROJECT_VERSION}")
target_compile_features(agent-config INTERFACE cxx_std_20)
