#include "serve.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "cadre/log/log.hpp"
#include "cadre/runtime/auth.hpp"
#include "cadre/runtime/node.hpp"
#include "ingress/http_server.hpp"
#include "ingress/server_options.hpp"
#include "store_holder.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::runtime {

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

void print_error(const std::string& msg) {
  std::fprintf(stderr, "cadre serve: %s\n", msg.c_str());
}


} // namespace

int serve(const config::node_config& cfg, const serve_flags& flags) {
  auto opts = parse_server_options(cfg.server);
  if (!opts) {
    print_error(message_of(opts.error()));
    return exit_usage;
  }
  if (!flags.listen.empty())
    if (auto problem = parse_listen(flags.listen, *opts); !problem.empty()) {
      print_error("--listen: " + problem);
      return exit_usage;
    }
  if (flags.insecure)
    opts->insecure = true;
  // Checked before the node starts, so bad tokens never resume anything.
  auto auth = parse_auth_options(cfg.server, std::getenv("CADRE_API_TOKENS"));
  if (!auth) {
    print_error(message_of(auth.error()));
    return exit_usage;
  }
  bool tokens = authenticator{std::move(*auth)}.enabled();
  if (!opts->loopback() && !opts->insecure && !tokens) {
    print_error("refusing to serve " + opts->host
                + " without tokens: anyone who reaches it could run tools. "
                  "Configure server.tokens (or CADRE_API_TOKENS), or pass "
                  "--insecure");
    return exit_usage;
  }
  auto cluster = parse_cluster_options(cfg.cluster);
  if (!cluster) {
    print_error(message_of(cluster.error()));
    return exit_usage;
  }
  if (auto err = apply_cluster_flags(*cluster, flags.cluster_listen,
                                     flags.join, flags.node_name)) {
    print_error(message_of(err));
    return exit_usage;
  }
  if (flags.insecure_cluster)
    cluster->insecure = true;
  if (cluster->enabled && !cluster->loopback() && !cluster->insecure
      && !cluster->tls()) {
    print_error("refusing to accept cluster members on "
                + cluster->listen_host
                + " without TLS: anyone who reaches it could run tools and "
                  "read executions. Configure cluster.tls (ca, cert, key), "
                  "listen on loopback, or pass --insecure-cluster "
                  "(cluster.insecure)");
    return exit_usage;
  }
  // A client that hangs up is a failed write, not the end of the server.
  ::signal(SIGPIPE, SIG_IGN);
  // Every thread started from here on (CAF's, the server's) inherits the
  // mask, so SIGTERM and SIGINT reach only the sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  start_options start;
  start.resume_all = true;
  start.holder = "cadre serve";
  start.url = opts->url();
  start.schedules = true;
  start.cluster = *cluster;
  auto n = node::start(cfg, start);
  if (!n) {
    print_error(message_of(n.error()).empty() ? describe(n.error())
                                              : message_of(n.error()));
    return exit_failed;
  }
  auto srv = std::make_unique<http_server>(**n, *opts);
  auto port = srv->bind();
  if (!port) {
    print_error(message_of(port.error()));
    return code_of(port.error()) == errc::invalid_config ? exit_usage
                                                         : exit_failed;
  }
  opts->port = *port;
  auto url = opts->url();
  (*n)->advertise_url(url);
  write_holder(cfg.store_dir,
               store_holder{static_cast<long>(::getpid()), "cadre serve", url});
  // Requests still in hand when the drain timeout passes are left as a
  // kill would leave them (the node resumes their work at its next start):
  // the process ends here, before the parts they use are destroyed.
  srv->on_drain_timeout([](size_t left) {
    log::warn("drain timeout passed; exiting with requests in hand",
              {{"actor", "serve"}, {"requests", left}});
    std::fflush(nullptr);
    std::_Exit(exit_ok);
  });
  std::thread runner{[&srv] { srv->run(); }};
  // Programs read the first line of stdout; people read stderr.
  auto listening = json{{"type", "listening"},
                        {"url", url},
                        {"pid", static_cast<long>(::getpid())},
                        {"store", cfg.store_dir},
                        {"resumed", (*n)->resumed().size()}};
  if (cluster->enabled) {
    listening["node"] = cluster->node_name;
    listening["cluster"] = cluster->address();
  }
  std::printf("%s\n", dump_json(listening).c_str());
  std::fflush(stdout);
  log::info("listening", {{"actor", "serve"},
                          {"url", url},
                          {"store", cfg.store_dir},
                          {"executions_resumed", (*n)->resumed().size()}});
  int sig = 0;
  sigwait(&stop_signals, &sig);
  log::info("draining", {{"actor", "serve"},
                         {"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"},
                         {"drain_timeout_ms", opts->drain_timeout.count()}});
  // The others stop placing work here before the drain starts.
  (*n)->leave_cluster();
  srv->shutdown();
  runner.join();
  srv.reset();
  // The node stops its tree in reverse start order (executions first, the
  // store's pending group commits last).
  n->reset();
  log::info("stopped", {{"actor", "serve"}});
  return exit_ok;
}

} // namespace cadre::runtime
