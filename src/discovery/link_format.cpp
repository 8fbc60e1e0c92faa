// Parsing CoRE Link Format (grammar and limits: link_format.h). One forward pass over the input
// with no recursion and no backtracking, so the time is linear in the (bounded) input; every
// refusal stops at the first problem and says where it is.

#include "discovery/link_format.h"

#include "discovery/link_format_chars.h"

#include <fmt/format.h>

#include <utility>

namespace coap_edge::discovery {
namespace {

using detail::hexValue;
using detail::isAttrChar;
using detail::isPtokenChar;
using detail::isQuotedTextChar;
using detail::isSpace;
using detail::isUriChar;

// A byte as it should appear in a diagnostic: 'x', or a name for the invisible ones.
std::string describeChar(unsigned char c) {
  if (c == ' ') return "a space";
  if (c == '\t') return "a tab";
  if (c < 0x20 || c == 0x7F) return fmt::format("control character 0x{:02X}", c);
  if (c >= 0x80) return fmt::format("byte 0x{:02X}", c);
  return fmt::format("'{}'", static_cast<char>(c));
}

struct UriProblem {
  std::size_t at;  ///< offset inside the checked text
  std::string message;
};

// The first reason `text` (`what`: "the link target") is not made of URI-Reference characters
// with well-formed escapes.
std::optional<UriProblem> checkUriReference(std::string_view text, std::string_view what) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '%') {
      const bool ok = i + 2 < text.size() && hexValue(static_cast<unsigned char>(text[i + 1])) >= 0 &&
                      hexValue(static_cast<unsigned char>(text[i + 2])) >= 0;
      if (!ok) return UriProblem{i, fmt::format("malformed percent-escape in {} (write %XX)", what)};
      i += 2;
    } else if (!isUriChar(c)) {
      return UriProblem{i, fmt::format("{} is not allowed in {}", describeChar(c), what)};
    }
  }
  return std::nullopt;
}

class Parser {
 public:
  Parser(std::string_view input, const LinkFormatLimits& limits) : in_(input), limits_(limits) {}

  LinkFormatResult run() {
    LinkFormatResult result;
    if (in_.size() > limits_.max_bytes) {
      fail(limits_.max_bytes, fmt::format("the document is larger than {} bytes", limits_.max_bytes));
    } else {
      parseDocument(result.links);
    }
    if (error_) {
      result.links.clear();
      result.error = std::move(error_);
    }
    return result;
  }

 private:
  bool atEnd() const { return pos_ >= in_.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(in_[pos_]); }
  void skipSpace() {
    while (!atEnd() && isSpace(peek())) ++pos_;
  }

  bool fail(std::size_t offset, std::string message) {
    error_ = LinkFormatError{offset, std::move(message)};
    return false;
  }

  bool parseDocument(std::vector<Link>& links) {
    skipSpace();
    if (atEnd()) return true;  // an empty list
    for (;;) {
      if (links.size() >= limits_.max_links) {
        return fail(pos_, fmt::format("too many links (at most {})", limits_.max_links));
      }
      links.emplace_back();
      if (!parseLink(links.back())) return false;
      if (atEnd()) return true;
      if (peek() != ',') return fail(pos_, "expected ',' or ';'");
      ++pos_;
      skipSpace();
    }
  }

  // From '<' to the end of the link's parameters and the whitespace after them.
  bool parseLink(Link& link) {
    if (atEnd() || peek() != '<') return fail(pos_, "expected '<' to start a link");
    ++pos_;
    if (!parseTarget(link.target)) return false;
    skipSpace();
    while (!atEnd() && peek() == ';') {
      ++pos_;
      skipSpace();
      if (!parseParam(link.attributes)) return false;
      skipSpace();
    }
    return true;
  }

  bool parseTarget(std::string& target) {
    const std::size_t start = pos_;
    const std::size_t close = in_.find('>', start);
    const std::string_view text = in_.substr(start, close == std::string_view::npos ? in_.size() - start
                                                                                     : close - start);
    // Characters first: a stray '<', ',' or space says more than "expected '>'" at the end.
    if (auto problem = checkUriReference(text, "the link target")) {
      return fail(start + problem->at, std::move(problem->message));
    }
    if (close == std::string_view::npos) return fail(in_.size(), "expected '>' after the link target");
    if (text.size() > limits_.max_target_bytes) {
      return fail(start, fmt::format("the link target is longer than {} bytes", limits_.max_target_bytes));
    }
    target.assign(text);
    pos_ = close + 1;
    return true;
  }

