// examples/embed against a real `cadre serve` with a cluster listener: run by
// embed_example_test.cmake (ctest -R EmbedExample) after it built the example
// against the installed package, with CADRE_EMBED_EXE naming the binary.
// Checks what the example printed for each part of docs/embedding.md
// "Connecting to a node" (part e with a second node of the cluster), and
// that the node lists it as left afterwards.

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "cadre_server.hpp"
#include "free_port.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using nlohmann::json;

namespace {

// Runs `command`, returning what it printed (stdout and stderr) and its exit
// status. The example bounds every request with a deadline; `timeout` is the
// guard against a hang all the same.
std::string run(const std::string& command, int& status) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe{
    ::popen(("timeout 600 " + command + " 2>&1").c_str(), "r"), ::pclose};
  if (!pipe) {
    status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe.get())) > 0)
    out.append(buf, n);
  status = ::pclose(pipe.release());
  return out;
}

// The rest of the line that starts with `prefix`, or "" when none does.
std::string line_after(const std::string& out, const std::string& prefix) {
  auto at = out.find("\n" + prefix);
  if (at == std::string::npos)
    return "";
  at += 1 + prefix.size();
  return out.substr(at, out.find('\n', at) - at);
}

} // namespace

TEST(EmbedExample, ConnectsToANodeAndOffersATool) {
  const char* exe = std::getenv("CADRE_EMBED_EXE");
  ASSERT_NE(exe, nullptr) << "CADRE_EMBED_EXE names the built example";
  test::temp_dir dir;
  auto address = "127.0.0.1:" + std::to_string(test::free_port());
  test::cadre_server node{dir / "node", {"--log-level", "info"}, {},
                          {"--cluster-listen", address, "--node-name", "hub"}};
  ASSERT_TRUE(node.ok());
  // A second node, which never connects to the example (it has no address):
  // it reaches the example's tool through hub (part e).
  auto spoke_address = "127.0.0.1:" + std::to_string(test::free_port());
  test::cadre_server spoke{dir / "spoke", {"--log-level", "info"}, {},
                           {"--cluster-listen", spoke_address, "--node-name",
                            "spoke", "--join", address}};
  ASSERT_TRUE(spoke.ok());
  bool spoke_up = false;
  for (int i = 0; i < 300 && !spoke_up; ++i) {
    for (auto& n : test::get(node, "/v1/nodes").value("nodes", json::array()))
      if (n.value("name", "") == "spoke" && n.value("state", "") == "up")
        spoke_up = true;
    if (!spoke_up)
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  ASSERT_TRUE(spoke_up) << test::get(node, "/v1/nodes").dump();
  int status = 0;
  auto port = address.substr(address.rfind(':') + 1);
  auto out = run(std::string{exe} + " 127.0.0.1 " + port, status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("connected to node hub"), std::string::npos) << out;

  // (a) A workflow's events, received by the example's own actor, in order
  // and ending with the completion; then its output.
  EXPECT_EQ(line_after(out, "(a) events: "),
            "execution_submitted task_dispatched task_completed "
            "execution_completed")
    << out;
  EXPECT_EQ(line_after(out, "(a) events in order: "), "yes") << out;
  EXPECT_EQ(line_after(out, "(a) output: "), "\"Hello, Ada!\"") << out;

  // (b) The echo pool called directly.
  EXPECT_EQ(line_after(out, "(b) echo answered: "),
            R"({"text":"straight to the pool"})")
    << out;

  // (c) The human task answered over the network.
  EXPECT_EQ(line_after(out, "(c) the node asks: "), "Ship it?") << out;
  EXPECT_EQ(line_after(out, "(c) events: "),
            "execution_submitted human_requested task_completed "
            "execution_completed")
    << out;
  EXPECT_EQ(line_after(out, "(c) events in order: "), "yes") << out;
  EXPECT_EQ(line_after(out, "(c) output: "), "\"shipped by embed\"") << out;

  // (d) The example's actor offered as a tool, called by a workflow on the
  // node; its answer carries the example's member name.
  auto joining = line_after(out, "(d) joining as ");
  auto member = joining.substr(0, joining.find(' '));
  ASSERT_EQ(member.rfind("embed-", 0), 0u) << out;
  EXPECT_EQ(line_after(out, "(d) the node lists " + member + " as "), "up")
    << out;
  EXPECT_EQ(line_after(out, "(d) status: "), "completed") << out;
  auto output = json::parse(line_after(out, "(d) output: "), nullptr, false);
  EXPECT_EQ(output.value("text", ""), "HELLO FROM THE NODE") << out;
  EXPECT_EQ(output.value("by", ""), member) << out;
  EXPECT_EQ(line_after(out, "(d) answered by this program: "), "yes") << out;

  // (e) spoke ran a workflow calling the tool, relayed by hub.
  auto relayed_line = "(e) node spoke offers " + joining.substr(joining.rfind(' ') + 1)
                      + " relayed by hub: ";
  EXPECT_EQ(line_after(out, relayed_line), "yes") << out;
  EXPECT_EQ(line_after(out, "(e) status on spoke: "), "completed") << out;
  EXPECT_EQ(line_after(out, "(e) answered by this program: "), "yes") << out;
  // Asked at the message level about hub's execution, spoke asks hub.
  EXPECT_EQ(line_after(out, "(e) spoke answers for hub's execution: "),
            "completed")
    << out;

  // It left on exit: the node lists it as left (or has forgotten it), and
  // no longer offers its tool.
  auto nodes = test::get(node, "/v1/nodes");
  std::string state = "absent";
  for (auto& n : nodes.value("nodes", json::array()))
    if (n.value("name", "") == member)
      state = n.value("state", "");
  EXPECT_TRUE(state == "left" || state == "absent") << nodes.dump();
  EXPECT_NE(node.proc().stderr_text().find("cluster member left"),
            std::string::npos);
}
