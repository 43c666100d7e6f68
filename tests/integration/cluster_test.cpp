// The cluster with real `cadre serve` processes on loopback: joining and
// leaving, tools that live on other nodes, and a worker node lost mid-task
// to kill -9 and to SIGSTOP (docs/cluster.md).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cadre_server.hpp"
#include "free_port.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// A port free now (bound to 0 and released): the cluster listener needs a
// known port, since its address is what the others join.
struct cluster_node {
  std::string name;
  std::string address;
  std::unique_ptr<test::cadre_server> server;
};

// Starts node `name` with its store and config in `dir`, joining `seeds`.
cluster_node start_node(const test::temp_dir& dir, const std::string& name,
                        const std::string& seeds,
                        const std::string& config_yaml = "") {
  cluster_node n;
  n.name = name;
  n.address = "127.0.0.1:" + std::to_string(test::free_port());
  std::vector<std::string> global;
  // Quick failure detection keeps the tests short.
  std::string cfg = "cluster:\n  suspect_after: 1s\n  down_after: 3s\n"
                    "  heartbeat_interval: 250ms\n"
                    + config_yaml;
  auto cfg_file = dir / (name + ".yaml");
  std::ofstream{cfg_file} << cfg;
  global = {"--config", cfg_file, "--log-level", "info"};
  std::vector<std::string> serve{"--cluster-listen", n.address,
                                 "--node-name", name};
  if (!seeds.empty()) {
    serve.push_back("--join");
    serve.push_back(seeds);
  }
  n.server = std::make_unique<test::cadre_server>(dir / name, global,
                                                  std::vector<std::string>{},
                                                  serve);
  return n;
}

// The member list as `n` sees it, by name.
std::map<std::string, json> members(const cluster_node& n) {
  std::map<std::string, json> out;
  auto doc = test::get(*n.server, "/v1/nodes");
  if (doc.contains("nodes"))
    for (auto& m : doc["nodes"])
      out[m["name"].get<std::string>()] = m;
  return out;
}

std::string state_of(const cluster_node& observer, const std::string& name) {
  auto all = members(observer);
  auto i = all.find(name);
  return i == all.end() ? "absent" : i->second.value("state", "");
}

// Polls `ok` until it holds or 30 s pass.
bool eventually(const std::function<bool()>& ok) {
  auto until = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < until) {
    if (ok())
      return true;
    std::this_thread::sleep_for(100ms);
  }
  return ok();
}

// True once `a` and `b` see each other up and `b` knows `a`'s API URL
// (where it sends requests for what `a` owns).
bool up_with_url(const cluster_node& a, const cluster_node& b) {
  return state_of(a, "b") == "up" && state_of(b, "a") == "up"
         && !members(b)["a"].value("url", "").empty();
}

json sleep_workflow(int ms) {
  return json{{"name", "remote"},
              {"tasks",
               json::array({json{{"id", "hello"},
                                 {"tool", "echo"},
                                 {"input", {{"text", "hi"}}}},
                            json{{"id", "nap"},
                                 {"tool", "sleep"},
                                 {"input", {{"ms", ms}}},
                                 {"depends_on", json::array({"hello"})}}})}};
}

// Tools `echo` and `sleep` run only on the other nodes.
const char* without_tools = "tools:\n  echo: {enabled: false}\n"
                            "  sleep: {enabled: false}\n";

std::vector<json> events_of(const cluster_node& n, const std::string& id) {
  auto doc = test::get(*n.server, "/v1/executions/" + id + "/events");
  std::vector<json> out;
  if (doc.contains("events"))
    for (auto& e : doc["events"])
      out.push_back(e);
  return out;
}

size_t count_events(const std::vector<json>& evs, const std::string& type,
                    const std::string& task) {
  size_t n = 0;
  for (auto& e : evs)
    if (e.value("type", "") == type
        && e["payload"].value("task", "") == task)
      ++n;
  return n;
}

