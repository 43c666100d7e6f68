// The raw CAF peer of `cadre_bench --benchmarks=cluster_roundtrip`: an echo
// actor (bench/raw_caf.hpp) published on loopback with a cadre node's
// middleman and scheduler settings (--caf-scheduler: CAF's default
// scheduler instead). Prints {"type":"listening","port":N} and serves until
// SIGTERM or SIGINT.
//
//   caf_echo [HOST:PORT] [--caf-scheduler]   (default 127.0.0.1:0, a free port)

#include <csignal>
#include <cstdio>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>

#include "cadre/messages/register_types.hpp"
#include "raw_caf.hpp"

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  bool node_scheduler = true;
  if (argc > 2 && std::string{argv[2]} == "--caf-scheduler") {
    node_scheduler = false;
  } else if (argc > 2) {
    std::fprintf(stderr, "caf_echo: unknown argument '%s'\n", argv[2]);
    return 2;
  }
  if (argc > 1) {
    std::string addr = argv[1];
    auto colon = addr.rfind(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "caf_echo: expected HOST:PORT, got '%s'\n",
                   addr.c_str());
      return 2;
    }
    host = addr.substr(0, colon);
    port = static_cast<uint16_t>(std::stoul(addr.substr(colon + 1)));
  }
  // Blocked before CAF starts its threads, so only sigwait below sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  caf::actor_system_config cfg;
  cadre::register_types(cfg);
  cfg.load<caf::io::middleman>();
  cadre::bench::configure_like_a_node(cfg, node_scheduler);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto echo = sys.spawn(cadre::bench::raw_echo_impl);
  auto bound = sys.middleman().publish(echo, port, host.c_str(), true);
  if (!bound) {
    std::fprintf(stderr, "caf_echo: cannot listen on %s:%u: %s\n",
                 host.c_str(), port, to_string(bound.error()).c_str());
    return 1;
  }
  std::printf("{\"type\":\"listening\",\"port\":%u}\n", *bound);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  return 0;
}
