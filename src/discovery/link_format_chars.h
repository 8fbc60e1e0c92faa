#pragma once
// Character classes of RFC 6690 §2 and RFC 3986, shared by the link-format parser and
// serializer (internal to discovery/). Bytes, not chars: >= 0x80 must never look like ASCII.

namespace coap_edge::discovery::detail {

constexpr bool isAlpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool isDigit(unsigned char c) { return c >= '0' && c <= '9'; }

constexpr int hexValue(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// RFC 6690 attr-char: what a parmname is made of.
constexpr bool isAttrChar(unsigned char c) {
  switch (c) {
    case '!': case '#': case '$': case '&': case '+': case '-': case '.': case '^': case '_': case '`':
    case '|': case '~':
      return true;
    default:
      return isAlpha(c) || isDigit(c);
  }
}

/// RFC 6690 ptokenchar: what an unquoted value is made of (note: no ',', ';', '"', '\', space).
constexpr bool isPtokenChar(unsigned char c) {
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '(': case ')': case '*': case '+':
    case '-': case '.': case '/': case ':': case '<': case '=': case '>': case '?': case '@': case '[':
    case ']': case '^': case '_': case '`': case '{': case '|': case '}': case '~':
      return true;
    default:
      return isAlpha(c) || isDigit(c);
  }
}

/// A byte that may appear in a URI-Reference (RFC 3986 unreserved, reserved and '%').
constexpr bool isUriChar(unsigned char c) {
  switch (c) {
    case '-': case '.': case '_': case '~':                                          // unreserved
    case ':': case '/': case '?': case '#': case '[': case ']': case '@':            // gen-delims
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+':  // sub-delims
    case ',': case ';': case '=':
    case '%':
      return true;
    default:
      return isAlpha(c) || isDigit(c);
  }
}

/// Whitespace tolerated between the tokens of a document (SP, HTAB, CR, LF).
constexpr bool isSpace(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/// What a quoted-string may hold as written (RFC 7230 qdtext plus the escaped '"' and '\'):
/// HTAB, SP, visible ASCII and obs-text; never other controls or DEL.
constexpr bool isQuotedTextChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7F); }

}  // namespace coap_edge::discovery::detail
