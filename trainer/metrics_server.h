// The HTTP endpoint of the training metrics: GET /metrics answers with a registry serialized as Prometheus
// text. It is written on plain sockets because a scrape endpoint beside a training job must hold up against
// clients that are slow or hostile, which cpp-httplib's thread-per-connection pool could not: two idle
// connections occupied its workers, every scrape then timed out, and its shutdown waited on them. Here one
// thread multiplexes every connection with poll(2), and each connection is bounded:
//   - kMaxRequestBytes of request line and headers (beyond: 431 and close);
//   - kConnectionDeadline from accept to the last byte of the response (beyond: closed);
//   - kMaxConnections open at once; a new one beyond that closes the oldest, so a scraper always gets in;
//   - one request per connection (Connection: close); GET only (405 otherwise); /metrics only (404).
// The destructor wakes the loop through a pipe, closes every socket and joins the thread: it never waits on
// a client.
#pragma once

#include <prometheus/registry.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace ratplus {

class MetricsServer {
 public:
  static constexpr size_t kMaxRequestBytes = 8192;
  static constexpr std::chrono::milliseconds kConnectionDeadline{2000};
  static constexpr int kMaxConnections = 32;

  // listen = "host:port" (an IPv6 host in brackets); port 0 picks a free port. InputError (core/error.h)
  // naming the address when it is malformed or cannot be bound. `before_scrape`, when given, runs on the
  // server thread before each scrape serializes the registry.
  MetricsServer(std::shared_ptr<prometheus::Registry> registry, const std::string& listen,
                std::function<void()> before_scrape = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  int port() const { return port_; }

 private:
  struct Connection;
  void serve();
  // The response to a complete request head.
  std::string respond(const std::string& head) const;

  std::shared_ptr<prometheus::Registry> registry_;
  std::function<void()> before_scrape_;
  int listen_fd_ = -1, wake_read_ = -1, wake_write_ = -1;
  int port_ = -1;
  std::thread thread_;
};

}  // namespace ratplus
