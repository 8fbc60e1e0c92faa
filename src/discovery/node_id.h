#pragma once
// Node ids for /nodes/{id} (see node_registry.h): safe as one URL path segment without any
// percent-encoding, readable, bounded. Uniqueness (the "-2" suffix) is the registry's job.

#include "discovery/node_registry.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace coap_edge::discovery {

/// Longest id, suffix included; the part before a uniqueness suffix is at most kMaxNodeIdBase.
inline constexpr std::size_t kMaxNodeIdLength = 64;
inline constexpr std::size_t kMaxNodeIdBase = 56;

/// A node's name (RD ep, mDNS instance) as an id: ASCII letters lower-cased, [a-z0-9._-] kept,
/// every run of other bytes (spaces, punctuation, each UTF-8 sequence) and of '-' becomes one
/// '-', no '-' at either end, at most kMaxNodeIdBase bytes. "" when nothing usable is left or
/// the result would be a dot-segment ("." / ".."): the caller then uses the address.
[[nodiscard]] std::string nodeIdFromName(std::string_view name);

/// An address as an id: host lower-cased with every byte outside [a-z0-9] replaced by '-'
/// (no collapsing, so "::" stays visible), then '-' and the port: "192-0-2-5-5683",
/// "fe80--1-eth0-5683". Long hosts are cut so that the port is always kept.
[[nodiscard]] std::string nodeIdFromAddress(const NodeAddress& address);

/// `base` with the n-th uniqueness suffix: n <= 1 gives `base`, 2 gives "base-2", ...
[[nodiscard]] std::string nodeIdWithSuffix(std::string_view base, std::size_t n);

}  // namespace coap_edge::discovery