  bool parseParam(std::vector<LinkAttribute>& attributes) {
    const std::size_t name_start = pos_;
    if (atEnd() || !isAttrChar(peek())) return fail(pos_, "expected a parameter name after ';'");
    if (attributes.size() >= limits_.max_attributes_per_link) {
      return fail(name_start, fmt::format("too many parameters in one link (at most {})",
                                          limits_.max_attributes_per_link));
    }
    LinkAttribute attribute;
    while (!atEnd() && isAttrChar(peek())) {
      const unsigned char c = peek();
      attribute.name.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c));
      ++pos_;
    }
    if (!atEnd() && peek() == '*') {  // ext-name-star
      attribute.name.push_back('*');
      ++pos_;
    }
    if (attribute.name.size() > limits_.max_name_bytes) {
      return fail(name_start, fmt::format("the parameter name is longer than {} bytes", limits_.max_name_bytes));
    }
    skipSpace();
    std::size_t value_start = pos_;
    if (!atEnd() && peek() == '=') {
      ++pos_;
      skipSpace();
      value_start = pos_;
      std::string value;
      if (!atEnd() && peek() == '"') {
        if (!parseQuoted(value)) return false;
        attribute.quoted = true;
      } else if (!atEnd() && isPtokenChar(peek())) {
        while (!atEnd() && isPtokenChar(peek())) ++pos_;
        value.assign(in_.substr(value_start, pos_ - value_start));
      } else {
        return fail(pos_, "expected a value after '='");
      }
      if (value.size() > limits_.max_value_bytes) {
        return fail(value_start, fmt::format("the value is longer than {} bytes", limits_.max_value_bytes));
      }
      attribute.value = std::move(value);
    }
    if (attribute.name == "anchor") {
      if (!attribute.value) return fail(name_start, "anchor needs a URI-Reference value");
      // Inside a quoted-string escapes shift the bytes: point at the value, not into it.
      if (auto problem = checkUriReference(*attribute.value, "the anchor")) {
        return fail(value_start, std::move(problem->message));
      }
    }
    attributes.push_back(std::move(attribute));
    return true;
  }

  // From the opening '"' to after the closing one; `value` gets the text without its escapes.
  bool parseQuoted(std::string& value) {
    const std::size_t open = pos_;
    ++pos_;
    for (;;) {
      if (atEnd()) return fail(open, "the quoted-string is not closed");
      const unsigned char c = peek();
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (pos_ + 1 >= in_.size()) return fail(open, "the quoted-string is not closed");
        const auto escaped = static_cast<unsigned char>(in_[pos_ + 1]);
        if (!isQuotedTextChar(escaped)) {
          return fail(pos_ + 1, fmt::format("{} cannot be escaped in a quoted-string", describeChar(escaped)));
        }
        value.push_back(static_cast<char>(escaped));
        pos_ += 2;
        continue;
      }
      if (!isQuotedTextChar(c)) {
        return fail(pos_, fmt::format("{} is not allowed in a quoted-string", describeChar(c)));
      }
      value.push_back(static_cast<char>(c));
      ++pos_;
    }
  }

  std::string_view in_;
  const LinkFormatLimits& limits_;
  std::size_t pos_ = 0;
  std::optional<LinkFormatError> error_;
};

}  // namespace

LinkFormatResult parseLinkFormat(std::string_view input, const LinkFormatLimits& limits) {
  return Parser(input, limits).run();
}

std::optional<std::string> percentDecode(std::string_view text) {
  std::string decoded;
  decoded.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      decoded.push_back(text[i]);
      continue;
    }
    const int hi = i + 1 < text.size() ? hexValue(static_cast<unsigned char>(text[i + 1])) : -1;
    const int lo = i + 2 < text.size() ? hexValue(static_cast<unsigned char>(text[i + 2])) : -1;
    if (hi < 0 || lo < 0) return std::nullopt;
    decoded.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return decoded;
}

}  // namespace coap_edge::discovery
