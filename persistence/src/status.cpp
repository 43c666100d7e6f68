#include "status.hpp"

#include <string>

#include <rocksdb/status.h>

#include "cadre/messages/error.hpp"

namespace cadre::persistence {

caf::error to_error(const rocksdb::Status& status, std::string_view where) {
  if (status.ok())
    return caf::error{};
  auto code = errc::storage_error;
  if (status.IsNotFound())
    code = errc::not_found;
  else if (status.IsBusy() || status.IsTryAgain() || status.IsTimedOut()
           || status.IsShutdownInProgress())
    code = errc::unavailable;
  std::string msg{where};
  msg += ": ";
  msg += status.ToString();
  return make_error(code, std::move(msg));
}

} // namespace cadre::persistence
