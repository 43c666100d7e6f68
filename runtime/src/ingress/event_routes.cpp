// Events of executions: paged, and live as Server-Sent Events.

#include "ingress/server_impl.hpp"
#include "cadre/messages/json_text.hpp"

#include <algorithm>
#include <cstdlib>

namespace cadre::runtime {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::shared_ptr<stream_queue> http_server::impl::open_stream() {
  auto q = std::make_shared<stream_queue>(
    opts.sse_queue, [counter = metrics.cut_off_counter()] { ++*counter; });
  std::lock_guard<std::mutex> guard{streams_mtx};
  streams.insert(q);
  if (draining)
    q->close("shutdown");
  return q;
}

void http_server::impl::close_stream(const std::shared_ptr<stream_queue>& q) {
  std::lock_guard<std::mutex> guard{streams_mtx};
  streams.erase(q);
}

void http_server::impl::stream_execution(
  const std::string& id, uint64_t after, httplib::Response& res,
  std::optional<open_subscription> opened) {
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Accel-Buffering", "no");
  auto started = std::make_shared<bool>(false);
  res.set_chunked_content_provider(
    "text/event-stream",
    [this, id, after, opened, started](size_t, httplib::DataSink& sink) {
      *started = true;
      auto q = opened ? opened->q : open_stream();
      auto sinker = opened ? opened->sink : spawn_stream_sink(sys(), q);
      auto topic = opened ? opened->topic : id;
      auto bus = n.bus();
      // Subscribe before reading the store: whatever is appended after the
      // read arrives live, and live events the read already had are
      // skipped by their sequence number.
      if (!opened)
        caf::anon_send(bus, subscribe_atom_v, id, sinker);
      auto finish = [&] {
        caf::anon_send(bus, unsub_atom_v, topic, sinker);
        caf::anon_send_exit(sinker, caf::exit_reason::user_shutdown);
        close_stream(q);
        sink.done();
        return true;
      };
      uint64_t last = after;
      auto write = [&](const std::string& text) {
        return sink.write(text.data(), text.size());
      };
      // Reads and writes the stored events after `last`, in pages.
      // Returns false when the client is gone; sets `ended` on a
      // terminal event.
      bool ended = false;
      auto catch_up = [&]() -> bool {
        constexpr uint64_t page = 500;
        for (;;) {
          auto evs = ask<std::vector<event>>(n.store(), read_atom_v, id,
                                             last + 1, page);
          if (!evs)
            return write(sse_message("", "close",
                                     dump_json(json{{"reason", "unavailable"},
                                          {"last_event_id", last},
                                          {"detail", describe(evs.error())}})))
                   && false;
          for (auto& ev : *evs) {
            if (!write(sse_of(ev, false)))
              return false;
            last = ev.seq;
            if (terminal(ev))
              ended = true;
          }
          if (evs->size() < page)
            return true;
        }
      };
      auto end_message = [&] {
        auto info = ask<execution_info>(n.store(), get_atom_v, id);
        json data{{"status", info ? info->status : "unknown"},
                  {"last_seq", last}};
        return sse_message("", "end", dump_json(data));
      };
      // A stream opened before its execution was submitted takes every
      // event live: reading the store first would end it at an execution
      // that finished meanwhile, before the live-only tokens in `q`.
      bool live_from_start = opened && opened->from_start && after == 0;
      // Unknown executions are 404 before any byte would be better, but
      // the headers are out once the provider runs; an execution without
      // events gets a close event naming the problem instead.
      if (!live_from_start && !catch_up())
        return finish();
      if (!ended && !live_from_start) {
        auto info = ask<execution_info>(n.store(), get_atom_v, id);
        if (!info && last == 0) {
          write(sse_message("", "close",
                            dump_json(json{{"reason", "not_found"},
                                 {"detail", "execution " + id
                                              + " is not in the store"}})));
          return finish();
        }
        // A client that resumes after the last event of a finished
        // execution (its terminal event already seen) gets the end now.
        if (info && info->finished() && last >= info->last_seq)
          ended = true;
      }
      if (ended) {
        write(end_message());
        return finish();
      }
      std::vector<event> batch;
      for (;;) {
        batch.clear();
        auto woke = q->pop(batch, opts.sse_keepalive);
        if (woke == stream_queue::wake::overflowed) {
          write(sse_message("", "close",
                            dump_json(json{{"reason", "overloaded"},
                                 {"last_event_id", last},
                                 {"detail",
                                  "the client read too slowly: more than "
                                    + std::to_string(opts.sse_queue)
                                    + " events waited (server.sse.queue); "
                                      "reconnect with Last-Event-ID"}})));
          return finish();
        }
        if (woke == stream_queue::wake::closed) {
          write(sse_message("", "close",
                            dump_json(json{{"reason", q->close_reason()},
                                 {"last_event_id", last}})));
          return finish();
        }
        if (woke == stream_queue::wake::timeout) {
          if (!write(": keep-alive\n\n"))
            return finish();
          continue;
        }
        for (auto& ev : batch) {
          if (ev.seq == 0) {
            if (!write(sse_of(ev, false)))
              return finish();
            continue;
          }
          if (ev.seq <= last)
            continue;
          if (ev.seq > last + 1) {
            // A gap (events appended between the subscription and the
            // read): the store has them.
            if (!catch_up())
              return finish();
            if (ev.seq <= last)
              continue;
          }
          if (!write(sse_of(ev, false)))
            return finish();
          last = ev.seq;
          if (terminal(ev))
            ended = true;
        }
        if (ended) {
          write(end_message());
          return finish();
        }
      }
    },
    // A client gone before the stream began leaves no subscription behind.
    [this, opened, started](bool) {
      if (*started || !opened)
        return;
      caf::anon_send(n.bus(), unsub_atom_v, opened->topic, opened->sink);
      caf::anon_send_exit(opened->sink, caf::exit_reason::user_shutdown);
      close_stream(opened->q);
    });
}

void http_server::impl::stream_all(httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  res.set_chunked_content_provider(
    "text/event-stream", [this](size_t, httplib::DataSink& sink) {
      auto q = open_stream();
      auto sinker = spawn_stream_sink(sys(), q);
      auto bus = n.bus();
      caf::anon_send(bus, subscribe_atom_v, std::string{}, sinker);
      auto write = [&](const std::string& text) {
        return sink.write(text.data(), text.size());
      };
      std::vector<event> batch;
      for (;;) {
        batch.clear();
        auto woke = q->pop(batch, opts.sse_keepalive);
        bool ok = true;
        if (woke == stream_queue::wake::overflowed) {
          write(sse_message("", "close",
                            dump_json(json{{"reason", "overloaded"}})));
          ok = false;
        } else if (woke == stream_queue::wake::closed) {
          write(sse_message("", "close",
                            dump_json(json{{"reason", q->close_reason()}})));
          ok = false;
        } else if (woke == stream_queue::wake::timeout) {
          ok = write(": keep-alive\n\n");
        } else {
          for (auto& ev : batch)
            if (!(ok = write(sse_of(ev, true))))
              break;
        }
        if (!ok)
          break;
      }
      caf::anon_send(bus, unsub_atom_v, std::string{}, sinker);
      caf::anon_send_exit(sinker, caf::exit_reason::user_shutdown);
      close_stream(q);
      sink.done();
      return true;
    });
}

void http_server::impl::events() {
  const std::string id_re = "/v1/executions/([A-Za-z0-9._-]{1,128})/events";
  add("GET", id_re, "/v1/executions/{id}/events",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto id = req.matches[1].str();
        auto after = query_number(req, "after", 0, UINT64_MAX - 1);
        if (!after) {
          send_problem(res, make_problem(400, "bad_request",
                                         message_of(after.error())));
          return;
        }
        if (wants_stream(req)) {
          auto from = *after;
          auto last_id = req.get_header_value("Last-Event-ID");
          if (!last_id.empty()) {
            char* end = nullptr;
            auto x = std::strtoull(last_id.c_str(), &end, 10);
            if (*end != '\0') {
              send_problem(res, make_problem(400, "bad_request",
                                             "Last-Event-ID: expected an "
                                             "event sequence number, got '"
                                               + last_id.substr(0, 40) + "'"));
              return;
            }
            from = std::max(from, static_cast<uint64_t>(x));
          }
          auto info = ask<execution_info>(n.store(), get_atom_v, id);
          if (!info) {
            send_problem(res, problem_of(info.error()));
            return;
          }
          stream_execution(id, from, res);
          return;
        }
        auto limit = query_number(req, "limit", 100, 1000);
        if (!limit) {
          send_problem(res, make_problem(400, "bad_request",
                                         message_of(limit.error())));
          return;
        }
        auto evs = ask<std::vector<event>>(n.store(), read_atom_v, id,
                                           *after + 1, *limit);
        if (!evs) {
          send_problem(res, problem_of(evs.error()));
          return;
        }
        if (evs->empty() && *after == 0) {
          auto info = ask<execution_info>(n.store(), get_atom_v, id);
          if (!info) {
            send_problem(res, problem_of(info.error()));
            return;
          }
        }
        json out{{"events", *evs}};
        if (evs->size() == *limit && !evs->empty())
          out["next_after"] = evs->back().seq;
        send_json(res, 200, out);
      });
  add("GET", "/v1/events", "/v1/events",
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!wants_stream(req)) {
          send_problem(res, make_problem(406, "bad_request",
                                         "GET /v1/events is a stream; send "
                                         "Accept: text/event-stream"));
          return;
        }
        stream_all(res);
      });
}


} // namespace cadre::runtime
