// The metrics endpoint on plain sockets (see metrics_server.h).
#include "trainer/metrics_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <fmt/format.h>
#include <vector>

#include "core/error.h"

namespace ratplus {

namespace {

using Clock = std::chrono::steady_clock;

struct ListenAddress {
  std::string host;
  int port = 0;
};

// Splits "host:port" (an IPv6 host in brackets: "[::1]:9100"); the port must be 0 … 65535.
ListenAddress parse_listen_address(const std::string& listen) {
  const std::string problem =
      fmt::format("metrics address '{}': expected host:port with a port from 0 to 65535", listen);
  const size_t colon = listen.rfind(':');
  require_input(colon != std::string::npos && colon > 0, problem);
  ListenAddress address;
  address.host = listen.substr(0, colon);
  if (address.host.size() > 2 && address.host.front() == '[' && address.host.back() == ']') {
    address.host = address.host.substr(1, address.host.size() - 2);
  }
  const char* first = listen.data() + colon + 1;
  const char* last = listen.data() + listen.size();
  const auto [end, error] = std::from_chars(first, last, address.port);
  require_input(first != last && error == std::errc() && end == last && address.port >= 0 && address.port <= 65535,
                problem);
  return address;
}

// A non-blocking listening socket on the address (SO_REUSEADDR, not SO_REUSEPORT: a second server must not
// share the port), or InputError with the system's reason.
int listen_on(const ListenAddress& address, const std::string& listen) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  const int rc = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found);
  require_input(rc == 0, fmt::format("cannot serve metrics on '{}': {}", listen, gai_strerror(rc)));
  std::string reason = "no address";
  int fd = -1;
  for (const addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
      reason = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  require_input(fd >= 0, fmt::format("cannot serve metrics on '{}': {}", listen, reason));
  return fd;
}

int bound_port(int fd) {
  sockaddr_storage address{};
  socklen_t size = sizeof(address);
  check_internal(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0, "getsockname failed");
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
}

std::string response(int status, const char* reason, const std::string& content_type, const std::string& body) {
  return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                     status, reason, content_type, body.size(), body);
}

std::string plain(int status, const char* reason) {
  return response(status, reason, "text/plain; charset=utf-8", std::string(reason) + "\n");
}

}  // namespace

// One client: its request head as read so far, then the response being sent.
struct MetricsServer::Connection {
  int fd;
  Clock::time_point deadline;
  std::string in, out;
  size_t sent = 0;
  bool responding = false;
};

MetricsServer::MetricsServer(std::shared_ptr<prometheus::Registry> registry, const std::string& listen,
                             std::function<void()> before_scrape)
    : registry_(std::move(registry)), before_scrape_(std::move(before_scrape)) {
  listen_fd_ = listen_on(parse_listen_address(listen), listen);
  port_ = bound_port(listen_fd_);
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    close(listen_fd_);
    throw std::runtime_error(std::string("metrics server: pipe: ") + std::strerror(errno));
  }
  wake_read_ = wake[0];
  wake_write_ = wake[1];
  thread_ = std::thread([this] { serve(); });
}

MetricsServer::~MetricsServer() {
  const char byte = 0;
  while (write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
  close(wake_read_);
  close(wake_write_);
  close(listen_fd_);
}

std::string MetricsServer::respond(const std::string& head) const {
  const size_t line_end = head.find("\r\n");
  const std::string line = head.substr(0, line_end);
  const size_t space = line.find(' ');
  const size_t second = space == std::string::npos ? std::string::npos : line.find(' ', space + 1);
  if (second == std::string::npos || (!line.ends_with("HTTP/1.1") && !line.ends_with("HTTP/1.0")))
    return plain(400, "Bad Request");
  if (line.substr(0, space) != "GET") return plain(405, "Method Not Allowed");
  const std::string target = line.substr(space + 1, second - space - 1);
  if (target.substr(0, target.find('?')) != "/metrics") return plain(404, "Not Found");
  if (before_scrape_) before_scrape_();
  return response(200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                  prometheus::TextSerializer().Serialize(registry_->Collect()));
}

void MetricsServer::serve() {
  std::deque<Connection> open;  // oldest first
  const auto drop = [](Connection& c) {
    close(c.fd);
    c.fd = -1;
  };
  for (;;) {
    std::vector<pollfd> polled = {{wake_read_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    Clock::time_point next = Clock::time_point::max();
    for (const Connection& c : open) {
      polled.push_back({c.fd, static_cast<short>(c.responding ? POLLOUT : POLLIN), 0});
      next = std::min(next, c.deadline);
    }
    const int timeout = next == Clock::time_point::max()
                            ? -1
                            : static_cast<int>(std::clamp<int64_t>(
                                  std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now()).count(), 0,
                                  kConnectionDeadline.count()));
    if (poll(polled.data(), polled.size(), timeout) < 0 && errno != EINTR) break;
    if (polled[0].revents) break;  // the destructor's wake-up
    for (size_t i = 0; i < open.size(); ++i) {
      Connection& c = open[i];
      const short events = polled[i + 2].revents;
      if (events & (POLLERR | POLLNVAL)) {
        drop(c);
      } else if (!c.responding && (events & (POLLIN | POLLHUP))) {
        char buffer[4096];
        const ssize_t n = recv(c.fd, buffer, sizeof(buffer), 0);
        if (n <= 0) {
          if (n == 0 || (errno != EAGAIN && errno != EINTR)) drop(c);
          continue;
        }
        c.in.append(buffer, static_cast<size_t>(n));
        const size_t end = c.in.find("\r\n\r\n");
        if (end != std::string::npos && end + 4 <= kMaxRequestBytes) {
          c.out = respond(c.in.substr(0, end));
          c.responding = true;
        } else if (c.in.size() > kMaxRequestBytes) {
          c.out = plain(431, "Request Header Fields Too Large");
          c.responding = true;
        }
      } else if (c.responding && (events & POLLOUT)) {
        const ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) drop(c);
        if (n > 0 && (c.sent += static_cast<size_t>(n)) == c.out.size()) drop(c);
      }
    }
    const Clock::time_point now = Clock::now();
    for (Connection& c : open)
      if (c.fd >= 0 && now >= c.deadline) drop(c);
    std::erase_if(open, [](const Connection& c) { return c.fd < 0; });
    if (polled[1].revents & POLLIN) {
      for (int fd; (fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
        if (static_cast<int>(open.size()) == kMaxConnections) {
          close(open.front().fd);
          open.pop_front();
        }
        open.push_back({fd, Clock::now() + kConnectionDeadline, {}, {}, 0, false});
      }
    }
  }
  for (const Connection& c : open) close(c.fd);
}

}  // namespace ratplus
