#include "platform/outbox/after_commit_publisher.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <ctime>
#include <memory>
#include <pqxx/pqxx>

#include "platform/log/logging.hpp"
#include "platform/metrics/registry.hpp"
#include "platform/pg/array.hpp"

namespace op::outbox {

// The publisher's own connection, made on first use and again after a failure.
class pqxx_connection_holder {
 public:
  explicit pqxx_connection_holder(const std::string& conninfo) : conninfo_(conninfo) {}
  pqxx::connection& get() {
    if (!connection_) {
      connection_ = std::make_unique<pqxx::connection>(conninfo_);
      // A delete lost in a database crash only lets the relay publish those rows again.
      pqxx::nontransaction(*connection_).exec("SET synchronous_commit = off");
      connection_->prepare("outbox_delete_published",
                           "DELETE FROM outbox WHERE id = ANY($1::bigint[])");
    }
    return *connection_;
  }
  void reset() { connection_.reset(); }

 private:
  std::string conninfo_;
  std::unique_ptr<pqxx::connection> connection_;
};

after_commit_publisher::after_commit_publisher(std::string conninfo,
                                               const std::string& bootstrap_servers,
                                               std::chrono::milliseconds relay_after,
                                               std::chrono::milliseconds unstored_timeout)
    : conninfo_(std::move(conninfo)),
      relay_after_(relay_after),
      producer_(bootstrap_servers, relay_after, std::chrono::milliseconds(1)),
      unstored_producer_(bootstrap_servers, unstored_timeout, std::chrono::milliseconds(1)) {}

after_commit_publisher::~after_commit_publisher() {
  stop(std::chrono::milliseconds(0));
}

void after_commit_publisher::start() {
  thread_ = std::thread([this] { run(); });
}

void after_commit_publisher::stop(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stopping_ = true;
  if (thread_.joinable())
    thread_.join();
}

void after_commit_publisher::publish(const std::vector<message>& messages,
                                     const std::vector<stored_message>& rows) {
  if (rows.empty())
    return;
  std::vector<kafka::outgoing_message> out;
  out.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i)
    out.push_back(kafka_message(messages[i], rows[i].event_id, rows[i].occurred_at));
  std::vector<std::int64_t> ids;
  ids.reserve(rows.size());
  for (const auto& row : rows)
    ids.push_back(row.id);
  in_flight_ += static_cast<std::int64_t>(rows.size());
  producer_.send_async(out, [this, ids = std::move(ids)](std::vector<bool> delivered) {
    std::size_t acknowledged = 0;
    {
      std::lock_guard lock(mutex_);
      for (std::size_t i = 0; i < ids.size(); ++i)
        if (delivered[i]) {
          acknowledged_.push_back(ids[i]);
          ++acknowledged;
        }
    }
    in_flight_ -= static_cast<std::int64_t>(ids.size());
    auto counter = [](const char* outcome) -> metrics::counter& {
      return metrics::global().get_counter(
          "outbox_events_published_after_commit_total",
          "Outbox events their writer published right after the commit: acknowledged by "
          "Kafka, or left to the relay.",
          {{"outcome", outcome}});
    };
    static auto& sent = counter("acknowledged");
    static auto& left = counter("left_to_relay");
    sent.inc(static_cast<double>(acknowledged));
    left.inc(static_cast<double>(ids.size() - acknowledged));
  });
}

namespace {

// The envelope's occurredAt: RFC 3339 in UTC, to the millisecond, as the outbox renders it.
std::string utc_now_millis() {
  auto now = std::chrono::system_clock::now();
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", tm, millis.count());
}

std::string new_event_id() {
  thread_local boost::uuids::random_generator generate;
  return boost::uuids::to_string(generate());
}

}  // namespace

void after_commit_publisher::publish_unstored(const std::vector<message>& messages) {
  if (messages.empty())
    return;
  std::vector<kafka::outgoing_message> out;
  out.reserve(messages.size());
  const auto occurred_at = utc_now_millis();
  for (const auto& m : messages)
    out.push_back(kafka_message(m, new_event_id(), occurred_at));
  const auto count = static_cast<std::int64_t>(messages.size());
  in_flight_ += count;
  unstored_producer_.send_async(out, [this, count](std::vector<bool> delivered) {
    in_flight_ -= count;
    auto counter = [](const char* outcome) -> metrics::counter& {
      return metrics::global().get_counter(
          "outbox_events_sent_without_row_total",
          "A running saga's events sent right after the commit without an outbox row: "
          "acknowledged by Kafka, or lost (sent again once the order's step is overdue).",
          {{"outcome", outcome}});
    };
    static auto& sent = counter("acknowledged");
    static auto& lost = counter("lost");
    auto acknowledged = std::count(delivered.begin(), delivered.end(), true);
    sent.inc(static_cast<double>(acknowledged));
    lost.inc(static_cast<double>(count - acknowledged));
    if (acknowledged < count)
      log::get("outbox")->warn(
          "{} events without an outbox row not acknowledged by Kafka: their orders' steps are "
          "sent again once overdue",
          count - acknowledged);
  });
}

bool after_commit_publisher::delete_acknowledged(pqxx_connection_holder& db) {
  std::vector<std::int64_t> ids;
  {
    std::lock_guard lock(mutex_);
    ids.swap(acknowledged_);
  }
  if (ids.empty())
    return true;
  try {
    pqxx::work tx(db.get());
    tx.exec_prepared("outbox_delete_published", pg::integer_array(ids));
    tx.commit();
    // The same count as the relay's: every event published and removed, whoever did it.
    static auto& published = metrics::global().get_counter(
        "outbox_events_published_total", "Outbox events acknowledged by Kafka and removed.");
    published.inc(static_cast<double>(ids.size()));
    return true;
  } catch (const std::exception& e) {
    // The relay publishes these rows again after their publish_after: duplicates only.
    log::get("outbox")->warn("cannot delete {} published outbox rows: {}", ids.size(), e.what());
    db.reset();
    return false;
  }
}

void after_commit_publisher::run() {
  pqxx_connection_holder db(conninfo_);
  while (!stopping_) {
    // Delivery reports arrive here; deletes go out in one statement per round.
    producer_.poll(std::chrono::milliseconds(5));
    unstored_producer_.poll(std::chrono::milliseconds(0));
    if (!delete_acknowledged(db))
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  producer_.poll(std::chrono::milliseconds(0));
  unstored_producer_.poll(std::chrono::milliseconds(0));
  delete_acknowledged(db);
}

}  // namespace op::outbox
