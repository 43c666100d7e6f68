// The replay commands' readers hold a chunk of a log, never the whole of
// it: an export and a check against a definition read a big map's log a
// chunk at a time and give what reading it whole gave.

#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "big_map_log.hpp"

#include "cadre/messages/json_text.hpp"
#include "cadre/workflow/machine.hpp"
#include "cadre/workflow/replay.hpp"
#include "replay_support.hpp"

using namespace cadre;

namespace {

using test::big_map_log;

// A store of one log that counts how it is read.
struct counting_store {
  std::vector<event> log;
  size_t reads = 0;
  size_t whole_reads = 0; // reads of a whole log (max 0)
  size_t most = 0;        // the most events one read returned

  runtime::log_reader reader() {
    runtime::log_reader r;
    r.read = [this](const std::string& name, uint64_t from,
                    uint64_t max) -> expected<std::vector<event>> {
      if (name != log.front().execution_id)
        return std::vector<event>{};
      ++reads;
      if (max == 0)
        ++whole_reads;
      auto first = std::min<uint64_t>(from - 1, log.size());
      auto n = max == 0 ? log.size() - first
                        : std::min<uint64_t>(max, log.size() - first);
      most = std::max<size_t>(most, n);
      return std::vector<event>(log.begin() + static_cast<long>(first),
                                log.begin() + static_cast<long>(first + n));
    };
    r.last_seq = [this](const std::string& name) -> expected<uint64_t> {
      return name == log.front().execution_id ? log.size() : 0;
    };
    return r;
  }
};

} // namespace

TEST(ReplaySupport, AnExportReadsTheLogAChunkAtATimeAndWritesEveryEvent) {
  counting_store store{big_map_log(5000)};
  const auto& log = store.log;
  std::ostringstream out;
  auto ok = runtime::write_bundle(store.reader(), "fan", out);
  ASSERT_TRUE(ok) << describe(ok.error());
  EXPECT_EQ(store.whole_reads, 0u);
  EXPECT_LE(store.most, 1024u);
  // Twice through the log: once for the logs it names, once to write it.
  EXPECT_LE(store.reads, 2 * (log.size() / 1024 + 1));
  // Each line is the event as {log, payload, seq, time_us, type}.
  std::istringstream lines{out.str()};
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(json::parse(line),
            (json{{"cadre", "export"}, {"format", 1}, {"execution", "fan"},
                  {"logs", json::array()}}));
  for (const auto& ev : log) {
    ASSERT_TRUE(std::getline(lines, line));
    EXPECT_EQ(line, dump_json(json{{"log", "fan"},
                                   {"seq", ev.seq},
                                   {"time_us", ev.time_us},
                                   {"type", ev.type},
                                   {"payload", ev.payload.get()}}));
  }
  EXPECT_FALSE(std::getline(lines, line));
  // Read back a line at a time, the same events.
  std::istringstream in{out.str()};
  runtime::bundle_reader r{in, "fan.ndjson"};
  ASSERT_TRUE(r.start());
  EXPECT_EQ(r.execution(), "fan");
  event ev;
  size_t n = 0;
  for (;;) {
    auto more = r.next(ev);
    ASSERT_TRUE(more) << describe(more.error());
    if (!*more)
      break;
    ASSERT_LT(n, log.size());
    EXPECT_EQ(ev.execution_id, "fan");
    EXPECT_EQ(ev.seq, log[n].seq);
    EXPECT_EQ(ev.type, log[n].type);
    EXPECT_EQ(ev.time_us, log[n].time_us);
    EXPECT_EQ(ev.payload.get(), log[n].payload.get());
    ++n;
  }
  EXPECT_EQ(n, log.size());
}

TEST(ReplaySupport, ACheckAgainstADefinitionReadsTheLogAChunkAtATime) {
  counting_store store{big_map_log(5000)};
  auto reader = store.reader();
  workflow::log_walk walk =
    [&reader](const std::function<expected<bool>(const event&)>& fn) {
      return reader.each("fan", 1, 0, fn);
    };
  auto r = workflow::check_against(walk);
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_TRUE(r->compatible());
  EXPECT_EQ(r->events, store.log.size());
  EXPECT_EQ(store.whole_reads, 0u);
  EXPECT_LE(store.most, 1024u);
  EXPECT_LE(store.reads, store.log.size() / 1024 + 1);
  // The same outcome as the log in memory, divergence included.
  auto doc = store.log.front().payload->at("definition");
  doc["tasks"][0]["input"] = "{{ index }}";
  store.reads = 0;
  auto walked = workflow::check_against(walk, &doc);
  auto whole = workflow::check_against(store.log, &doc);
  ASSERT_TRUE(walked && whole);
  ASSERT_FALSE(walked->compatible());
  EXPECT_EQ(workflow::to_json(*walked->first),
            workflow::to_json(*whole->first));
  EXPECT_EQ(walked->first->seq, 3u);
  EXPECT_EQ(walked->first->task, "map[0]");
  EXPECT_EQ(store.reads, 1u); // it stops at the divergence
}

TEST(ReplaySupport, ABundleReaderNamesTheLineAtFault) {
  std::istringstream in{
    "{\"cadre\": \"export\", \"format\": 1, \"execution\": \"x\"}\n"
    "{\"log\": \"x\", \"seq\": 1, \"type\": \"execution_submitted\"}\n"
    "{\"log\": \"x\", \"seq\": 3, \"type\": \"task_dispatched\"}\n"};
  size_t line = 0;
  auto b = runtime::read_bundle(in, "run.ndjson", &line);
  ASSERT_FALSE(b);
  EXPECT_EQ(code_of(b.error()), errc::invalid_input);
  EXPECT_EQ(message_of(b.error()),
            "run.ndjson:3: log 'x': expected seq 2, got 3");
  EXPECT_EQ(line, 3u);
}

TEST(ReplaySupport, ALineThatIsNotJsonIsNamedByLineAndColumn) {
  // Taken a line at a time (as an import over HTTP is) and read from a
  // stream (as a local import checks a file): the place and the parser's
  // reason, one check for both.
  const std::string header
    = "{\"cadre\": \"export\", \"format\": 1, \"execution\": \"x\"}";
  const std::vector<std::pair<std::string, std::string>> cases{
    {"{\"log\": \"x\", \"seq\": 1, oops}",
     "run.ndjson:2:24: not a JSON object: syntax error while parsing object "
     "key - invalid literal"},
    {"{\"log\": \"caf\xe9\"}", "run.ndjson:2:13: not a JSON object: not valid "
                               "UTF-8"},
    {"{\"log\": " + std::string(600, '['),
     "run.ndjson:2:520: not a JSON object: nested deeper than 512 levels"},
    {"[1, 2]", "run.ndjson:2: not a JSON object (a JSON array)"},
  };
  for (const auto& [line, expected] : cases) {
    runtime::bundle_reader taken{"run.ndjson"};
    event ev;
    ASSERT_TRUE(taken.take(header, ev));
    auto got = taken.take(line, ev);
    ASSERT_FALSE(got) << line;
    EXPECT_EQ(message_of(got.error()).substr(0, expected.size()), expected);
    EXPECT_EQ(taken.line(), 2u);
    std::istringstream in{header + "\n" + line + "\n"};
    runtime::bundle_reader read{in, "run.ndjson"};
    ASSERT_TRUE(read.start());
    auto next = read.next(ev);
    ASSERT_FALSE(next) << line;
    EXPECT_EQ(message_of(next.error()), message_of(got.error()));
    EXPECT_EQ(read.column(), taken.column());
  }
}
