#pragma once

// httplib 0.11.4 (Debian's, not patched here) reads a request line and
// header lines into buffers that grow without limit before any handler
// runs. The servers made here read each connection through their own
// stream, which gives httplib at most max_request_line_bytes of a request
// line and max_head_bytes of a whole head; past either the request is
// answered 414 or 431 and the connection ends. The same connection loop
// ends a connection after an answer marked end_connection_after
// (server_impl.hpp), which httplib's own loop would keep open. Private to
// runtime/src/ingress.

#include <cstddef>
#include <memory>

#include <httplib.h>

namespace cadre::runtime {

/// A request line past this is answered 414: httplib's own limit
/// (CPPHTTPLIB_REQUEST_URI_MAX_LENGTH), which it applies only once it has
/// read the whole line.
inline constexpr size_t max_request_line_bytes = 8192;

/// A request's head (request line and headers) past this is answered 431.
inline constexpr size_t max_head_bytes = size_t{64} << 10;

/// A plain HTTP server with bounded request heads.
std::unique_ptr<httplib::Server> make_bounded_server();

/// An HTTPS server with bounded request heads; is_valid() is false when
/// the certificate or key does not load.
std::unique_ptr<httplib::Server> make_bounded_tls_server(const char* cert,
                                                         const char* key);

} // namespace cadre::runtime
