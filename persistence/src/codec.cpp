#include "cadre/persistence/codec.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "cadre/messages/cbor.hpp"
#include "cadre/messages/json_text.hpp"
#include "codec_detail.hpp"

namespace cadre::persistence {

namespace detail {

namespace {

// CBOR (RFC 8949) major types used by the event value.
constexpr uint8_t cbor_uint = cbor::uint_type;
constexpr uint8_t cbor_negint = cbor::negint_type;
constexpr uint8_t cbor_text = cbor::text_type;
constexpr uint8_t cbor_map = cbor::map_type;
constexpr unsigned char cbor_null = 0xf6;

constexpr std::string_view key_time_us = "time_us";
constexpr std::string_view key_type = "type";
constexpr std::string_view key_payload = "payload";

using cbor::put_head;
using cbor::put_text;

/// Decodes the CBOR that nlohmann/json's to_cbor writes (definite lengths,
/// no tags) straight into a json, without nlohmann's SAX layer and its
/// string copies. Anything else is an error, never undefined behaviour:
/// lengths are checked against the input and nesting is bounded.
class cbor_reader {
public:
  // Values read from text nest at most max_json_depth levels; events and
  // templates add levels around them.
  static constexpr unsigned max_depth = 2 * max_json_depth;

  cbor_reader(const unsigned char* first, const unsigned char* last)
    : pos_(first), begin_(first), end_(last) {
  }

  bool at_end() const {
    return pos_ == end_;
  }

  /// Reads an item head of a definite length; false at the end of input or
  /// for an indefinite length. Never sets an error (the fast path of the
  /// event decoder probes with it).
  bool head(uint8_t& major, uint64_t& arg) {
    if (pos_ == end_)
      return false;
    auto byte = *pos_++;
    major = byte >> 5;
    return argument(static_cast<uint8_t>(byte & 0x1f), arg);
  }

  bool text(std::string_view& out) {
    uint8_t major = 0;
    uint64_t len = 0;
    if (!head(major, len) || major != cbor_text || len > remaining())
      return false;
    out = std::string_view{reinterpret_cast<const char*>(pos_),
                           static_cast<size_t>(len)};
    pos_ += len;
    return true;
  }

  bool key(std::string_view expected) {
    std::string_view got;
    return text(got) && got == expected;
  }

