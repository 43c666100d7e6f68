// Named secrets end to end (issue 12): a workflow's http task sends a
// secret from the node config to a real loopback server, while the store,
// `cadre run` and `cadre events` never show its value, a reference that
// arrives as data is not resolved, and an error that echoes the secret past
// the cut of the body excerpt leaves none of it.

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/messages/json_value.hpp"
#include "cadre_process.hpp"
#include "loopback_server.hpp"
#include "temp_dir.hpp"

using namespace cadre;

namespace {

constexpr std::chrono::seconds command_limit{60};

// 49 characters, as an OpenAI key.
const std::string secret_value
  = "sk-proj-Zq8vR3nT6yB1wK4mH7cJ0xL5pD2gF9sA1eU3iO6a";
const std::string secret_start = secret_value.substr(0, 12);

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines)
    out += line + "\n";
  return out;
}

/// Every file under `dir`, concatenated (the store: WAL, tables, logs).
std::string bytes_under(const std::string& dir) {
  std::string out;
  for (const auto& e : std::filesystem::recursive_directory_iterator{dir})
    if (e.is_regular_file()) {
      std::ifstream in{e.path(), std::ios::binary};
      std::stringstream ss;
      ss << in.rdbuf();
      out += ss.str();
    }
  return out;
}

struct seen_request {
  std::string path;
  std::string authorization;
  std::string api_key;
  std::string body;
};

} // namespace

TEST(Secrets, HttpToolSendsTheSecretThatNoRecordOrOutputShows) {
  test::temp_dir tmp;
  std::mutex mtx;
  std::vector<seen_request> seen;
  test::loopback_server srv;
  auto record = [&](const httplib::Request& req) {
    std::lock_guard<std::mutex> guard{mtx};
    seen.push_back({req.path, req.get_header_value("Authorization"),
                    req.get_header_value("X-Api-Key"), req.body});
  };
  srv.server().Post("/ok", [&](const httplib::Request& req,
                               httplib::Response& res) {
    record(req);
    res.set_content("{\"ok\": true}", "application/json");
  });
  // A failing upstream that echoes the credential it got, placed across
  // the 300-character cut of the error's body excerpt.
  srv.server().Get("/fail", [&](const httplib::Request& req,
                                httplib::Response& res) {
    record(req);
    res.status = 500;
    res.set_content(std::string(280, 'x') + req.get_header_value("X-Api-Key")
                      + std::string(50, 'y'),
                    "text/plain");
  });
  srv.start();
  auto config = tmp / "cadre.yaml";
  std::ofstream{config} << "tools:\n"
                           "  http:\n"
                           "    allow_private: true\n"
                           "secrets:\n"
                           "  api_token: {env: CADRE_TEST_API_TOKEN}\n";
  auto wf = tmp / "call.yaml";
  std::ofstream{wf}
    << "name: call\n"
       "tasks:\n"
       "  - id: post\n"
       "    tool: http\n"
       "    input:\n"
       "      url: \"{{ input.base }}/ok\"\n"
       "      method: POST\n"
       "      auth: {type: bearer, token: \"{{ secrets.api_token }}\"}\n"
       "      json: {note: \"{{ input.note }}\"}\n"
       "  - id: fail\n"
       "    depends_on: post\n"
       "    tool: http\n"
       "    input:\n"
       "      url: \"{{ input.base }}/fail\"\n"
       "      headers: {X-Api-Key: \"{{ secrets.api_token }}\"}\n"
       "      max_attempts: 1\n";
  auto db = tmp / "db";
  // The note is data that looks like a reference: it must stay text.
  json input{{"base", srv.url("")},
             {"note", "{{ secrets.api_token }}"}};
  std::vector<std::string> env{"CADRE_TEST_API_TOKEN=" + secret_value};
  auto res = test::run_to_end({"--db", db, "--config", config, "--json",
                               "run", wf, "--input", input.dump()},
                              tmp / "err", command_limit, env);
  ASSERT_TRUE(res);
  EXPECT_NE(res->exit_code, 0) << "the fail task fails the execution";
  {
    std::lock_guard<std::mutex> guard{mtx};
    ASSERT_EQ(seen.size(), 2u) << res->err << joined(res->out);
    EXPECT_EQ(seen[0].path, "/ok");
    EXPECT_EQ(seen[0].authorization, "Bearer " + secret_value);
    EXPECT_EQ(json::parse(seen[0].body, nullptr, false),
              (json{{"note", "{{ secrets.api_token }}"}}));
    EXPECT_EQ(seen[1].path, "/fail");
    EXPECT_EQ(seen[1].api_key, secret_value);
  }
  std::string id;
  for (const auto& line : res->out) {
    auto doc = json::parse(line, nullptr, false);
    if (!doc.is_discarded() && doc.is_object() && id.empty())
      id = doc.value("execution_id", "");
  }
  ASSERT_FALSE(id.empty()) << joined(res->out);
  auto run_text = joined(res->out) + res->err;
  EXPECT_EQ(run_text.find(secret_start), std::string::npos) << run_text;
  EXPECT_NE(run_text.find("[redacted]"), std::string::npos) << run_text;
  for (bool as_json : {false, true}) {
    std::vector<std::string> args{"--db", db};
    if (as_json)
      args.push_back("--json");
    args.insert(args.end(), {"events", id});
    auto events = test::run_to_end(args, tmp / "err2", command_limit);
    ASSERT_TRUE(events);
    ASSERT_EQ(events->exit_code, 0) << events->err;
    auto text = joined(events->out) + events->err;
    EXPECT_EQ(text.find(secret_start), std::string::npos) << text;
    if (as_json) {
      EXPECT_NE(text.find("{{ secrets.api_token }}"), std::string::npos)
        << text;
    }
  }
  auto stored = bytes_under(db);
  EXPECT_EQ(stored.find(secret_start), std::string::npos)
    << "the store holds the secret";
}

TEST(Secrets, UnknownSecretIsAValidationErrorNamingIt) {
  test::temp_dir tmp;
  auto config = tmp / "cadre.yaml";
  std::ofstream{config} << "secrets:\n"
                           "  api_token: {env: CADRE_TEST_API_TOKEN}\n";
  auto wf = tmp / "bad.yaml";
  std::ofstream{wf} << "name: bad\n"
                       "tasks:\n"
                       "  - id: post\n"
                       "    tool: http\n"
                       "    input: {url: \"{{ secrets.api_tokn }}\"}\n";
  auto res = test::run_to_end({"--config", config, "validate", wf},
                              tmp / "err", command_limit);
  ASSERT_TRUE(res);
  EXPECT_NE(res->exit_code, 0);
  auto text = joined(res->out) + res->err;
  EXPECT_NE(text.find("unknown secret 'api_tokn'"), std::string::npos)
    << text;
}
