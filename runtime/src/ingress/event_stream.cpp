#include "ingress/event_stream.hpp"

#include <algorithm>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace cadre::runtime {

void stream_queue::push(std::vector<event> evs) {
  bool overflowed_now = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (overflowed_ || !closed_.empty())
      return;
    // One batch from the bus is in memory already (payloads are shared);
    // the bound is on what piles up behind a client that does not read.
    if (!only_.empty())
      evs.erase(std::remove_if(evs.begin(), evs.end(),
                               [this](const event& ev) {
                                 return ev.execution_id != only_;
                               }),
                evs.end());
    if (evs.empty())
      return;
    if (!events_.empty() && events_.size() + evs.size() > bound_) {
      overflowed_ = true;
      overflowed_now = true;
      events_.clear();
    } else {
      for (auto& ev : evs)
        events_.push_back(std::move(ev));
    }
  }
  if (overflowed_now && on_overflow_)
    on_overflow_();
  cv_.notify_one();
}

void stream_queue::only(const std::string& id) {
  std::lock_guard<std::mutex> guard{mtx_};
  only_ = id;
  events_.erase(std::remove_if(events_.begin(), events_.end(),
                               [&id](const event& ev) {
                                 return ev.execution_id != id;
                               }),
                events_.end());
}

void stream_queue::close(std::string reason) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closed_.empty())
      closed_ = std::move(reason);
  }
  cv_.notify_one();
}

stream_queue::wake stream_queue::pop(std::vector<event>& out,
                                     std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> guard{mtx_};
  cv_.wait_for(guard, timeout, [this] {
    return !events_.empty() || overflowed_ || !closed_.empty();
  });
  if (overflowed_)
    return wake::overflowed;
  if (!events_.empty()) {
    out.insert(out.end(), std::make_move_iterator(events_.begin()),
               std::make_move_iterator(events_.end()));
    events_.clear();
    return wake::events;
  }
  if (!closed_.empty())
    return wake::closed;
  return wake::timeout;
}

std::string stream_queue::close_reason() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return closed_;
}

event_sink_actor spawn_stream_sink(caf::actor_system& sys,
                                   std::weak_ptr<stream_queue> q) {
  return sys.spawn([q](event_sink_actor::pointer) -> event_sink_actor::behavior_type {
    return {
      [q](event_atom, std::vector<event>& evs) {
        if (auto queue = q.lock())
          queue->push(std::move(evs));
      },
    };
  });
}

std::string sse_message(const std::string& id, const std::string& type,
                        const std::string& data) {
  std::string out;
  out.reserve(data.size() + type.size() + id.size() + 24);
  if (!id.empty())
    out += "id: " + id + "\n";
  if (!type.empty())
    out += "event: " + type + "\n";
  size_t start = 0;
  for (;;) {
    auto nl = data.find('\n', start);
    out += "data: ";
    out.append(data, start, nl == std::string::npos ? std::string::npos
                                                     : nl - start);
    out += '\n';
    if (nl == std::string::npos)
      break;
    start = nl + 1;
  }
  out += '\n';
  return out;
}

bool terminal(const event& ev) {
  return ev.type == "execution_completed" || ev.type == "execution_failed"
         || ev.type == "execution_cancelled";
}

std::string sse_of(const event& ev, bool qualified_ids) {
  if (ev.type == "agent_token") {
    json p = ev.payload.get();
    p["execution_id"] = ev.execution_id;
    return sse_message("", "token", p.dump(-1, ' ', false,
                                            json::error_handler_t::replace));
  }
  json j = ev;
  auto data = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (ev.seq == 0)
    return sse_message("", ev.type, data);
  auto id = std::to_string(ev.seq);
  if (qualified_ids)
    id = ev.execution_id + ":" + id;
  return sse_message(id, ev.type, data);
}

} // namespace cadre::runtime