  /// Reads one complete item into `out`, which must be null.
  bool value(json& out, unsigned depth = 0) {
    if (depth > max_depth)
      return fail("nesting deeper than " + std::to_string(max_depth));
    if (pos_ == end_)
      return fail("truncated");
    auto byte = *pos_++;
    auto major = static_cast<uint8_t>(byte >> 5);
    auto info = static_cast<uint8_t>(byte & 0x1f);
    if (major == 7)
      return simple(info, out);
    uint64_t arg = 0;
    if (!argument(info, arg))
      return fail("truncated or indefinite-length item");
    switch (major) {
      case cbor_uint:
        out = arg;
        return true;
      case cbor_negint:
        if (arg > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          return fail("negative integer out of range");
        out = -1 - static_cast<int64_t>(arg);
        return true;
      case cbor_bytes: {
        if (arg > remaining())
          return fail("truncated byte string");
        json::binary_t::container_type bytes(pos_, pos_ + arg);
        pos_ += arg;
        out = json::binary(std::move(bytes));
        return true;
      }
      case cbor_text:
        if (arg > remaining())
          return fail("truncated text string");
        out = std::string{reinterpret_cast<const char*>(pos_),
                          static_cast<size_t>(arg)};
        pos_ += arg;
        return true;
      case cbor_array: {
        // Each item takes at least one byte: a bound before reserving.
        if (arg > remaining())
          return fail("truncated array");
        out = json::array();
        auto& items = out.get_ref<json::array_t&>();
        items.reserve(static_cast<size_t>(arg));
        for (uint64_t i = 0; i < arg; ++i)
          if (!value(items.emplace_back(), depth + 1))
            return false;
        return true;
      }
      case cbor_map: {
        if (arg > remaining() / 2)
          return fail("truncated map");
        out = json::object();
        auto& fields = out.get_ref<json::object_t&>();
        for (uint64_t i = 0; i < arg; ++i) {
          std::string_view name;
          if (!text(name))
            return fail("map key is not a text string");
          json field;
          if (!value(field, depth + 1))
            return false;
          // nlohmann/json writes keys sorted: hinting at the end makes each
          // insert O(1). A repeated key keeps the last value, as nlohmann's
          // own parser does.
          fields.insert_or_assign(fields.end(), std::string{name},
                                  std::move(field));
        }
        return true;
      }
      default: // 6: tags
        return fail("CBOR tags are not supported");
    }
  }

  const unsigned char* pos() const {
    return pos_;
  }

  const std::string& error() const {
    return error_;
  }

private:
  static constexpr uint8_t cbor_bytes = 2;
  static constexpr uint8_t cbor_array = 4;

  size_t remaining() const {
    return static_cast<size_t>(end_ - pos_);
  }

  bool argument(uint8_t info, uint64_t& arg) {
    if (info < 24) {
      arg = info;
      return true;
    }
    size_t n = info == 24 ? 1 : info == 25 ? 2 : info == 26 ? 4
               : info == 27 ? 8 : 0;
    if (n == 0 || remaining() < n)
      return false;
    arg = 0;
    for (size_t i = 0; i < n; ++i)
      arg = (arg << 8) | *pos_++;
    return true;
  }

  bool simple(uint8_t info, json& out) {
    uint64_t bits = 0;
    switch (info) {
      case 20:
        out = false;
        return true;
      case 21:
        out = true;
        return true;
      case 22:
        out = nullptr;
        return true;
      case 25: { // half precision, as nlohmann/json decodes it
        if (!argument(info, bits))
          return fail("truncated half float");
        auto exp = static_cast<int>((bits >> 10) & 0x1f);
        auto mant = static_cast<double>(bits & 0x3ff);
        double x = exp == 0    ? std::ldexp(mant, -24)
                   : exp == 31 ? (mant == 0
                                    ? std::numeric_limits<double>::infinity()
                                    : std::numeric_limits<double>::quiet_NaN())
                               : std::ldexp(mant + 1024, exp - 25);
        out = (bits & 0x8000) != 0 ? -x : x;
        return true;
      }
      case 26: {
        if (!argument(info, bits))
          return fail("truncated float");
        out = static_cast<double>(
          std::bit_cast<float>(static_cast<uint32_t>(bits)));
        return true;
      }
      case 27: {
        if (!argument(info, bits))
          return fail("truncated double");
        out = std::bit_cast<double>(bits);
        return true;
      }
      default:
        return fail("unsupported simple value "
                    + std::to_string(static_cast<int>(info)));
    }
  }

  bool fail(std::string reason) {
    error_ = std::move(reason) + " at byte "
             + std::to_string(static_cast<size_t>(pos_ - begin_));
    return false;
  }

  const unsigned char* pos_;
  const unsigned char* begin_;
  const unsigned char* end_;
  std::string error_;
};

caf::error codec_error(std::string msg) {
  return make_error(errc::codec_error, std::move(msg));
}

/// Parses exactly one CBOR item spanning [first, last) into `out`.
caf::error parse_cbor(const unsigned char* first, const unsigned char* last,
                      json& out) {
  cbor_reader r{first, last};
  if (!r.value(out))
    return codec_error("invalid CBOR: " + r.error());
  if (!r.at_end())
    return codec_error("invalid CBOR: "
                       + std::to_string(static_cast<size_t>(last - r.pos()))
                       + " trailing bytes");
  return caf::error{};
}

caf::error check_version(std::string_view value) {
  if (value.empty())
    return codec_error("value is empty");
  auto version = static_cast<uint8_t>(value[0]);
  if (version != format_version)
    return codec_error("unsupported format version "
                       + std::to_string(version) + " (this build reads "
                       + std::to_string(format_version) + ")");
  return caf::error{};
}

// Decodes any CBOR map with the three fields, in any order.
caf::error decode_event_generic(const unsigned char* first,
                                const unsigned char* last, event& out) {
  json doc;
  if (auto err = parse_cbor(first, last, doc))
    return err;
  if (!doc.is_object())
    return codec_error("value is not a CBOR map");
  auto t = doc.find(key_time_us);
  if (t == doc.end() || !(t->is_number_integer()))
    return codec_error("value has no integer time_us");
  if (t->is_number_unsigned()
      && t->get<uint64_t>()
           > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return codec_error("time_us is out of range");
  auto ty = doc.find(key_type);
  if (ty == doc.end() || !ty->is_string())
    return codec_error("value has no text type");
  out.time_us = t->get<int64_t>();
  out.type = std::move(ty->get_ref<std::string&>());
  if (auto p = doc.find(key_payload); p != doc.end())
    out.payload = json_value{std::move(*p)};
  else
    out.payload = json_value{};
  return caf::error{};
}

bool is_number(std::string_view x) {
  return !x.empty() && std::all_of(x.begin(), x.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
}

int compare_part(std::string_view x, std::string_view y) {
  if (is_number(x) && is_number(y)) {
    auto strip = [](std::string_view& s) {
      while (s.size() > 1 && s.front() == '0')
        s.remove_prefix(1);
    };
    strip(x);
    strip(y);
    if (x.size() != y.size())
      return x.size() < y.size() ? -1 : 1;
  }
  auto c = x.compare(y);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

} // namespace

void put_big_endian64(std::string& out, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out.append(buf, sizeof(buf));
}

uint64_t get_big_endian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void event_key_to(std::string& out, std::string_view id, uint64_t seq) {
  out.clear();
  out.reserve(id.size() + event_key_suffix);
  out.append(id);
  out.push_back('\0');
  put_big_endian64(out, seq);
}

bool split_event_key(std::string_view key, std::string_view& id,
                     uint64_t& seq) {
  if (key.size() <= event_key_suffix)
    return false;
  auto sep = key.size() - event_key_suffix;
  if (key[sep] != '\0')
    return false;
  id = key.substr(0, sep);
  seq = get_big_endian64(key.data() + sep + 1);
  return true;
}

void encode_event_to(const event& ev, std::string& out) {
  out.clear();
  out.push_back(static_cast<char>(format_version));
  put_head(out, cbor_map, 3);
  put_text(out, key_time_us);
  if (ev.time_us >= 0)
    put_head(out, cbor_uint, static_cast<uint64_t>(ev.time_us));
  else // CBOR stores -1 - n; -(x + 1) cannot overflow for negative x
    put_head(out, cbor_negint, static_cast<uint64_t>(-(ev.time_us + 1)));
  put_text(out, key_type);
  put_text(out, ev.type);
  put_text(out, key_payload);
  if (ev.payload.is_null())
    out.push_back(static_cast<char>(cbor_null));
  else
    cbor::append(ev.payload.get(), out);
}

caf::error decode_event_value(std::string_view value, event& out) {
  if (auto err = check_version(value))
    return err;
  auto first = reinterpret_cast<const unsigned char*>(value.data()) + 1;
  auto last = reinterpret_cast<const unsigned char*>(value.data())
              + value.size();
  // Fast path: the exact layout encode_event_to writes, with only the
  // payload going through the generic CBOR reader.
  cbor_reader r{first, last};
  uint8_t major = 0;
  uint64_t arg = 0;
  uint8_t time_major = 0;
  uint64_t time_arg = 0;
  std::string_view type;
  if (r.head(major, arg) && major == cbor_map && arg == 3
      && r.key(key_time_us) && r.head(time_major, time_arg)
      && (time_major == cbor_uint || time_major == cbor_negint)
      && time_arg <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
      && r.key(key_type) && r.text(type) && r.key(key_payload)
      && !r.at_end()) {
    if (last - r.pos() == 1 && *r.pos() == cbor_null) {
      out.payload = json_value{};
    } else {
      json doc;
      if (auto err = parse_cbor(r.pos(), last, doc))
        return codec_error("payload: " + message_of(err));
      out.payload = json_value{std::move(doc)};
    }
    out.time_us = time_major == cbor_uint
                    ? static_cast<int64_t>(time_arg)
                    : -1 - static_cast<int64_t>(time_arg);
    out.type.assign(type);
    return caf::error{};
  }
  return decode_event_generic(first, last, out);
}

bool valid_key_part(std::string_view x) {
  return !x.empty() && x.find('\0') == std::string_view::npos;
}

std::string encode_execution_info(const execution_info& info) {
  json doc = info;
  std::string out(1, static_cast<char>(format_version));
  cbor::append(doc, out);
  return out;
}

expected<execution_info> decode_execution_info(std::string_view key,
                                               std::string_view value) {
  auto fail = [&](const std::string& reason) {
    return make_error(errc::codec_error, "decode execution index entry '"
                                           + std::string{key}
                                           + "': " + reason);
  };
  if (auto err = check_version(value))
    return fail(message_of(err));
  auto data = reinterpret_cast<const unsigned char*>(value.data());
  json doc;
  if (auto err = parse_cbor(data + 1, data + value.size(), doc))
    return fail(message_of(err));
  try {
    return doc.get<execution_info>();
  } catch (const json::exception& e) {
    return fail(e.what());
  }
}

std::string encode_document(const json_value& doc) {
  std::string out(1, static_cast<char>(format_version));
  cbor::append(doc.get(), out);
  return out;
}

expected<json_value> decode_document(std::string_view value,
                                     std::string_view what) {
  auto fail = [&](const std::string& reason) {
    return make_error(errc::codec_error,
                      "decode " + std::string{what} + ": " + reason);
  };
  if (auto err = check_version(value))
    return fail(message_of(err));
  auto data = reinterpret_cast<const unsigned char*>(value.data());
  json doc;
  if (auto err = parse_cbor(data + 1, data + value.size(), doc))
    return fail(message_of(err));
  return json_value{std::move(doc)};
}

int compare_versions(std::string_view x, std::string_view y) {
  for (;;) {
    auto xdot = x.find('.');
    auto ydot = y.find('.');
    if (auto c = compare_part(x.substr(0, xdot), y.substr(0, ydot)); c != 0)
      return c;
    auto xend = xdot == std::string_view::npos;
    auto yend = ydot == std::string_view::npos;
    if (xend || yend)
      return xend == yend ? 0 : xend ? -1 : 1;
    x.remove_prefix(xdot + 1);
    y.remove_prefix(ydot + 1);
  }
}

} // namespace detail

std::string event_key(std::string_view execution_id, uint64_t seq) {
  std::string out;
  detail::event_key_to(out, execution_id, seq);
  return out;
}

std::string encode_event(const event& ev) {
  std::string out;
  detail::encode_event_to(ev, out);
  return out;
}

expected<event> decode_event(std::string_view key, std::string_view value) {
  std::string_view id;
  uint64_t seq = 0;
  if (!detail::split_event_key(key, id, seq))
    return make_error(errc::codec_error,
                      "decode event: malformed key of "
                        + std::to_string(key.size())
                        + " bytes (want execution id, 0 byte, 8-byte seq)");
  event ev;
  ev.execution_id.assign(id);
  ev.seq = seq;
  if (auto err = detail::decode_event_value(value, ev))
    return make_error(errc::codec_error,
                      "decode event '" + ev.execution_id + "' seq "
                        + std::to_string(seq) + ": " + message_of(err));
  return ev;
}

} // namespace cadre::persistence
