// cadre's CBOR writer must write what nlohmann/json's to_cbor writes, byte
// for byte: logs written before it and after it are one format.

#include "cadre/messages/cbor.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/messages/json_value.hpp"

using namespace cadre;

namespace {

std::string ours(const json& doc) {
  std::string out;
  cbor::append(doc, out);
  return out;
}

std::string theirs(const json& doc) {
  std::string out;
  json::to_cbor(doc, out);
  return out;
}

} // namespace

TEST(Cbor, WritesWhatToCborWrites) {
  std::vector<json> docs{nullptr, true, false, json::object(), json::array(),
                         "", "x", std::string(23, 'a'), std::string(24, 'b'),
                         std::string(255, 'c'), std::string(256, 'd'),
                         std::string(70'000, 'e'), "é \xe2\x82\xac"};
  // Integer heads around every width boundary, signed and unsigned.
  for (int64_t x : {int64_t{0}, int64_t{23}, int64_t{24}, int64_t{255},
                    int64_t{256}, int64_t{65535}, int64_t{65536},
                    int64_t{4294967295}, int64_t{4294967296},
                    std::numeric_limits<int64_t>::max()}) {
    docs.emplace_back(x);
    docs.emplace_back(-x);
    docs.emplace_back(-x - 1);
    docs.emplace_back(static_cast<uint64_t>(x));
  }
  docs.emplace_back(std::numeric_limits<int64_t>::min());
  docs.emplace_back(std::numeric_limits<uint64_t>::max());
  // Floats: exact as single precision, not, and the special values.
  for (double x : {0.0, -0.0, 0.5, -1.25, 0.1, 1e300, -1e-300, 3.4e38,
                   3.5e38, 1.0 / 3.0, 16777216.0, 16777217.0,
                   static_cast<double>(std::numeric_limits<float>::max()),
                   static_cast<double>(std::numeric_limits<float>::lowest()),
                   std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::quiet_NaN(),
                   std::numeric_limits<double>::denorm_min()})
    docs.emplace_back(x);
  // Binary, with and without subtypes of each width.
  json::binary_t::container_type bytes{1, 2, 255};
  docs.push_back(json::binary(bytes));
  for (uint64_t sub : {uint64_t{0}, uint64_t{7}, uint64_t{255}, uint64_t{256},
                       uint64_t{70000}, uint64_t{5000000000}})
    docs.push_back(json::binary(bytes, sub));
  // Containers around the head boundaries, nested.
  for (size_t n : {size_t{23}, size_t{24}, size_t{256}}) {
    json arr = json::array();
    json obj = json::object();
    for (size_t i = 0; i < n; ++i) {
      arr.push_back(i);
      obj["k" + std::to_string(i)] = json{{"v", i}, {"s", "x"}};
    }
    docs.push_back(arr);
    docs.push_back(obj);
  }
  docs.push_back(json::parse(R"({"turn":"t1","call":2,"response":{"message":
    {"role":"assistant","content":"","tool_calls":[{"id":"c1","name":"echo",
    "arguments":{"text":"hi","n":[1,-2,3.5,null,true]}}]},
    "usage":{"input_tokens":12,"output_tokens":3}}})"));
  for (const auto& doc : docs) {
    EXPECT_EQ(ours(doc), theirs(doc)) << doc.dump();
    EXPECT_EQ(json_value{doc}.to_cbor(), theirs(doc)) << doc.dump();
  }
  // Appends: what is in `out` stays.
  std::string out = "prefix";
  cbor::append(json{1, 2}, out);
  EXPECT_EQ(out, "prefix" + theirs(json{1, 2}));
}

TEST(Cbor, DeepSharedDocumentsAreFreed) {
  // Deeper than the levels json_value empties itself: the rest is left to
  // nlohmann's destructor, which does not recurse.
  json deep = json::array();
  for (int i = 0; i < 100'000; ++i)
    deep = json::array({std::move(deep), json{{"k", "value of some length"}}});
  json_value shared{std::move(deep)};
  auto copy = shared;
  EXPECT_TRUE(copy->is_array());
}
