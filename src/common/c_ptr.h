#pragma once
// Owner for a C handle freed by a plain function (after Envoy's CSmartPtr): the deleter is part
// of the type, so every libcoap/Avahi/SQLite handle has exactly one owner and one release path.

#include <memory>

namespace coap_edge {

template <auto Free>
struct CDeleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    if (p != nullptr) Free(p);
  }
};

template <typename T, auto Free>
using CPtr = std::unique_ptr<T, CDeleter<Free>>;

}  // namespace coap_edge
