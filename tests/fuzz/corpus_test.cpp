// The fuzzers' seed corpora (fuzz/corpus/<target>/: the cases of issue 12
// and every input a fuzzer found wrong) replayed through the same entry
// points in the normal build, without clang or libFuzzer. A finding stays
// fixed once its input is in the corpus.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

#define CADRE_FUZZER(name)                                                    \
  extern "C" int name##_one_input(const uint8_t* data, size_t size);
CADRE_FUZZER(fuzz_workflow)
CADRE_FUZZER(fuzz_json)
CADRE_FUZZER(fuzz_json_schema)
CADRE_FUZZER(fuzz_lua)
CADRE_FUZZER(fuzz_event_codec)
CADRE_FUZZER(fuzz_duration)
CADRE_FUZZER(fuzz_sse)
CADRE_FUZZER(fuzz_request_body)
#undef CADRE_FUZZER

namespace {

namespace fs = std::filesystem;

using one_input = int (*)(const uint8_t*, size_t);

// Runs every file of fuzz/corpus/<target>; a crash or a broken property
// (the targets trap) ends the test. Returns how many inputs ran.
size_t replay(const std::string& target, one_input fn) {
  fs::path dir = fs::path{CADRE_SOURCE_DIR} / "fuzz" / "corpus" / target;
  size_t n = 0;
  for (auto& entry : fs::directory_iterator{dir}) {
    if (!entry.is_regular_file())
      continue;
    std::ifstream in{entry.path(), std::ios::binary};
    std::string bytes{std::istreambuf_iterator<char>{in}, {}};
    SCOPED_TRACE(entry.path().string());
    fn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++n;
  }
  return n;
}

#define CADRE_CORPUS_TEST(name)                                               \
  TEST(FuzzCorpusTest, name) {                                                \
    EXPECT_GT(replay(#name, &name##_one_input), 0u);                         \
  }
CADRE_CORPUS_TEST(fuzz_workflow)
CADRE_CORPUS_TEST(fuzz_json)
CADRE_CORPUS_TEST(fuzz_json_schema)
CADRE_CORPUS_TEST(fuzz_lua)
CADRE_CORPUS_TEST(fuzz_event_codec)
CADRE_CORPUS_TEST(fuzz_duration)
CADRE_CORPUS_TEST(fuzz_sse)
CADRE_CORPUS_TEST(fuzz_request_body)

} // namespace
