#include "cadre/messages/cbor.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace cadre::cbor {

namespace {

using json = nlohmann::json;

// Writes `prefix` then the `bytes` low bytes of `x`, big-endian, to `p`.
void put_prefixed(char* p, uint8_t prefix, uint64_t x, int bytes) {
  p[0] = static_cast<char>(prefix);
  for (int i = 0; i < bytes; ++i)
    p[bytes - i] = static_cast<char>((x >> (8 * i)) & 0xff);
}

// The head's additional information and argument width for arg >= 24.
int long_head(uint64_t arg, uint8_t& info) {
  if (arg <= 0xff) {
    info = 24;
    return 1;
  }
  if (arg <= 0xffff) {
    info = 25;
    return 2;
  }
  if (arg <= 0xffffffff) {
    info = 26;
    return 4;
  }
  info = 27;
  return 8;
}

// Writes into the string's own buffer, which grows geometrically only when
// the next item may not fit; finish() cuts it to what was written. (Going
// through push_back and append for each small item cost more than the
// bytes themselves.)
class buffer {
public:
  explicit buffer(std::string& out) : out_(out), n_(out.size()) {
  }

  void finish() {
    out_.resize(n_);
  }

  void byte(uint8_t b) {
    *room(1) = static_cast<char>(b);
    ++n_;
  }

  void head(uint8_t major, uint64_t arg) {
    auto* p = room(9);
    auto m = static_cast<uint8_t>(major << 5);
    if (arg < 24) {
      *p = static_cast<char>(m | arg);
      ++n_;
      return;
    }
    uint8_t info = 0;
    int bytes = long_head(arg, info);
    put_prefixed(p, static_cast<uint8_t>(m | info), arg, bytes);
    n_ += static_cast<size_t>(bytes) + 1;
  }

  // A prefix byte and a number of `bytes` bytes, big-endian.
  void prefixed(uint8_t prefix, uint64_t x, int bytes) {
    put_prefixed(room(9), prefix, x, bytes);
    n_ += static_cast<size_t>(bytes) + 1;
  }

  void raw(const void* data, size_t size) {
    if (size == 0)
      return;
    std::memcpy(room(size), data, size);
    n_ += size;
  }

  void text(std::string_view x) {
    head(text_type, x.size());
    raw(x.data(), x.size());
  }

private:
  char* room(size_t size) {
    if (out_.size() - n_ < size) [[unlikely]]
      grow(size);
    return out_.data() + n_;
  }

  [[gnu::noinline]] void grow(size_t size) {
    out_.resize(std::max(2 * out_.size(), n_ + size + 256));
  }

  std::string& out_;
  size_t n_;
};

void put_float(buffer& out, double x) {
  if (std::isnan(x)) {
    out.raw("\xf9\x7e\x00", 3);
  } else if (std::isinf(x)) {
    out.raw(x > 0 ? "\xf9\x7c\x00" : "\xf9\xfc\x00", 3);
  } else if (x >= static_cast<double>(std::numeric_limits<float>::lowest())
             && x <= static_cast<double>(std::numeric_limits<float>::max())
             && std::bit_cast<uint64_t>(static_cast<double>(
                  static_cast<float>(x)))
                  == std::bit_cast<uint64_t>(x)) {
    // Exact as a float: to_cbor writes single precision.
    out.prefixed(0xfa, std::bit_cast<uint32_t>(static_cast<float>(x)), 4);
  } else {
    out.prefixed(0xfb, std::bit_cast<uint64_t>(x), 8);
  }
}

void put_binary(buffer& out, const json::binary_t& b) {
  if (b.has_subtype()) {
    // to_cbor writes the tag with at least one byte of argument.
    uint64_t tag = b.subtype();
    if (tag <= 0xff)
      out.prefixed(0xd8, tag, 1);
    else if (tag <= 0xffff)
      out.prefixed(0xd9, tag, 2);
    else if (tag <= 0xffffffff)
      out.prefixed(0xda, tag, 4);
    else
      out.prefixed(0xdb, tag, 8);
  }
  out.head(bytes_type, b.size());
  out.raw(b.data(), b.size());
}

void write(buffer& out, const json& doc) {
  switch (doc.type()) {
    case json::value_t::null:
      out.byte(0xf6);
      break;
    case json::value_t::boolean:
      out.byte(doc.get_ref<const json::boolean_t&>() ? 0xf5 : 0xf4);
      break;
    case json::value_t::number_integer: {
      auto x = doc.get_ref<const json::number_integer_t&>();
      if (x >= 0)
        out.head(uint_type, static_cast<uint64_t>(x));
      else // CBOR stores -1 - n; -(x + 1) cannot overflow for negative x
        out.head(negint_type, static_cast<uint64_t>(-(x + 1)));
      break;
    }
    case json::value_t::number_unsigned:
      out.head(uint_type, doc.get_ref<const json::number_unsigned_t&>());
      break;
    case json::value_t::number_float:
      put_float(out, doc.get_ref<const json::number_float_t&>());
      break;
    case json::value_t::string:
      out.text(doc.get_ref<const json::string_t&>());
      break;
    case json::value_t::array: {
      const auto& items = doc.get_ref<const json::array_t&>();
      out.head(array_type, items.size());
      for (const auto& x : items)
        write(out, x);
      break;
    }
    case json::value_t::object: {
      const auto& fields = doc.get_ref<const json::object_t&>();
      out.head(map_type, fields.size());
      for (const auto& [name, value] : fields) {
        out.text(name);
        write(out, value);
      }
      break;
    }
    case json::value_t::binary:
      put_binary(out, doc.get_binary());
      break;
    case json::value_t::discarded:
      break;
  }
}

} // namespace

void put_long_head(std::string& out, uint8_t major, uint64_t arg) {
  char buf[9];
  uint8_t info = 0;
  int bytes = long_head(arg, info);
  put_prefixed(buf, static_cast<uint8_t>((major << 5) | info), arg, bytes);
  out.append(buf, static_cast<size_t>(bytes) + 1);
}

void append(const json& doc, std::string& out) {
  buffer b{out};
  write(b, doc);
  b.finish();
}

} // namespace cadre::cbor
