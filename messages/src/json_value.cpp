#include "cadre/messages/json_value.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre {

namespace {

const std::shared_ptr<const json>& null_doc() {
  static const auto doc = std::make_shared<const json>();
  return doc;
}

} // namespace

json_value::json_value() : doc_(null_doc()) {
}

json_value::json_value(json value)
  : doc_(value.is_null() ? null_doc()
                         : std::make_shared<const json>(std::move(value))) {
}

json_value::json_value(std::shared_ptr<const json> doc)
  : doc_(doc ? std::move(doc) : null_doc()) {
}

std::string json_value::to_cbor() const {
  std::string out;
  json::to_cbor(*doc_, out);
  return out;
}

bool json_value::from_cbor(const std::string& bytes) {
  auto doc = json::from_cbor(bytes, true, false);
  if (doc.is_discarded()) {
    doc_ = null_doc();
    return false;
  }
  *this = json_value{std::move(doc)};
  return true;
}

std::string json_value::dump() const {
  return dump_json(*doc_);
}

std::string to_string(const json_value& x) {
  return dump_json(x);
}

} // namespace cadre