// The name of the node whose pools run a call now, as `observer` sees it.
std::string busy_node(const cluster_node& observer) {
  for (auto& [name, m] : members(observer))
    if (!m.value("self", false) && m.value("load", 0) > 0)
      return name;
  return "";
}

} // namespace

TEST(Cluster, ThreeNodesJoinIntoAFullMeshAndALeavingNodeIsLeft) {
  test::temp_dir dir;
  auto a = start_node(dir, "a", "");
  ASSERT_TRUE(a.server->ok());
  auto b = start_node(dir, "b", a.address);
  auto c = start_node(dir, "c", a.address);
  ASSERT_TRUE(b.server->ok() && c.server->ok());
  ASSERT_TRUE(eventually([&] {
    return state_of(a, "b") == "up" && state_of(a, "c") == "up";
  })) << json(members(a)).dump();
  // c joined a only, and learned of b from a's list.
  ASSERT_TRUE(eventually([&] {
    return state_of(c, "b") == "up" && state_of(b, "c") == "up";
  })) << json(members(c)).dump();
  auto seen = members(a);
  EXPECT_TRUE(seen["a"].value("self", false));
  EXPECT_EQ(seen["b"].value("address", ""), b.address);
  EXPECT_FALSE(seen["b"]["tools"].empty());
  EXPECT_GT(seen["b"].value("incarnation", uint64_t{0}), 0u);
  std::string scraped;
  EXPECT_TRUE(eventually([&] {
    auto r = a.server->client().Get("/metrics");
    scraped = r ? r->body : "";
    return scraped.find("cadre_cluster_members{state=\"up\"} 3")
           != std::string::npos;
  })) << scraped;
  EXPECT_NE(scraped.find("cadre_cluster_transitions_total{to=\"up\"}"),
            std::string::npos);
  // A graceful stop tells the others.
  c.server->proc().signal(SIGTERM);
  ASSERT_TRUE(c.server->proc().wait_until(std::chrono::steady_clock::now()
                                          + 30s));
  EXPECT_TRUE(eventually([&] {
    return state_of(a, "c") == "left" && state_of(b, "c") == "left";
  })) << json(members(a)).dump();
  EXPECT_NE(a.server->proc().stderr_text().find("cluster member left"),
            std::string::npos);
}

TEST(Cluster, AWorkflowWhoseToolsLiveOnOtherNodesCompletes) {
  test::temp_dir dir;
  auto a = start_node(dir, "a", "", without_tools);
  ASSERT_TRUE(a.server->ok());
  auto b = start_node(dir, "b", a.address);
  ASSERT_TRUE(b.server->ok());
  ASSERT_TRUE(eventually([&] { return state_of(a, "b") == "up"; }));
  int status = 0;
  auto done = test::post(*a.server, "/v1/executions?wait=60",
                         json{{"definition", sleep_workflow(10)}}, &status);
  ASSERT_EQ(status, 200) << done.dump();
  EXPECT_EQ(done["status"], "completed");
  EXPECT_EQ(done["output"]["hello"]["text"], "hi");
  EXPECT_EQ(done["output"]["nap"]["slept_ms"], 10);
  // The execution's log is on the node that accepted it.
  auto evs = events_of(a, done["id"].get<std::string>());
  EXPECT_EQ(count_events(evs, "task_completed", "hello"), 1u);
  EXPECT_EQ(count_events(evs, "task_completed", "nap"), 1u);
  // The execution's log is on a, so b sends the asker there.
  int elsewhere = 0;
  test::get(*b.server, "/v1/executions/" + done["id"].get<std::string>(),
            &elsewhere);
  EXPECT_EQ(elsewhere, 307);
  // A tool no node offers is refused when the workflow is submitted.
  auto bad = sleep_workflow(10);
  bad["tasks"][0]["tool"] = "no_such_tool";
  test::post(*a.server, "/v1/executions", json{{"definition", bad}}, &status);
  EXPECT_EQ(status, 422);
}

