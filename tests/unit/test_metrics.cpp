// Training metrics (trainer/metrics.h, metrics_server.h): values recorded through TrainingMetrics are scraped
// over HTTP from /metrics as exact Prometheus text samples; bad or busy addresses are InputErrors naming the
// address; without an address there is no server; a stopped server no longer answers. Hostile clients — idle
// or slow connections, more of them than the server keeps, oversized heads — neither keep a scrape out nor
// delay the server's shutdown.
#include "trainer/metrics.h"

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fmt/format.h>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace ratplus {
namespace {

// A TCP connection to the server on loopback (-1 when refused), with 5 s send and receive timeouts.
int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` on a new connection and returns everything the server sends until it closes ("" when the
// connection is refused).
std::string http_exchange(int port, const std::string& request) {
  const int fd = connect_to(port);
  if (fd < 0) return "";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string reply;
  char buffer[4096];
  for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) reply.append(buffer, static_cast<size_t>(n));
  close(fd);
  return reply;
}

std::string get(int port, const std::string& target) {
  return http_exchange(port, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}

// GET /metrics from a server on loopback; the body, or "" when the request fails.
std::string scrape(int port) {
  const std::string reply = get(port, "/metrics");
  if (!reply.starts_with("HTTP/1.1 200 ")) return "";
  EXPECT_NE(reply.find("\r\nContent-Type: text/plain; version=0.0.4"), std::string::npos);
  return reply.substr(reply.find("\r\n\r\n") + 4);
}

// Sample lines of the Prometheus text format: series (name and labels) → value as written.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> result;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    result[line.substr(0, space)] = line.substr(space + 1);
  }
  return result;
}

std::string message_of(const std::string& listen) {
  try {
    TrainingMetrics metrics(listen);
  } catch (const InputError& error) {
    return error.what();
  }
  return "no InputError";
}

TEST(TrainingMetrics, ServesRecordedValuesAsPrometheusText) {
  TrainingMetrics metrics("127.0.0.1:0");
  ASSERT_GT(metrics.port(), 0);
  metrics.record_update("dense", 2.5, 0.75, 0.003, false);
  metrics.record_update("sparse", 3.25, 1.5, 0.003, false);
  metrics.record_update("dense", 2.25, 0.5, 0.002, false);
  metrics.record_update("sparse", 4.0, 8.0, 0.002, true);
  metrics.record_step(1, 512, 0.25, 2048, -1, 0.125);
  metrics.record_step(2, 512, 0.5, 1024, 0.375, 0.25);
  metrics.record_validation("dense", 2.75);
  metrics.record_validation("dilated:D=16", 3.5);
  metrics.record_checkpoint(2, 1.5);

  const std::string text = scrape(metrics.port());
  auto s = samples(text);
  EXPECT_EQ(s["ratplus_tokens_total"], "1024");
  EXPECT_EQ(s["ratplus_steps_total"], "2");
  EXPECT_EQ(s["ratplus_step"], "2");
  EXPECT_EQ(s["ratplus_optimizer_updates_total{pass=\"dense\"}"], "2");
  EXPECT_EQ(s["ratplus_optimizer_updates_total{pass=\"sparse\"}"], "1");
  EXPECT_EQ(s["ratplus_skipped_updates_total"], "1");
  EXPECT_EQ(s["ratplus_loss{pass=\"dense\"}"], "2.25");
  EXPECT_EQ(s["ratplus_loss{pass=\"sparse\"}"], "4");
  EXPECT_EQ(s["ratplus_grad_norm{pass=\"dense\"}"], "0.5");
  EXPECT_EQ(s["ratplus_grad_norm{pass=\"sparse\"}"], "8");
  EXPECT_EQ(s["ratplus_learning_rate"], "0.002");
  EXPECT_EQ(s["ratplus_tokens_per_second"], "1024");
  EXPECT_EQ(s["ratplus_mfu_ratio"], "0.375");
  EXPECT_EQ(s["ratplus_data_wait_seconds_total"], "0.375");
  EXPECT_EQ(s["ratplus_step_duration_seconds_count"], "2");
  EXPECT_EQ(s["ratplus_step_duration_seconds_sum"], "0.75");
  EXPECT_EQ(s["ratplus_step_duration_seconds_bucket{le=\"0.1\"}"], "0");
  EXPECT_EQ(s["ratplus_step_duration_seconds_bucket{le=\"0.25\"}"], "1");
  EXPECT_EQ(s["ratplus_step_duration_seconds_bucket{le=\"0.5\"}"], "2");
  EXPECT_EQ(s["ratplus_step_duration_seconds_bucket{le=\"+Inf\"}"], "2");
  EXPECT_EQ(s["ratplus_validation_loss{pattern=\"dense\"}"], "2.75");
  EXPECT_EQ(s["ratplus_validation_loss{pattern=\"dilated:D=16\"}"], "3.5");
  EXPECT_EQ(s["ratplus_checkpoint_duration_seconds_count"], "1");
  EXPECT_EQ(s["ratplus_checkpoint_duration_seconds_sum"], "1.5");
  EXPECT_EQ(s["ratplus_last_checkpoint_step"], "2");
  EXPECT_GT(std::stod(s["ratplus_process_resident_memory_bytes"]), 1e6);

  for (const char* name :
       {"ratplus_tokens_total", "ratplus_steps_total", "ratplus_optimizer_updates_total",
        "ratplus_skipped_updates_total", "ratplus_loss", "ratplus_grad_norm", "ratplus_learning_rate", "ratplus_step",
        "ratplus_step_duration_seconds", "ratplus_tokens_per_second", "ratplus_mfu_ratio",
        "ratplus_data_wait_seconds_total", "ratplus_validation_loss", "ratplus_checkpoint_duration_seconds",
        "ratplus_last_checkpoint_step", "ratplus_process_resident_memory_bytes"}) {
    EXPECT_NE(("\n" + text).find(fmt::format("\n# HELP {} ", name)), std::string::npos) << name;
  }
}

TEST(TrainingMetrics, CountersAccumulateAcrossScrapes) {
  TrainingMetrics metrics("127.0.0.1:0");
  metrics.record_step(1, 512, 0.01, 51200, -1, 0);
  EXPECT_EQ(samples(scrape(metrics.port()))["ratplus_tokens_total"], "512");
  metrics.record_step(2, 512, 0.01, 51200, -1, 0);
  metrics.record_step(3, 256, 0.01, 25600, -1, 0);
  auto s = samples(scrape(metrics.port()));
  EXPECT_EQ(s["ratplus_tokens_total"], "1280");
  EXPECT_EQ(s["ratplus_steps_total"], "3");
  EXPECT_EQ(s["ratplus_step"], "3");
  EXPECT_EQ(s["ratplus_step_duration_seconds_count"], "3");
}

TEST(TrainingMetrics, UnknownMfuIsAbsent) {
  TrainingMetrics metrics("127.0.0.1:0");
  metrics.record_step(1, 512, 0.01, 51200, -1, 0);
  EXPECT_EQ(samples(scrape(metrics.port())).count("ratplus_mfu_ratio"), 0u);
}

TEST(TrainingMetrics, SecondServerOnTheSamePortIsAnInputErrorNamingTheAddress) {
  TrainingMetrics first("127.0.0.1:0");
  const std::string address = fmt::format("127.0.0.1:{}", first.port());
  EXPECT_THROW(TrainingMetrics second(address), InputError);
  EXPECT_NE(message_of(address).find(address), std::string::npos) << message_of(address);
  EXPECT_THROW(MetricsServer(std::make_shared<prometheus::Registry>(), address), InputError);
  EXPECT_EQ(samples(scrape(first.port()))["ratplus_steps_total"], "0");  // the first one still serves
}

TEST(TrainingMetrics, MalformedAddressesAreInputErrorsNamingTheAddress) {
  for (const char* listen :
       {"localhost", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:91x", ":9100", "192.0.2.1:0"}) {
    EXPECT_NE(message_of(listen).find(fmt::format("'{}'", listen)), std::string::npos) << message_of(listen);
  }
}

TEST(TrainingMetrics, NoServerWithoutAnAddress) {
  TrainingMetrics metrics("");
  EXPECT_EQ(metrics.port(), -1);
  metrics.record_update("adapt", 2.0, 1.0, 0.001, false);
  metrics.record_step(1, 512, 0.01, 51200, 0.5, 0);
  const auto start = std::chrono::steady_clock::now();
  metrics.linger(30);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_FALSE(metrics.registry().Collect().empty());
}

TEST(TrainingMetrics, LingerKeepsServing) {
  TrainingMetrics metrics("127.0.0.1:0");
  const auto start = std::chrono::steady_clock::now();
  metrics.linger(0.2);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  EXPECT_EQ(samples(scrape(metrics.port()))["ratplus_steps_total"], "0");
}

TEST(MetricsServer, ServesAnyRegistryAndStopsWhenDestroyed) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto& counter = prometheus::BuildCounter().Name("ratplus_test_total").Help("A test counter.").Register(*registry);
  counter.Add({{"kind", "a"}}).Increment(3);
  int port = -1;
  int scrapes_seen = 0;
  {
    MetricsServer server(registry, "127.0.0.1:0", [&] { ++scrapes_seen; });
    port = server.port();
    EXPECT_EQ(samples(scrape(port))["ratplus_test_total{kind=\"a\"}"], "3");
    EXPECT_TRUE(get(port, "/other").starts_with("HTTP/1.1 404 "));
    EXPECT_TRUE(http_exchange(port, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    EXPECT_TRUE(http_exchange(port, "nonsense\r\n\r\n").starts_with("HTTP/1.1 400 "));
  }
  EXPECT_EQ(scrapes_seen, 1);
  EXPECT_EQ(scrape(port), "");
}

TEST(MetricsServer, IdleAndSlowClientsDoNotKeepAScrapeOut) {
  MetricsServer server(std::make_shared<prometheus::Registry>(), "127.0.0.1:0");
  // More idle connections than the server keeps, and slow ones that have sent half a request line.
  std::vector<int> attackers;
  for (int i = 0; i < MetricsServer::kMaxConnections + 8; ++i) {
    attackers.push_back(connect_to(server.port()));
    if (i % 2) send(attackers.back(), "GET /met", 8, MSG_NOSIGNAL);
  }
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(get(server.port(), "/metrics").starts_with("HTTP/1.1 200 "));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  for (const int fd : attackers) close(fd);
}

TEST(MetricsServer, ASlowClientIsCutOffAtTheDeadline) {
  MetricsServer server(std::make_shared<prometheus::Registry>(), "127.0.0.1:0");
  const int fd = connect_to(server.port());
  const auto start = std::chrono::steady_clock::now();
  char byte = 0;
  for (const char c : std::string("GET /metrics HTTP/1.1\r\n")) {  // one byte every 100 ms
    if (send(fd, &c, 1, MSG_NOSIGNAL) != 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const ssize_t n = recv(fd, &byte, 1, 0);  // the server has closed the connection by now
  close(fd);
  EXPECT_LE(n, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, MetricsServer::kConnectionDeadline + std::chrono::seconds(1));
}

TEST(MetricsServer, AnOversizedRequestHeadIsRefused) {
  MetricsServer server(std::make_shared<prometheus::Registry>(), "127.0.0.1:0");
  std::string head = "GET /metrics HTTP/1.1\r\nX-Padding: ";
  head.resize(MetricsServer::kMaxRequestBytes + 1, 'a');  // one byte too many, and no end of the head
  EXPECT_TRUE(http_exchange(server.port(), head).starts_with("HTTP/1.1 431 "));
}

TEST(MetricsServer, ShutdownDoesNotWaitOnConnectedClients) {
  auto server = std::make_unique<MetricsServer>(std::make_shared<prometheus::Registry>(), "127.0.0.1:0");
  const int idle = connect_to(server->port()), slow = connect_to(server->port());
  send(slow, "GET /", 5, MSG_NOSIGNAL);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto start = std::chrono::steady_clock::now();
  server.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  close(idle);
  close(slow);
}

}  // namespace
}  // namespace ratplus
