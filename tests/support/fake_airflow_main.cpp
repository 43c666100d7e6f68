// cadre_fake_airflow: the test Airflow server (fake_airflow_server.hpp) as
// a process, serving the airflow-monitor example's fixture
// (airflow_monitor_fixture.hpp) on a free loopback port, for
// examples/airflow-monitor/run.sh. It prints one JSON line with its base
// URL and credentials, serves until SIGINT or SIGTERM, then prints every
// clearTaskInstances call it received, one JSON line each.
//   cadre_fake_airflow [SPEC_DIR]
// SPEC_DIR holds airflow-3.2.1-v2-rest-api.yaml (default: the one beside
// the source tree, ../shared/specs/airflow).

#include <signal.h>

#include <cstdio>
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

#include "airflow_monitor_fixture.hpp"
#include "fake_airflow_server.hpp"

int main(int argc, char** argv) {
  std::string spec_dir = argc > 1 ? argv[1]
                                  : std::string{CADRE_SOURCE_DIR}
                                      + "/../shared/specs/airflow";
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  // Blocked before the server's threads start, so they inherit the mask
  // and only sigwait below takes the signal.
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  try {
    cadre::test::fake_airflow_server srv{spec_dir};
    cadre::test::airflow_monitor::add_fixture(srv);
    nlohmann::json ready{{"url", srv.base_url()},
                         {"username", srv.opts().username},
                         {"password", srv.opts().password}};
    std::printf("%s\n", ready.dump().c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    for (const auto& c : srv.clears()) {
      nlohmann::json line{{"clear", c.dag_id},
                          {"dry_run", c.dry_run},
                          {"body", c.body}};
      std::printf("%s\n", line.dump().c_str());
    }
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cadre_fake_airflow: %s\n", e.what());
    return 1;
  }
  return 0;
}