// Kills (SIGKILL) or freezes (SIGSTOP) the node running a task; the task
// completes elsewhere with exactly one completion event.
void lose_worker_mid_task(int sig) {
  test::temp_dir dir;
  auto a = start_node(dir, "a", "", without_tools);
  ASSERT_TRUE(a.server->ok());
  auto b = start_node(dir, "b", a.address);
  auto c = start_node(dir, "c", a.address);
  ASSERT_TRUE(b.server->ok() && c.server->ok());
  ASSERT_TRUE(eventually([&] {
    return state_of(a, "b") == "up" && state_of(a, "c") == "up";
  }));
  int status = 0;
  auto sub = test::post(*a.server, "/v1/executions",
                        json{{"definition", sleep_workflow(4000)}}, &status);
  ASSERT_EQ(status, 201) << sub.dump();
  auto id = sub["id"].get<std::string>();
  std::string victim;
  ASSERT_TRUE(eventually([&] { return !(victim = busy_node(a)).empty(); }));
  auto& lost = victim == "b" ? b : c;
  lost.server->proc().signal(sig);
  json info;
  ASSERT_TRUE(eventually([&] {
    info = test::get(*a.server, "/v1/executions/" + id);
    return info.value("status", "") == "completed";
  })) << info.dump();
  EXPECT_EQ(info["output"]["nap"]["slept_ms"], 4000);
  auto evs = events_of(a, id);
  ASSERT_EQ(count_events(evs, "task_redispatched", "nap"), 1u);
  for (auto& e : evs)
    if (e["type"] == "task_redispatched") {
      EXPECT_EQ(e["payload"]["cause"], "node_lost");
      EXPECT_EQ(e["payload"]["node"], victim);
      EXPECT_EQ(e["payload"]["attempt"], 1);
    }
  EXPECT_EQ(count_events(evs, "task_completed", "nap"), 1u);
  EXPECT_EQ(count_events(evs, "task_failed", "nap"), 0u);
  if (sig == SIGSTOP) {
    EXPECT_TRUE(eventually([&] {
      auto s = state_of(a, victim);
      return s == "suspect" || s == "down";
    }));
    // Thawed, it rejoins; its late answer is not a second completion.
    lost.server->proc().signal(SIGCONT);
    EXPECT_TRUE(eventually([&] { return state_of(a, victim) == "up"; }))
      << json(members(a)).dump();
    std::this_thread::sleep_for(1s);
    evs = events_of(a, id);
    EXPECT_EQ(count_events(evs, "task_completed", "nap"), 1u);
    EXPECT_EQ(evs.back()["type"], "execution_completed");
  } else {
    EXPECT_TRUE(eventually([&] { return state_of(a, victim) == "down"; }));
  }
}

TEST(Cluster, AWorkerNodeKilledMidTaskHasItsTaskFinishedElsewhere) {
  lose_worker_mid_task(SIGKILL);
}

TEST(Cluster, AFrozenWorkerNodeIsSuspectedItsTaskMovesAndItRejoins) {
  lose_worker_mid_task(SIGSTOP);
}

TEST(Cluster, ANodeOfAnotherClusterIsRefusedAtTheHandshake) {
  test::temp_dir dir;
  auto a = start_node(dir, "a", "");
  ASSERT_TRUE(a.server->ok());
  auto x = start_node(dir, "x", a.address, "  name: elsewhere\n");
  ASSERT_TRUE(x.server->ok());
  ASSERT_TRUE(eventually([&] {
    return x.server->proc().stderr_text().find("another cluster")
           != std::string::npos;
  })) << x.server->proc().stderr_text();
  EXPECT_EQ(state_of(a, "x"), "absent");
  EXPECT_EQ(state_of(x, "a"), "absent");
}

