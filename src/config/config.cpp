// Reading the file, walking the TOML document against the section tables, and reporting the
// earliest problem as "file:line:col: message".

#include "config/detail.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>
#include <tuple>

namespace coap_edge::config {
namespace detail {

Position positionOf(const toml::source_region& region) { return {region.begin.line, region.begin.column}; }

Position sectionPosition(const toml::key& key, const toml::node& node) {
  const Position header = positionOf(node.source());
  const bool section = node.is_table() || node.is_array_of_tables();
  return section && header.line != 0 ? header : positionOf(key.source());
}

void Context::fail(Position where, std::string message) {
  errors.push_back({source.string(), where, std::move(message)});
}

std::optional<Error> Context::firstError() const {
  const auto earliest = std::min_element(errors.begin(), errors.end(), [](const Error& a, const Error& b) {
    return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
  });
  if (earliest == errors.end()) return std::nullopt;
  return *earliest;
}

std::filesystem::path Context::resolve(const std::filesystem::path& path) const {
  if (path.is_absolute()) return path.lexically_normal();
  return (source.parent_path() / path).lexically_normal();
}

}  // namespace detail

namespace {

using detail::Context;
using detail::displayKey;
using detail::SectionSpec;

LoadResult failure(const std::filesystem::path& file, Position where, std::string message) {
  return {std::nullopt, Error{file.string(), where, std::move(message)}};
}

const SectionSpec* findSection(std::string_view name) {
  const auto all = detail::sections();
  const auto it = std::find_if(all.begin(), all.end(), [&](const SectionSpec& s) { return s.name == name; });
  return it == all.end() ? nullptr : &*it;
}

// "[name]" for a table, "[[name]]" for an array of tables, as the operator wrote it.
std::string sectionLabel(std::string_view name, const toml::node& value) {
  const bool list = value.is_array_of_tables();
  return fmt::format("{}{}{}", list ? "[[" : "[", detail::displayName(name), list ? "]]" : "]");
}

std::vector<std::string_view> sectionNames() {
  std::vector<std::string_view> names;
  for (const auto& section : detail::sections()) names.push_back(section.name);
  return names;
}

// "; did you mean 'listen'?", "; it belongs in [downstream]",
// "; did you mean 'certificate' in [downstream]?", or nothing.
std::string keyHint(std::string_view key, const SectionSpec* current) {
  std::vector<std::string_view> names;
  if (current != nullptr) {
    for (const auto& spec : current->keys) names.push_back(spec.name);
  }
  if (const auto near = detail::closestMatch(key, names)) return fmt::format("; did you mean '{}'?", *near);
  for (const auto& section : detail::sections()) {
    if (&section == current) continue;
    for (const auto& spec : section.keys) {
      if (spec.name == key) return fmt::format("; it belongs in [{}]", section.name);
    }
  }
  for (const auto& section : detail::sections()) {
    if (&section == current) continue;
    names.clear();
    for (const auto& spec : section.keys) names.push_back(spec.name);
    if (const auto near = detail::closestMatch(key, names)) {
      return fmt::format("; did you mean '{}' in [{}]?", *near, section.name);
    }
  }
  return {};
}

void applySection(Context& ctx, const SectionSpec& section, const toml::table& table) {
  for (const auto& [key, value] : table) {
    const std::string_view name = key.str();
    const auto handler = std::find_if(section.keys.begin(), section.keys.end(),
                                      [&](const detail::KeySpec& spec) { return spec.name == name; });
    if (handler != section.keys.end()) {
      handler->apply(ctx, value);
      continue;
    }
    const Position where = detail::positionOf(key.source());
    if (std::find(section.planned.begin(), section.planned.end(), name) != section.planned.end()) {
      ctx.fail(where, fmt::format("[{}] {} is not supported by this version of coap-edge yet; remove it",
                                  section.name, name));
    } else if (value.is_table() && !value.as_table()->is_inline()) {
      ctx.fail(detail::sectionPosition(key, value),
               fmt::format("unknown section [{}.{}]", section.name, detail::displayName(name)));
    } else {
      ctx.fail(where, fmt::format("unknown key {} in [{}]{}", displayKey(name), section.name,
                                  keyHint(name, &section)));
    }
  }
}

void applyRoot(Context& ctx, const toml::table& root) {
  const auto planned = detail::plannedSections();
  for (const auto& [key, value] : root) {
    const std::string_view name = key.str();
    const Position where = detail::sectionPosition(key, value);
    if (const auto* section = findSection(name)) {
      if (section->whole != nullptr) {
        section->whole(ctx, key, value);
      } else if (const auto* table = value.as_table()) {
        applySection(ctx, *section, *table);
      } else {
        ctx.fail(value, fmt::format("{} must be a section ([{}]), not {}", name, name, detail::describeType(value)));
      }
    } else if (std::find(planned.begin(), planned.end(), name) != planned.end()) {
      ctx.fail(where, fmt::format("{} is not supported by this version of coap-edge yet; remove it",
                                  sectionLabel(name, value)));
    } else if (value.is_table() || value.is_array_of_tables()) {
      const auto names = sectionNames();
      const auto near = detail::closestMatch(name, names);
      ctx.fail(where, fmt::format("unknown section {}{}", sectionLabel(name, value),
                                  near ? fmt::format("; did you mean [{}]?", *near) : std::string()));
    } else {
      const std::string hint = keyHint(name, nullptr);
      ctx.fail(detail::positionOf(key.source()),
               fmt::format("unknown key {} outside any section{}", displayKey(name),
                           hint.empty() ? "; keys go in [agent], [downstream] or [limits]" : hint));
    }
  }
}

LoadResult parseUnguarded(std::string_view text, const std::filesystem::path& source) {
  if (text.size() > detail::kMaxConfigBytes) {
    return failure(source, {}, "larger than 1 MiB; this is not a configuration file");
  }
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(source.native()));
  } catch (const toml::parse_error& error) {
    return failure(source, detail::positionOf(error.source()), std::string(error.description()));
  }
  Context ctx;
  ctx.source = source;
  ctx.text = text;
  ctx.config.file = source;
  applyRoot(ctx, root);
  finishDownstream(ctx, root.get_as<toml::table>("downstream"));
  finishDiscovery(ctx, root.get_as<toml::table>("discovery"));
  finishUpstream(ctx, root.get_as<toml::table>("upstream"));
  finishAcl(ctx);
  finishLimits(ctx);
  if (auto error = ctx.firstError()) return {std::nullopt, std::move(*error)};
  return {std::move(ctx.config), std::nullopt};
}

