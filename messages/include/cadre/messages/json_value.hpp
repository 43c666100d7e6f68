#pragma once

#include <memory>
#include <string>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/sec.hpp>
#include <caf/meta/type_name.hpp>
#include <nlohmann/json.hpp>

namespace cadre {

using json = nlohmann::json;

/// An immutable JSON document that travels inside CAF messages. Copies share
/// the document, so passing one through several actors costs a refcount.
/// Serialized by CAF as CBOR bytes.
class json_value {
public:
  json_value();
  json_value(json value); // NOLINT: implicit on purpose, wraps any JSON
  /// Shares `doc` (null: a null document). An aliasing pointer lets the
  /// document keep a larger owner alive for as long as any copy lives
  /// (e.g. a tool's part input and the decoded bytes it refers to).
  explicit json_value(std::shared_ptr<const json> doc);

  const json& get() const noexcept {
    return *doc_;
  }
  const json* operator->() const noexcept {
    return doc_.get();
  }
  const json& operator*() const noexcept {
    return *doc_;
  }

  bool is_null() const noexcept {
    return doc_->is_null();
  }

  /// Compact CBOR encoding of the document.
  std::string to_cbor() const;

  /// Decodes CBOR; returns false on malformed input and leaves *this null.
  bool from_cbor(const std::string& bytes);

  /// Compact JSON text; bytes that are not UTF-8 become U+FFFD (never
  /// throws: a document from a store must always be printable).
  std::string dump() const;

  friend bool operator==(const json_value& x, const json_value& y) {
    return x.doc_ == y.doc_ || *x.doc_ == *y.doc_;
  }
  friend bool operator!=(const json_value& x, const json_value& y) {
    return !(x == y);
  }

private:
  std::shared_ptr<const json> doc_;
};

template <class Inspector>
auto inspect(Inspector& f, json_value& x) {
  if constexpr (Inspector::reads_state) {
    auto bytes = x.to_cbor();
    return f(caf::meta::type_name("json_value"), bytes);
  } else {
    std::string bytes;
    return f(caf::meta::type_name("json_value"), bytes,
             caf::meta::load_callback([&]() -> caf::error {
               if (!x.from_cbor(bytes))
                 return caf::make_error(caf::sec::invalid_argument,
                                        "json_value: malformed CBOR");
               return caf::none;
             }));
  }
}

std::string to_string(const json_value& x);

} // namespace cadre
