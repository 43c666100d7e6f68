#include "cadre/messages/cbor.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace cadre::cbor {

namespace {

using json = nlohmann::json;

template <class T>
void put_big_endian(std::string& out, uint8_t prefix, T x) {
  char buf[sizeof(T) + 1];
  buf[0] = static_cast<char>(prefix);
  unsigned char raw[sizeof(T)];
  std::memcpy(raw, &x, sizeof(T));
  for (size_t i = 0; i < sizeof(T); ++i)
    buf[1 + i] = static_cast<char>(raw[sizeof(T) - 1 - i]);
  out.append(buf, sizeof(buf));
}

void put_float(std::string& out, double x) {
  if (std::isnan(x)) {
    out.append("\xf9\x7e\x00", 3);
  } else if (std::isinf(x)) {
    out.append(x > 0 ? "\xf9\x7c\x00" : "\xf9\xfc\x00", 3);
  } else if (x >= static_cast<double>(std::numeric_limits<float>::lowest())
             && x <= static_cast<double>(std::numeric_limits<float>::max())
             && std::bit_cast<uint64_t>(static_cast<double>(
                  static_cast<float>(x)))
                  == std::bit_cast<uint64_t>(x)) {
    // Exact as a float: to_cbor writes single precision.
    auto bits = std::bit_cast<uint32_t>(static_cast<float>(x));
    put_big_endian(out, 0xfa, bits);
  } else {
    put_big_endian(out, 0xfb, std::bit_cast<uint64_t>(x));
  }
}

void put_binary(std::string& out, const json::binary_t& b) {
  if (b.has_subtype()) {
    // to_cbor writes the tag with at least one byte of argument.
    auto tag = b.subtype();
    if (tag <= 0xff)
      put_big_endian(out, 0xd8, static_cast<uint8_t>(tag));
    else if (tag <= 0xffff)
      put_big_endian(out, 0xd9, static_cast<uint16_t>(tag));
    else if (tag <= 0xffffffff)
      put_big_endian(out, 0xda, static_cast<uint32_t>(tag));
    else
      put_big_endian(out, 0xdb, static_cast<uint64_t>(tag));
  }
  put_head(out, bytes_type, b.size());
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
}

} // namespace

void put_long_head(std::string& out, uint8_t major, uint64_t arg) {
  if (arg <= 0xff)
    put_big_endian(out, static_cast<uint8_t>((major << 5) | 24),
                   static_cast<uint8_t>(arg));
  else if (arg <= 0xffff)
    put_big_endian(out, static_cast<uint8_t>((major << 5) | 25),
                   static_cast<uint16_t>(arg));
  else if (arg <= 0xffffffff)
    put_big_endian(out, static_cast<uint8_t>((major << 5) | 26),
                   static_cast<uint32_t>(arg));
  else
    put_big_endian(out, static_cast<uint8_t>((major << 5) | 27), arg);
}

void append(const json& doc, std::string& out) {
  switch (doc.type()) {
    case json::value_t::null:
      out.push_back(static_cast<char>(0xf6));
      break;
    case json::value_t::boolean:
      out.push_back(static_cast<char>(doc.get_ref<const json::boolean_t&>()
                                        ? 0xf5
                                        : 0xf4));
      break;
    case json::value_t::number_integer: {
      auto x = doc.get_ref<const json::number_integer_t&>();
      if (x >= 0)
        put_head(out, uint_type, static_cast<uint64_t>(x));
      else // CBOR stores -1 - n; -(x + 1) cannot overflow for negative x
        put_head(out, negint_type, static_cast<uint64_t>(-(x + 1)));
      break;
    }
    case json::value_t::number_unsigned:
      put_head(out, uint_type, doc.get_ref<const json::number_unsigned_t&>());
      break;
    case json::value_t::number_float:
      put_float(out, doc.get_ref<const json::number_float_t&>());
      break;
    case json::value_t::string:
      put_text(out, doc.get_ref<const json::string_t&>());
      break;
    case json::value_t::array: {
      const auto& items = doc.get_ref<const json::array_t&>();
      put_head(out, array_type, items.size());
      for (const auto& x : items)
        append(x, out);
      break;
    }
    case json::value_t::object: {
      const auto& fields = doc.get_ref<const json::object_t&>();
      put_head(out, map_type, fields.size());
      for (const auto& [name, value] : fields) {
        put_text(out, name);
        append(value, out);
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

} // namespace cadre::cbor
