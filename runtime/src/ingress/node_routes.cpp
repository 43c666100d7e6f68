// GET /v1/nodes: the cluster's members as this node sees them.

#include "ingress/server_impl.hpp"

namespace cadre::runtime {

void http_server::impl::nodes() {
  add("GET", "/v1/nodes", "/v1/nodes",
      [this](const httplib::Request&, httplib::Response& res) {
        auto list = n.nodes();
        if (!list.is_array()) {
          send_problem(res, make_problem(503, "unavailable",
                                         "the cluster member did not answer: "
                                           + list.value("error", std::string{})));
          return;
        }
        send_json(res, 200, json{{"nodes", std::move(list)}});
      });
}

} // namespace cadre::runtime
