// The baseline of bench/http_bench.sh: a bare cpp-httplib server answering
// GET /healthz with {"status":"ok"} as `cadre serve` does, but without
// cadre's middleware (request id, CORS, auth, rate limit, metrics, request
// log), and POST /v1/executions with a fixed 201 of the same shape as
// cadre's (the HTTP part of a submission: the body is read, nothing runs).
//
//   httplib_hello [--listen HOST:PORT] [--threads N] [--backlog N]
//                 [--keep-alive-max N] [--nagle]
//
// Prints {"type":"listening","url":...} on stdout once bound, like
// `cadre serve`, and serves until SIGTERM or SIGINT.
//
// Its defaults are the connection settings of `cadre serve`, so the two
// differ only in what runs per request:
// - the same Debian cpp-httplib (0.11, a shared library);
// - 64 connection threads, as `server.threads` (httplib's own pool has
//   max(8, cores - 1) = 8 here; `new_task_queue` gives it --threads; cadre's
//   bounded pool has one more thread, for 503 answers, idle in a benchmark);
// - keep-alive 5 s and at most 5 requests a connection (httplib's defaults,
//   which cadre keeps);
// - TCP_NODELAY on, as cadre sets it (httplib's default has Nagle's
//   algorithm on: --nagle);
// - a listen backlog of SOMAXCONN, as cadre sets it (Debian's build has 5
//   compiled in: --backlog 0 keeps it).

#include <httplib.h>

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8701;
  size_t threads = 64;
  int backlog = SOMAXCONN;
  size_t keep_alive_max = 5;
  bool nodelay = true;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--listen" && i + 1 < argc) {
      std::string listen = argv[++i];
      auto colon = listen.rfind(':');
      if (colon == std::string::npos) {
        std::fprintf(stderr, "httplib_hello: --listen HOST:PORT\n");
        return 2;
      }
      host = listen.substr(0, colon);
      port = std::atoi(listen.c_str() + colon + 1);
    } else if (arg == "--threads" && i + 1 < argc) {
      threads = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--backlog" && i + 1 < argc) {
      backlog = std::atoi(argv[++i]);
    } else if (arg == "--keep-alive-max" && i + 1 < argc) {
      keep_alive_max = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--nagle") {
      nodelay = false;
    } else {
      std::fprintf(stderr, "usage: httplib_hello [--listen HOST:PORT] "
                           "[--threads N] [--backlog N] "
                           "[--keep-alive-max N] [--nagle]\n");
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  httplib::Server srv;
  srv.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  srv.set_keep_alive_timeout(5);
  srv.set_keep_alive_max_count(keep_alive_max);
  srv.set_tcp_nodelay(nodelay);
  int listen_fd = -1;
  srv.set_socket_options([&listen_fd](int sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  srv.Post("/v1/executions",
           [](const httplib::Request& req, httplib::Response& res) {
             res.status = req.body.empty() ? 400 : 201;
             res.set_content(
               R"({"id":"e0000000000000000000","status":"running"})",
               "application/json");
           });
  if (port == 0)
    port = srv.bind_to_any_port(host);
  else if (!srv.bind_to_port(host, port))
    port = -1;
  if (port < 0) {
    std::fprintf(stderr, "httplib_hello: cannot listen on %s\n", host.c_str());
    return 1;
  }
  if (backlog > 0 && listen_fd >= 0)
    ::listen(listen_fd, backlog);
  std::thread runner{[&srv] { srv.listen_after_bind(); }};
  std::printf("{\"type\":\"listening\",\"url\":\"http://%s:%d\",\"pid\":%ld}\n",
              host.c_str(), port, static_cast<long>(::getpid()));
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  srv.stop();
  runner.join();
  return 0;
}
