#include "cadre/persistence/codec.hpp"

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

using namespace cadre;
using namespace cadre::persistence;

namespace {

event sample_event() {
  event ev;
  ev.execution_id = "exec-1";
  ev.seq = 42;
  ev.time_us = 1'700'000'000'123'456;
  ev.type = "task.completed";
  ev.payload = json{{"task", "ocr"},
                    {"output", {{"text", "hello"}, {"pages", 3}}},
                    {"scores", {1.5, -2, true, nullptr}}};
  return ev;
}

void expect_same(const event& x, const event& y) {
  EXPECT_EQ(x.execution_id, y.execution_id);
  EXPECT_EQ(x.seq, y.seq);
  EXPECT_EQ(x.time_us, y.time_us);
  EXPECT_EQ(x.type, y.type);
  EXPECT_EQ(x.payload, y.payload);
}

expected<event> round_trip(const event& ev) {
  return decode_event(event_key(ev.execution_id, ev.seq), encode_event(ev));
}

} // namespace

TEST(Codec, EventRoundTrips) {
  auto ev = sample_event();
  auto got = round_trip(ev);
  ASSERT_TRUE(got) << describe(got.error());
  expect_same(*got, ev);
}

TEST(Codec, NegativeTimeAndNullPayloadRoundTrip) {
  event ev;
  ev.execution_id = "e";
  ev.seq = 1;
  ev.time_us = -5;
  ev.type = "";
  auto got = round_trip(ev);
  ASSERT_TRUE(got) << describe(got.error());
  expect_same(*got, ev);
  EXPECT_TRUE(got->payload.is_null());
}

