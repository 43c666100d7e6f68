#include "ingress/bounded_head.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <type_traits>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "ingress/server_impl.hpp"

namespace cadre::runtime {

namespace {

int timeout_ms(time_t sec, time_t usec) {
  return static_cast<int>(sec * 1000 + usec / 1000);
}

bool wait_for(socket_t sock, short events, int ms) {
  pollfd p{sock, events, 0};
  int n = 0;
  do {
    n = ::poll(&p, 1, ms);
  } while (n < 0 && errno == EINTR);
  return n > 0;
}

void ip_and_port(const sockaddr_storage& addr, socklen_t len, std::string& ip,
                 int& port) {
  if (addr.ss_family == AF_INET)
    port = ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  else if (addr.ss_family == AF_INET6)
    port = ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  else
    return;
  std::array<char, NI_MAXHOST> host{};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len,
                    host.data(), host.size(), nullptr, 0, NI_NUMERICHOST)
      == 0)
    ip = host.data();
}

// One connection (plain, or TLS when `ssl` is set), read through a buffer
// that outlives a request (bytes of a pipelined next request stay). While a
// request's head is read (byte by byte: httplib's line reader asks for one
// at a time) it counts the head: a request line past max_request_line_bytes
// gets a line end of its own, which httplib answers 414; a head past
// max_head_bytes reads as a failure, which httplib answers 400 and the
// error handler 431 (current_request().head_too_large).
class bounded_stream final : public httplib::Stream {
public:
  bounded_stream(socket_t sock, SSL* ssl, int read_ms, int write_ms)
    : sock_(sock), ssl_(ssl), read_ms_(read_ms), write_ms_(write_ms) {
    // nop
  }

  // Before each request.
  void next_request() {
    in_head_ = true;
    in_request_line_ = true;
    line_bytes_ = 0;
    head_bytes_ = 0;
    too_large_ = 0;
    end_line_ = false;
  }

  // Bytes of the connection read and not yet given to httplib.
  bool buffered() const {
    return off_ < len_ || (ssl_ != nullptr && SSL_pending(ssl_) > 0);
  }

  // 414 or 431 when this request's head passed its bound (0: it did not).
  int too_large() const {
    return too_large_;
  }

  bool is_readable() const override {
    return buffered() || wait_for(sock_, POLLIN, read_ms_);
  }

  bool is_writable() const override {
    return wait_for(sock_, POLLOUT, write_ms_);
  }

  ssize_t read(char* ptr, size_t size) override {
    if (size == 0)
      return 0;
    if (end_line_) {
      end_line_ = false;
      *ptr = '\n';
      return 1;
    }
    if (too_large_ != 0)
      return -1;
    if (off_ == len_) {
      if (!is_readable())
        return -1;
      auto n = receive(buf_.data(), buf_.size());
      if (n <= 0)
        return n;
      off_ = 0;
      len_ = static_cast<size_t>(n);
    }
    if (!in_head_) {
      auto n = std::min(size, len_ - off_);
      std::memcpy(ptr, buf_.data() + off_, n);
      off_ += n;
      return static_cast<ssize_t>(n);
    }
    size_t given = 0;
    while (given < size && off_ < len_ && in_head_) {
      char c = buf_[off_];
      if (in_request_line_ && c != '\n'
          && line_bytes_ + 1 > max_request_line_bytes) {
        // httplib answers a line this long 414 (and reads no header).
        too_large_ = 414;
        current_request().head_too_large = 414;
        if (given > 0) {
          end_line_ = true;
          return static_cast<ssize_t>(given);
        }
        *ptr = '\n';
        return 1;
      }
      if (++head_bytes_ > max_head_bytes) {
        too_large_ = 431;
        current_request().head_too_large = 431;
        return given > 0 ? static_cast<ssize_t>(given) : -1;
      }
      ptr[given++] = c;
      ++off_;
      if (line_bytes_++ == 0)
        line_starts_cr_ = c == '\r';
      if (c == '\n') {
        // The head ends at the first header line that is a bare CRLF, as
        // httplib reads it.
        if (!in_request_line_ && line_bytes_ == 2 && line_starts_cr_)
          in_head_ = false;
        in_request_line_ = false;
        line_bytes_ = 0;
      }
    }
    return static_cast<ssize_t>(given);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable())
      return -1;
    if (ssl_ != nullptr) {
      auto n = SSL_write(ssl_, ptr, static_cast<int>(std::min<size_t>(
                                       size, 1 << 30)));
      return n > 0 ? n : -1;
    }
    ssize_t n = 0;
    do {
      n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      ip_and_port(addr, len, ip, port);
  }

  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      ip_and_port(addr, len, ip, port);
  }

  socket_t socket() const override {
    return sock_;
  }

