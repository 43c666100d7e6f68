// The LLM response cache's entries: found by a hash of the request, and a
// hit only when the stored request is the one asked, to the byte.

#include <gtest/gtest.h>

#include "llm_cache.hpp"

using namespace cadre;
using namespace cadre::actors;

namespace {

llm_request request_of(const std::string& text) {
  llm_request r;
  r.profile = "default";
  r.agent = "helper";
  llm_message m;
  m.role = "user";
  m.content = text;
  r.messages.push_back(m);
  return r;
}

llm_response reply_of(const std::string& text) {
  llm_response r;
  r.message.role = "assistant";
  r.message.content = text;
  return r;
}

} // namespace

TEST(LlmCache, AStoredReplyIsAHitForItsOwnRequestOnly) {
  auto key = llm_cache::key_of(request_of("hi"), nullptr);
  auto log = llm_cache::log_of(key);
  EXPECT_EQ(log.rfind("llmcache:", 0), 0u);
  auto stored = llm_cache::entry(log, key, reply_of("hello"), 5).events;
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].execution_id, log);
  EXPECT_EQ(stored[0].seq, 1u);
  auto hit = llm_cache::hit(stored, key);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->message.content, "hello");
  // Another request in the same log (as a hash collision would put it):
  // a miss, not the other request's reply.
  auto other = llm_cache::key_of(request_of("bye"), nullptr);
  EXPECT_FALSE(llm_cache::hit(stored, other));
  // No entry, or one without its request (written before they were
  // stored): a miss.
  EXPECT_FALSE(llm_cache::hit({}, key));
  auto old = stored;
  old[0].payload = json_value{json{{"response", json(reply_of("x"))}}};
  EXPECT_FALSE(llm_cache::hit(old, key));
}

TEST(LlmCache, TheKeyIgnoresStreamingButNotTheScript) {
  auto plain = request_of("hi");
  auto streamed = plain;
  streamed.stream = true;
  EXPECT_EQ(llm_cache::key_of(plain, nullptr),
            llm_cache::key_of(streamed, nullptr));
  EXPECT_NE(llm_cache::key_of(plain, "a.yaml"),
            llm_cache::key_of(plain, "b.yaml"));
  EXPECT_NE(llm_cache::log_of(llm_cache::key_of(plain, "a.yaml")),
            llm_cache::log_of(llm_cache::key_of(plain, "b.yaml")));
}
