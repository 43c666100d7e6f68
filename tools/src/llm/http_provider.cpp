#include "llm/http_provider.hpp"

namespace cadre::tools::llm::detail {

std::string string_or_empty(const json& j, const char* key) {
  auto i = j.find(key);
  if (i != j.end() && i->is_string())
    return i->get<std::string>();
  return {};
}

expected<llm_response> http_provider::complete(const llm_request& request,
                                               const call_context& ctx) {
  auto start = wall_now_us();
  if (auto ok = check_request(profile_, request); !ok)
    return ok.error();
  auto model = model_of(profile_, request);
  if (!model)
    return model.error();
  auto key = api_key(profile_, key_required());
  if (!key)
    return key.error();
  auto req = make_post(profile_, ctx, join_url(profile_.base_url, path()),
                       request_body(request, *model));
  add_headers(req.headers, *key);
  auto rd = reader(call{request, *model, *key, ctx});
  if (request.stream)
    req.on_body = [&](std::string_view piece) { return rd->feed(piece); };
  auto resp = send(client_, profile_, req, *model, *key, rd->failure);
  if (!resp)
    return resp.error();
  auto out = rd->finish(request.stream, resp->body);
  if (!out)
    return out.error();
  if (out->model.empty())
    out->model = *model;
  out->duration_us = wall_now_us() - start;
  return out;
}

} // namespace cadre::tools::llm::detail