TEST(Cluster, BadClusterSettingsAreRefusedWithTheirKey) {
  test::temp_dir dir;
  auto cfg = dir / "bad.yaml";
  std::ofstream{cfg} << "cluster:\n  suspect_after: 5s\n  down_after: 2s\n";
  test::cadre_process p{{"--config", cfg, "--db", dir / "db", "serve",
                         "--cluster-listen", "127.0.0.1:1"},
                        dir / "bad.err"};
  auto rc = p.wait_until(std::chrono::steady_clock::now() + 30s);
  ASSERT_TRUE(rc);
  EXPECT_EQ(WEXITSTATUS(*rc), 2);
  EXPECT_NE(p.stderr_text().find("cluster.down_after"), std::string::npos)
    << p.stderr_text();
  // Joining needs a listener of one's own.
  test::cadre_process q{{"--db", dir / "db2", "serve", "--join",
                         "127.0.0.1:1"},
                        dir / "bad2.err"};
  rc = q.wait_until(std::chrono::steady_clock::now() + 30s);
  ASSERT_TRUE(rc);
  EXPECT_EQ(WEXITSTATUS(*rc), 2);
  EXPECT_NE(q.stderr_text().find("cluster.join"), std::string::npos)
    << q.stderr_text();
}

namespace {

// Makes a CA and a certificate + key of node `name` signed by it, in `dir`.
bool make_ca(const test::temp_dir& dir, const std::string& ca) {
  auto cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN="
             + ca + " -keyout " + (dir / (ca + ".key")) + " -out "
             + (dir / (ca + ".pem")) + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

bool make_cert(const test::temp_dir& dir, const std::string& ca,
               const std::string& name) {
  auto key = dir / (name + ".key");
  auto csr = dir / (name + ".csr");
  auto pem = dir / (name + ".pem");
  auto cmd = "openssl req -newkey rsa:2048 -nodes -subj /CN=" + name
             + " -keyout " + key + " -out " + csr + " >/dev/null 2>&1"
             + " && openssl x509 -req -days 2 -in " + csr + " -CA "
             + (dir / (ca + ".pem")) + " -CAkey " + (dir / (ca + ".key"))
             + " -CAcreateserial -out " + pem + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

std::string tls_config(const test::temp_dir& dir, const std::string& ca,
                       const std::string& name) {
  return "  tls:\n    ca: " + (dir / (ca + ".pem")) + "\n    cert: "
         + (dir / (name + ".pem")) + "\n    key: " + (dir / (name + ".key"))
         + "\n";
}

} // namespace

TEST(Cluster, MutualTlsJoinsNodesOfOneCaAndRefusesAnotherCaAndPlainNodes) {
  test::temp_dir dir;
  ASSERT_TRUE(make_ca(dir, "ca") && make_ca(dir, "rogue"));
  ASSERT_TRUE(make_cert(dir, "ca", "a") && make_cert(dir, "ca", "b")
              && make_cert(dir, "rogue", "m"));
  auto a = start_node(dir, "a", "",
                      tls_config(dir, "ca", "a") + without_tools);
  ASSERT_TRUE(a.server->ok()) << a.server->proc().stderr_text();
  auto b = start_node(dir, "b", a.address, tls_config(dir, "ca", "b"));
  ASSERT_TRUE(b.server->ok());
  ASSERT_TRUE(eventually([&] { return state_of(a, "b") == "up"; }))
    << b.server->proc().stderr_text();
  // Calls cross the TLS link.
  int status = 0;
  auto done = test::post(*a.server, "/v1/executions?wait=60",
                         json{{"definition", sleep_workflow(10)}}, &status);
  ASSERT_EQ(status, 200) << done.dump();
  EXPECT_EQ(done["output"]["nap"]["slept_ms"], 10);
  // A certificate of another CA, and a node without TLS, are refused.
  auto m = start_node(dir, "m", a.address, tls_config(dir, "rogue", "m"));
  auto p = start_node(dir, "p", a.address);
  ASSERT_TRUE(m.server->ok() && p.server->ok());
  ASSERT_TRUE(eventually([&] {
    auto text = [](const cluster_node& n) {
      return n.server->proc().stderr_text();
    };
    return text(m).find("cannot reach cluster member") != std::string::npos
           && text(p).find("cannot reach cluster member")
                != std::string::npos;
  }));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(state_of(a, "m"), "absent");
  EXPECT_EQ(state_of(a, "p"), "absent");
  EXPECT_EQ(state_of(m, "a"), "absent");
  EXPECT_EQ(state_of(p, "a"), "absent");
}

TEST(Cluster, TlsNeedsCaCertAndKeyTogether) {
  test::temp_dir dir;
  auto cfg = dir / "half.yaml";
  std::ofstream{cfg} << "cluster:\n  tls:\n    ca: " << (dir / "x.pem")
                     << "\n";
  test::cadre_process p{{"--config", cfg, "--db", dir / "db", "serve",
                         "--cluster-listen", "127.0.0.1:1"},
                        dir / "half.err"};
  auto rc = p.wait_until(std::chrono::steady_clock::now() + 30s);
  ASSERT_TRUE(rc);
  EXPECT_EQ(WEXITSTATUS(*rc), 2);
  EXPECT_NE(p.stderr_text().find("cluster.tls: set all of ca, cert and key"),
            std::string::npos)
    << p.stderr_text();
}

TEST(Cluster, RequestsForAnotherNodesExecutionGoToItsOwnerOrAreRefusedWhileItIsDown) {
  test::temp_dir dir;
  auto a = start_node(dir, "a", "");
  ASSERT_TRUE(a.server->ok());
  auto b = start_node(dir, "b", a.address);
  ASSERT_TRUE(b.server->ok());
  ASSERT_TRUE(eventually([&] { return up_with_url(a, b); }))
    << json(members(b)).dump();
  int status = 0;
  auto done = test::post(*a.server, "/v1/executions?wait=60",
                         json{{"definition", sleep_workflow(1)}}, &status);
  ASSERT_EQ(status, 200) << done.dump();
  auto id = done["id"].get<std::string>();
  // The id names its owner.
  ASSERT_GT(id.size(), 2u);
  EXPECT_EQ(id.substr(id.size() - 2), ".a");
  // Asked of b, the request is sent on to a, method and query kept.
  auto c = b.server->client();
  auto r = c.Get(("/v1/executions/" + id + "/events?after=1").c_str());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 307);
  EXPECT_EQ(r->get_header_value("Location"),
            a.server->url() + "/v1/executions/" + id + "/events?after=1");
  // Followed, it answers what a answers.
  c.set_follow_location(true);
  auto followed = c.Get(("/v1/executions/" + id).c_str());
  ASSERT_TRUE(followed);
  EXPECT_EQ(followed->status, 200);
  EXPECT_EQ(json::parse(followed->body)["status"], "completed");
  // With a gone, b refuses with owner_unavailable naming it.
  a.server->proc().signal(SIGKILL);
  json problem;
  ASSERT_TRUE(eventually([&] {
    problem = test::get(*b.server, "/v1/executions/" + id, &status);
    return status == 503;
  })) << problem.dump();
  EXPECT_EQ(problem["type"], "/problems/owner_unavailable");
  EXPECT_NE(problem["detail"].get<std::string>().find("node a"),
            std::string::npos)
    << problem.dump();
}

TEST(Cluster, AnAgentsToolCallLostWithItsNodeIsSentAgainElsewhere) {
  test::temp_dir dir;
  // Node a runs the agent (scripted model) but no `sleep` pool.
  std::string agent_cfg = std::string{without_tools}
                          + "agents:\n"
                            "  napper:\n"
                            "    tools: [sleep]\n"
                            "    script:\n"
                            "      - turn: 1\n"
                            "        reply:\n"
                            "          text: napping\n"
                            "          tool_calls:\n"
                            "            - {name: sleep, arguments: {ms: 4000}}\n"
                            "      - turn: 2\n"
                            "        reply: {text: 'slept {{ tool.sleep.slept_ms }}'}\n";
  auto a = start_node(dir, "a", "", agent_cfg);
  ASSERT_TRUE(a.server->ok()) << a.server->proc().stderr_text();
  auto b = start_node(dir, "b", a.address);
  auto c = start_node(dir, "c", a.address);
  ASSERT_TRUE(b.server->ok() && c.server->ok());
  ASSERT_TRUE(eventually([&] {
    return state_of(a, "b") == "up" && state_of(a, "c") == "up";
  }));
  json wf{{"name", "nap"},
          {"tasks", json::array({json{{"id", "t"},
                                      {"agent", "napper"},
                                      {"input", "take a nap"}}})}};
  int status = 0;
  auto sub = test::post(*a.server, "/v1/executions", json{{"definition", wf}},
                        &status);
  ASSERT_EQ(status, 201) << sub.dump();
  auto id = sub["id"].get<std::string>();
  std::string victim;
  ASSERT_TRUE(eventually([&] { return !(victim = busy_node(a)).empty(); }));
  (victim == "b" ? b : c).server->proc().signal(SIGKILL);
  json info;
  ASSERT_TRUE(eventually([&] {
    info = test::get(*a.server, "/v1/executions/" + id);
    auto s = info.value("status", "");
    return s == "completed" || s == "failed";
  })) << info.dump();
  EXPECT_EQ(info["status"], "completed") << info.dump();
  EXPECT_EQ(info["output"]["t"], "slept 4000") << info.dump();
  EXPECT_NE(a.server->proc().stderr_text().find(
              "agent tool call sent again: its node was lost"),
            std::string::npos);
}

TEST(Cluster, AnAgentOfAnExecutionIsShownByItsOwnerAskedOfAnyNode) {
  test::temp_dir dir;
  auto a = start_node(dir, "a", "");
  ASSERT_TRUE(a.server->ok());
  auto b = start_node(dir, "b", a.address);
  ASSERT_TRUE(b.server->ok());
  ASSERT_TRUE(eventually([&] { return up_with_url(a, b); }))
    << json(members(b)).dump();
  json wf{{"name", "ask"},
          {"agents",
           {{"helper", {{"script", json::array({json{
                                     {"reply", {{"text", "done"}}}}})}}}}},
          {"tasks", json::array({json{{"id", "t"},
                                      {"agent", "helper"},
                                      {"input", "help"}}})}};
  int status = 0;
  auto done = test::post(*a.server, "/v1/executions?wait=60",
                         json{{"definition", wf}}, &status);
  ASSERT_EQ(status, 200) << done.dump();
  auto agent_id = done["id"].get<std::string>() + "/helper";
  // The agent's log is on a's disk: b sends the question there.
  auto c = b.server->client();
  auto r = c.Get(("/v1/agents/" + agent_id).c_str());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 307);
  EXPECT_EQ(r->get_header_value("Location"),
            a.server->url() + "/v1/agents/" + agent_id);
  c.set_follow_location(true);
  auto followed = c.Get(("/v1/agents/" + agent_id).c_str());
  ASSERT_TRUE(followed);
  ASSERT_EQ(followed->status, 200) << followed->body;
  auto view = json::parse(followed->body);
  EXPECT_EQ(view["turns"], 1);
  EXPECT_EQ(view["messages"].size(), 2u) << view.dump();
  // The CLI, pointed at b, follows the redirect too.
  auto cli = test::run_to_end({"--server", b.server->url(), "agent", agent_id,
                               "--json"},
                              dir / "cli.err", 60s);
  ASSERT_TRUE(cli);
  EXPECT_EQ(cli->exit_code, 0) << cli->err;
  EXPECT_EQ(json::parse(cli->last_line(), nullptr, false), view);
  // An id of no execution (memory scope `agent`) is b's own: b has none.
  test::get(*b.server, "/v1/agents/helper", &status);
  EXPECT_EQ(status, 404);
  // With a gone, b refuses with owner_unavailable naming the agent and a.
  a.server->proc().signal(SIGKILL);
  json problem;
  ASSERT_TRUE(eventually([&] {
    problem = test::get(*b.server, "/v1/agents/" + agent_id, &status);
    return status == 503;
  })) << problem.dump();
  EXPECT_EQ(problem["type"], "/problems/owner_unavailable");
  auto detail = problem["detail"].get<std::string>();
  EXPECT_NE(detail.find("agent " + agent_id), std::string::npos) << detail;
  EXPECT_NE(detail.find("node a"), std::string::npos) << detail;
}
