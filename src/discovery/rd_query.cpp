// Query parsing for the Resource Directory (rd_query.h).

#include "discovery/rd_query.h"

#include "discovery/link_format.h"

#include <fmt/format.h>

namespace coap_edge::discovery {
namespace {

char asciiLower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool isParmName(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (const char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && std::string_view("!#$&+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

QueryParseResult parseRdQuery(std::string_view query, std::size_t max_bytes, std::size_t max_params) {
  QueryParseResult result;
  auto fail = [&result](std::string message) {
    result.params.clear();
    result.error = std::move(message);
    return std::move(result);
  };
  if (query.size() > max_bytes) return fail(fmt::format("query longer than {} bytes", max_bytes));
  std::size_t start = 0;
  while (start <= query.size()) {
    std::size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view item = query.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    if (result.params.size() == max_params) return fail(fmt::format("more than {} query parameters", max_params));
    const std::size_t eq = item.find('=');
    const std::string_view raw_name = item.substr(0, eq);
    std::optional<std::string> name = percentDecode(raw_name);
    if (!name) return fail("malformed %-escape in a query parameter name");
    for (char& c : *name) c = asciiLower(c);
    if (!isParmName(*name)) return fail(fmt::format("bad query parameter name \"{}\"", raw_name));
    QueryParam param{std::move(*name), std::nullopt};
    if (eq != std::string_view::npos) {
      param.value = percentDecode(item.substr(eq + 1));
      if (!param.value) return fail(fmt::format("malformed %-escape in the value of {}", param.name));
    }
    result.params.push_back(std::move(param));
  }
  return result;
}

std::string joinQueryOptions(const std::vector<std::string_view>& options) {
  std::string joined;
  for (const std::string_view option : options) {
    if (!joined.empty()) joined += '&';
    for (const char c : option) {
      if (c == '%') {
        joined += "%25";
      } else if (c == '&') {
        joined += "%26";
      } else {
        joined += c;
      }
    }
  }
  return joined;
}

std::optional<std::string> registrationEndpointName(std::string_view query, std::size_t max_bytes,
                                                    std::size_t max_params) {
  QueryParseResult parsed = parseRdQuery(query, max_bytes, max_params);
  if (!parsed.ok()) return std::nullopt;
  std::optional<std::string> ep;
  for (QueryParam& param : parsed.params) {
    if (param.name != "ep") continue;
    if (ep || !param.value || param.value->empty()) return std::nullopt;
    ep = std::move(param.value);
  }
  return ep;
}

}  // namespace coap_edge::discovery