TEST(Codec, ExtremeValuesRoundTrip) {
  for (auto time_us : {std::numeric_limits<int64_t>::min(), int64_t{-24},
                       int64_t{23}, int64_t{24}, int64_t{255}, int64_t{256},
                       int64_t{65536}, int64_t{1} << 32,
                       std::numeric_limits<int64_t>::max()}) {
    event ev;
    ev.execution_id = std::string(300, 'x');
    ev.seq = std::numeric_limits<uint64_t>::max();
    ev.time_us = time_us;
    ev.type = std::string(70'000, 't');
    ev.payload = json{{"s", std::string(1000, 'p')}};
    auto got = round_trip(ev);
    ASSERT_TRUE(got) << describe(got.error());
    expect_same(*got, ev);
  }
}

TEST(Codec, KeyIsIdZeroByteAndBigEndianSeq) {
  EXPECT_EQ(event_key("ab", 0x0102),
            std::string("ab\0\0\0\0\0\0\0\x01\x02", 11));
  EXPECT_EQ(event_key("ab", 0).size(), 11u);
}

TEST(Codec, KeysSortInSequenceOrder) {
  EXPECT_LT(event_key("e", 1), event_key("e", 2));
  EXPECT_LT(event_key("e", 255), event_key("e", 256));
  EXPECT_LT(event_key("e", 65'535), event_key("e", 65'536));
  EXPECT_LT(event_key("e", 0xffffffff), event_key("e", 0x100000000));
  // Every key of "e" sorts before every key of an id that extends it.
  EXPECT_LT(event_key("e", std::numeric_limits<uint64_t>::max()),
            event_key("e1", 0));
  EXPECT_LT(event_key("e", std::numeric_limits<uint64_t>::max()),
            event_key("e\x01", 0));
}

TEST(Codec, ValueStartsWithFormatVersion) {
  auto value = encode_event(sample_event());
  ASSERT_FALSE(value.empty());
  EXPECT_EQ(static_cast<uint8_t>(value[0]), format_version);
}

TEST(Codec, DecodesAnyCborMapWithTheThreeFields) {
  // nlohmann/json writes the keys in its own (sorted) order: payload,
  // time_us, type. The decoder must not depend on our encoder's order.
  // A field added by a later writer is ignored.
  json doc = {{"time_us", -7},
              {"type", "x.y"},
              {"payload", {1, 2, 3}},
              {"added_later", "ignored"}};
  std::string value(1, static_cast<char>(format_version));
  json::to_cbor(doc, value);
  auto got = decode_event(event_key("id", 9), value);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(got->execution_id, "id");
  EXPECT_EQ(got->seq, 9u);
  EXPECT_EQ(got->time_us, -7);
  EXPECT_EQ(got->type, "x.y");
  EXPECT_EQ(got->payload, json_value(json::array({1, 2, 3})));
}

TEST(Codec, CorruptValuesAreCodecErrors) {
  auto key = event_key("exec-9", 3);
  auto good = encode_event(sample_event());
  std::string wrong_version = good;
  wrong_version[0] = 7;
  std::string not_a_map(1, static_cast<char>(format_version));
  not_a_map += '\x01';
  json no_type = {{"time_us", 1}, {"payload", nullptr}};
  std::string missing_type(1, static_cast<char>(format_version));
  json::to_cbor(no_type, missing_type);
  std::string garbage(1, static_cast<char>(format_version));
  garbage += "\xff\xfe\xfd garbage";
  for (const auto& value :
       {std::string{}, wrong_version, good.substr(0, good.size() / 2),
        good.substr(0, good.size() - 1), not_a_map, missing_type, garbage}) {
    auto got = decode_event(key, value);
    ASSERT_FALSE(got) << "value of " << value.size() << " bytes decoded";
    EXPECT_EQ(code_of(got.error()), errc::codec_error);
    EXPECT_NE(message_of(got.error()).find("exec-9"), std::string::npos)
      << message_of(got.error());
  }
  auto got = decode_event(key, wrong_version);
  ASSERT_FALSE(got);
  EXPECT_NE(message_of(got.error()).find("format version 7"),
            std::string::npos);
}

TEST(Codec, MalformedKeysAreCodecErrors) {
  auto value = encode_event(sample_event());
  std::string no_separator = event_key("abc", 1);
  no_separator[3] = 'x';
  for (const auto& key : {std::string{}, std::string("short"),
                          std::string(9, '\0'), no_separator}) {
    auto got = decode_event(key, value);
    ASSERT_FALSE(got);
    EXPECT_EQ(code_of(got.error()), errc::codec_error);
  }
}

namespace {

/// An encoded event value whose payload is the raw CBOR `payload`.
std::string value_with_raw_payload(const std::string& payload) {
  event ev;
  ev.execution_id = "raw";
  ev.seq = 1;
  ev.type = "t";
  auto value = encode_event(ev); // ends with the null payload, 0xf6
  value.back() = payload.front();
  value.append(payload, 1);
  return value;
}

expected<event> decode_raw(const std::string& payload) {
  return decode_event(event_key("raw", 1), value_with_raw_payload(payload));
}

} // namespace

TEST(Codec, PayloadsOfEveryJsonTypeRoundTrip) {
  std::vector<json> docs = {
    json::object(),
    json::array(),
    "",
    "unicode: \xc3\xa9\xe2\x82\xac",
    std::string(100'000, 'z'),
    0,
    23,
    24,
    -24,
    -25,
    std::numeric_limits<int64_t>::min(),
    std::numeric_limits<uint64_t>::max(),
    0.5,
    0.1,
    -1e300,
    std::numeric_limits<double>::infinity(),
    false,
    json::binary({1, 2, 3, 255}),
    json{{"a", {{"b", {{"c", json::array({1, "x", nullptr, 2.5})}}}}},
         {"z", true}},
  };
  for (const auto& doc : docs) {
    event ev;
    ev.execution_id = "e";
    ev.seq = 1;
    ev.type = "t";
    ev.payload = doc;
    auto got = round_trip(ev);
    ASSERT_TRUE(got) << doc.dump() << ": " << describe(got.error());
    EXPECT_EQ(got->payload.get(), doc) << doc.dump();
    // Same result as nlohmann/json's own decoder.
    EXPECT_EQ(got->payload.get(), json::from_cbor(json::to_cbor(doc)));
  }
}

TEST(Codec, HalfFloatsAndRepeatedKeysDecodeLikeNlohmann) {
  std::string half_one("\xf9\x3c\x00", 3); // 1.0 as a half float
  auto one = decode_raw(half_one);
  ASSERT_TRUE(one) << describe(one.error());
  EXPECT_EQ(one->payload.get(), json(1.0));
  std::string half_min("\xf9\x00\x01", 3); // smallest subnormal
  auto tiny = decode_raw(half_min);
  ASSERT_TRUE(tiny);
  EXPECT_EQ(tiny->payload.get(), json::from_cbor(half_min));
  std::string repeated("\xa2\x61k\x01\x61k\x02", 7); // {"k":1,"k":2}
  auto last_wins = decode_raw(repeated);
  ASSERT_TRUE(last_wins);
  EXPECT_EQ(last_wins->payload.get(), json::from_cbor(repeated));
  EXPECT_EQ(last_wins->payload->at("k"), 2);
}

TEST(Codec, MalformedPayloadsAreCodecErrors) {
  std::string deep(100'000, '\x81'); // [[[[...
  deep += '\xf6';
  const std::vector<std::string> bad = {
    deep,
    std::string("\x9b\xff\xff\xff\xff\xff\xff\xff\xff", 9), // huge array
    std::string("\xbb\xff\xff\xff\xff\xff\xff\xff\xff", 9), // huge map
    std::string("\x7a\xff\xff\xff\xff", 5),                 // huge text
    std::string("\x9f\x01\xff", 3),  // indefinite length: never written
    std::string("\xc1\x01", 2),      // tag
    std::string("\xa1\x01\x02", 3),  // map key that is not text
    std::string("\xf6\xf6", 2),      // trailing bytes
    std::string("\xf8\x20", 2),      // unassigned simple value
    std::string("\xfb\x00", 2),      // truncated double
  };
  for (const auto& payload : bad) {
    auto got = decode_raw(payload);
    ASSERT_FALSE(got) << "payload of " << payload.size() << " bytes";
    EXPECT_EQ(code_of(got.error()), errc::codec_error);
    EXPECT_NE(message_of(got.error()).find("payload"), std::string::npos)
      << message_of(got.error());
  }
}

TEST(Codec, RandomlyCorruptedValuesDecodeOrFailCleanly) {
  auto ev = sample_event();
  auto key = event_key(ev.execution_id, ev.seq);
  auto good = encode_event(ev);
  std::mt19937 rng{42}; // fixed seed: the same inputs on every run
  size_t failures = 0;
  for (int round = 0; round < 20'000; ++round) {
    auto value = good;
    auto flips = 1 + rng() % 4;
    for (unsigned i = 0; i < flips; ++i)
      value[1 + rng() % (value.size() - 1)] = static_cast<char>(rng());
    if (rng() % 4 == 0)
      value.resize(1 + rng() % (value.size() - 1));
    auto got = decode_event(key, value);
    if (!got) {
      ++failures;
      ASSERT_EQ(code_of(got.error()), errc::codec_error);
    } else {
      EXPECT_EQ(got->execution_id, ev.execution_id);
      EXPECT_EQ(got->seq, ev.seq);
    }
  }
  EXPECT_GT(failures, 0u);
}
