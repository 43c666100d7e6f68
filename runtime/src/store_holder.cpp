#include "store_holder.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cadre/messages/json_value.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::runtime {

namespace {

std::string path_of(const std::string& dir) {
  return dir + "/cadre.holder";
}

bool alive(long pid) {
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

} // namespace

void write_holder(const std::string& dir, const store_holder& who) {
  auto path = path_of(dir);
  auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp, std::ios::trunc};
    out << dump_json(json{{"pid", who.pid},
                          {"command", who.command},
                          {"url", who.url}})
        << '\n';
    if (!out)
      return;
  }
  std::rename(tmp.c_str(), path.c_str());
}

void clear_holder(const std::string& dir) {
  auto who = read_holder(dir);
  if (who && who->pid == static_cast<long>(::getpid()))
    std::remove(path_of(dir).c_str());
}

std::optional<store_holder> read_holder(const std::string& dir) {
  std::ifstream in{path_of(dir)};
  if (!in)
    return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = try_parse_json(ss.str());
  if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer())
    return std::nullopt;
  store_holder who;
  who.pid = j["pid"].get<long>();
  if (auto c = j.find("command"); c != j.end() && c->is_string())
    who.command = c->get<std::string>();
  if (auto u = j.find("url"); u != j.end() && u->is_string())
    who.url = u->get<std::string>();
  if (!alive(who.pid))
    return std::nullopt;
  return who;
}

std::string holder_message(const std::string& dir, const store_holder& who) {
  auto cmd = who.command.empty() ? std::string{"cadre"} : who.command;
  if (who.url.empty())
    return "the store " + dir + " is used by " + cmd + " (pid "
           + std::to_string(who.pid) + "); wait for it to end or use another "
           "--db";
  return "the store " + dir + " is used by " + cmd + " (pid "
         + std::to_string(who.pid) + ", " + who.url + "); use --server "
         + who.url;
}

} // namespace cadre::runtime
