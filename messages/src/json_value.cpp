#include "cadre/messages/json_value.hpp"
#include "cadre/messages/cbor.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre {

namespace {

const std::shared_ptr<const json>& null_doc() {
  static const auto doc = std::make_shared<const json>();
  return doc;
}

// Empties the containers of `doc` from the leaves up. nlohmann/json's own
// destructor moves every child of a container onto a heap-allocated stack
// first (so that deep documents cannot overflow the call stack); a shared
// document (an event's payload) is destroyed once per event, and this
// frees the same nodes without that stack. Below `max_depth` levels the
// children are left to the library's destructor.
void release(json& doc, unsigned depth = 0) {
  constexpr unsigned max_depth = 64;
  if (depth >= max_depth)
    return;
  if (doc.is_object()) {
    auto& fields = doc.get_ref<json::object_t&>();
    for (auto& field : fields)
      if (field.second.is_structured())
        release(field.second, depth + 1);
    fields.clear();
  } else if (doc.is_array()) {
    auto& items = doc.get_ref<json::array_t&>();
    for (auto& item : items)
      if (item.is_structured())
        release(item, depth + 1);
    items.clear();
  }
}

// The document of a json_value and its one allocation with the count.
struct owned_doc {
  json doc;
  explicit owned_doc(json x) : doc(std::move(x)) {
  }
  owned_doc(const owned_doc&) = delete;
  owned_doc& operator=(const owned_doc&) = delete;
  ~owned_doc() {
    release(doc);
  }
};

std::shared_ptr<const json> share(json value) {
  if (value.is_null())
    return null_doc();
  auto owner = std::make_shared<owned_doc>(std::move(value));
  const json* doc = &owner->doc;
  return {std::move(owner), doc};
}

} // namespace

json_value::json_value() : doc_(null_doc()) {
}

json_value::json_value(json value) : doc_(share(std::move(value))) {
}

json_value::json_value(std::shared_ptr<const json> doc)
  : doc_(doc ? std::move(doc) : null_doc()) {
}

std::string json_value::to_cbor() const {
  std::string out;
  cbor::append(*doc_, out);
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