private:
  ssize_t receive(char* ptr, size_t size) {
    if (ssl_ != nullptr) {
      auto n = SSL_read(ssl_, ptr, static_cast<int>(size));
      if (n > 0)
        return n;
      return SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    ssize_t n = 0;
    do {
      n = ::recv(sock_, ptr, size, 0);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  socket_t sock_;
  SSL* ssl_;
  int read_ms_;
  int write_ms_;
  std::array<char, 4096> buf_{};
  size_t off_ = 0;
  size_t len_ = 0;
  bool in_head_ = true;
  bool in_request_line_ = true;
  size_t line_bytes_ = 0;
  size_t head_bytes_ = 0;
  bool line_starts_cr_ = false;
  int too_large_ = 0;
  bool end_line_ = false;
};

// What a connection whose head passed its bound reads and drops before it
// closes (see linger).
constexpr size_t linger_bytes = size_t{1} << 20;

// httplib's connection loop (keep-alive count and timeout, the server's
// stop), over a bounded_stream.
template <class Base>
class bounded_server final : public Base {
public:
  using Base::Base;

private:
  bool process_and_close_socket(socket_t sock) override {
    SSL* ssl = nullptr;
    if constexpr (std::is_same_v<Base, httplib::SSLServer>) {
      // The handshake under the read and write timeouts.
      timeval rd{this->read_timeout_sec_,
                 static_cast<suseconds_t>(this->read_timeout_usec_)};
      timeval wr{this->write_timeout_sec_,
                 static_cast<suseconds_t>(this->write_timeout_usec_)};
      ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &rd, sizeof(rd));
      ::setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &wr, sizeof(wr));
      ssl = SSL_new(this->ssl_context());
      if (ssl == nullptr || SSL_set_fd(ssl, sock) != 1
          || SSL_accept(ssl) != 1) {
        if (ssl != nullptr)
          SSL_free(ssl);
        ::shutdown(sock, SHUT_RDWR);
        ::close(sock);
        return false;
      }
    }
    bool ret = false;
    bool too_large = false;
    bool ending = false;
    {
      bounded_stream strm{sock, ssl,
                          timeout_ms(this->read_timeout_sec_,
                                     this->read_timeout_usec_),
                          timeout_ms(this->write_timeout_sec_,
                                     this->write_timeout_usec_)};
      auto keep_alive_ms = timeout_ms(this->keep_alive_timeout_sec_, 0);
      for (auto count = this->keep_alive_max_count_;
           this->svr_sock_ != INVALID_SOCKET && count > 0
           && (strm.buffered() || wait_for(sock, POLLIN, keep_alive_ms));
           --count) {
        current_request() = request_context{};
        strm.next_request();
        bool closed = false;
        ret = this->process_request(strm, count == 1, closed, nullptr);
        too_large = strm.too_large() != 0;
        // An answer given before its request's body was read (or of a
        // method httplib reads no body of) ends the connection, a 204
        // without a body too (end_connection_after).
        ending = current_request().end_connection;
        if (!ret || closed || too_large || ending)
          break;
      }
    }
    if (ssl != nullptr) {
      if (ret)
        SSL_shutdown(ssl);
      SSL_free(ssl);
    }
    if (too_large || ending)
      linger(sock);
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ret;
  }

  // After a head past its bound or an answer before the body was read the
  // client may still be sending: closing with bytes unread would reset the
  // connection, and a client still writing would lose the answer. The rest
  // is read and dropped, at most linger_bytes and for at most the read
  // timeout.
  void linger(socket_t sock) {
    ::shutdown(sock, SHUT_WR);
    auto deadline = std::chrono::steady_clock::now()
                    + std::chrono::seconds{this->read_timeout_sec_}
                    + std::chrono::microseconds{this->read_timeout_usec_};
    std::array<char, 16384> sink{};
    for (size_t dropped = 0; dropped < linger_bytes;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
      if (left <= 0 || !wait_for(sock, POLLIN, static_cast<int>(left)))
        return;
      auto n = ::recv(sock, sink.data(), sink.size(), 0);
      if (n <= 0)
        return;
      dropped += static_cast<size_t>(n);
    }
  }
};

} // namespace

std::unique_ptr<httplib::Server> make_bounded_server() {
  return std::make_unique<bounded_server<httplib::Server>>();
}

std::unique_ptr<httplib::Server> make_bounded_tls_server(const char* cert,
                                                         const char* key) {
  return std::make_unique<bounded_server<httplib::SSLServer>>(cert, key);
}

} // namespace cadre::runtime
