#include "cli/output.hpp"

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "cadre/messages/json_text.hpp"
#include "cadre/messages/utf8.hpp"
#include "cadre/runtime/progress.hpp"

namespace cadre::runtime::cli {

// Text from a model for one terminal line: no control characters (a model
// must not move the cursor or change colours), runs of space as one.
void append_visible(std::string& out, std::string_view piece) {
  for (char c : piece) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      if (!out.empty() && out.back() != ' ')
        out += ' ';
      continue;
    }
    if (c == ' ' && !out.empty() && out.back() == ' ')
      continue;
    out += c;
  }
}

void print_error(std::string_view msg) {
  constexpr std::string_view own = "cadre: ";
  if (msg.substr(0, own.size()) == own)
    msg.remove_prefix(own.size());
  std::fprintf(stderr, "cadre: %.*s\n", static_cast<int>(msg.size()),
               msg.data());
}

expected<json> parse_input(const std::string& arg, const std::string& what) {
  std::string text = arg;
  std::string source = what;
  if (!arg.empty() && arg[0] == '@') {
    std::ifstream in{arg.substr(1)};
    if (!in)
      return make_error(errc::invalid_input,
                        what + ": cannot read " + arg.substr(1));
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    source = arg.substr(1);
  }
  json_text_error where;
  auto doc = parse_json(text, &where);
  if (!doc) {
    bool syntax = where.reason != "not valid UTF-8"
                  && where.reason.rfind("nested deeper", 0) != 0;
    return make_error(errc::invalid_input,
                      source + (syntax ? ": not valid JSON: " : ": ")
                        + where.to_string());
  }
  return doc;
}

expected<json> parse_answer(const std::string& arg) {
  json_text_error where;
  auto doc = parse_json(arg, &where);
  if (doc)
    return doc;
  if (auto at = invalid_utf8_at(arg); at != std::string::npos)
    return make_error(errc::invalid_input,
                      "VALUE: not valid UTF-8 at byte " + std::to_string(at));
  if (where.reason.rfind("nested deeper", 0) == 0)
    return make_error(errc::invalid_input, "VALUE: " + where.to_string());
  return json(arg); // a bare word is a string answer
}

int exit_code_of(const execution_info& info) {
  if (info.status == "completed")
    return exit_ok;
  if (info.status == "waiting")
    return exit_waiting;
  return exit_failed;
}

int report(const execution_info& info, bool json_out) {
  if (json_out) {
    json j = info;
    j["type"] = "result";
    std::printf("%s\n", dump_json(j).c_str());
  } else if (info.status == "completed") {
    std::printf("%s\n", dump_json(*info.output, 2).c_str());
  }
  std::fflush(stdout);
  if (!json_out) {
    if (info.status == "failed" || info.status == "cancelled")
      print_error("execution " + info.id + " " + info.status + ": "
                  + info.error);
    else if (info.status == "waiting")
      std::fprintf(stderr,
                   "execution %s waits for input; it resumes with "
                   "`cadre input %s TASK VALUE`\n",
                   info.id.c_str(), info.id.c_str());
  }
  return exit_code_of(info);
}

std::string time_text(int64_t us) {
  auto secs = static_cast<time_t>(us / 1'000'000);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", std::localtime(&secs));
  return buf;
}

void print_executions(const std::vector<execution_info>& list,
                      bool json_out) {
  if (json_out) {
    json j = list;
    std::printf("%s\n", dump_json(j).c_str());
    return;
  }
  std::printf("%-20s %-10s %-24s %s\n", "ID", "STATUS", "WORKFLOW",
              "UPDATED");
  for (auto& x : list)
    std::printf("%-20s %-10s %-24s %s\n", x.id.c_str(), x.status.c_str(),
                (x.workflow + "@" + x.version).c_str(),
                time_text(x.updated_us).c_str());
}

void print_event_row(const event& ev, bool json_out) {
  if (json_out) {
    json j = ev;
    std::printf("%s\n", dump_json(j).c_str());
    return;
  }
  auto line = describe_event(ev);
  std::printf("%6llu  %s  %-20s %s\n",
              static_cast<unsigned long long>(ev.seq),
              time_text(ev.time_us).c_str(), ev.type.c_str(),
              line.empty() ? dump_json(ev.payload).substr(0, 80).c_str()
                           : line.c_str());
}

bool ends_execution(std::string_view type) {
  return type == "execution_completed" || type == "execution_failed"
         || type == "execution_cancelled";
}

} // namespace cadre::runtime::cli