// Reads at most kMaxConfigBytes + 1 bytes, so /dev/zero or a huge file cannot exhaust memory.
// Blocking reads on purpose: `--config <(generate)` hands us a pipe.
std::optional<std::string> readSmallFile(const std::filesystem::path& path, std::string& text) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return std::error_code(errno, std::generic_category()).message();
  std::string error;
  std::array<char, 16384> buffer{};
  while (text.size() <= detail::kMaxConfigBytes) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = std::error_code(errno, std::generic_category()).message();
      break;
    }
    if (n == 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (!error.empty()) return error;
  return std::nullopt;
}

}  // namespace

std::string Error::str() const {
  if (where.line == 0) return fmt::format("{}: {}", file, message);
  if (where.column == 0) return fmt::format("{}:{}: {}", file, where.line, message);
  return fmt::format("{}:{}:{}: {}", file, where.line, where.column, message);
}

LoadResult parse(std::string_view text, const std::filesystem::path& source) {
  try {
    return parseUnguarded(text, source);
  } catch (const std::exception& e) {
    return failure(source, {}, fmt::format("internal error while reading the configuration: {}", e.what()));
  } catch (...) {
    return failure(source, {}, "internal error while reading the configuration");
  }
}

LoadResult loadFile(const std::filesystem::path& path) {
  try {
    std::string text;
    if (const auto error = readSmallFile(path, text)) return failure(path, {}, "cannot read: " + *error);
    if (text.size() > detail::kMaxConfigBytes) {
      return failure(path, {}, "larger than 1 MiB; this is not a configuration file");
    }
    return parse(text, path);
  } catch (const std::exception& e) {
    return failure(path, {}, fmt::format("cannot read: {}", e.what()));
  } catch (...) {
    return failure(path, {}, "cannot read");
  }
}

std::vector<SocketAddress> defaultListen() {
  return {{"127.0.0.1", 5684, "127.0.0.1:5684"}, {"::1", 5684, "[::1]:5684"}};
}

}  // namespace coap_edge::config
