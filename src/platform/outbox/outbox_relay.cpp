#include "platform/outbox/outbox_relay.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <pqxx/pqxx>

#include "platform/json/json_escape.hpp"
#include "platform/log/logging.hpp"
#include "platform/metrics/registry.hpp"
#include "platform/outbox/outbox.hpp"
#include "platform/pg/hex.hpp"

namespace op::outbox {

// The advisory lock only one relay holds at a time ("outbox").
constexpr long long relay_lock_id = 0x6f7574626f78;

// The relay's connection and its prepared statements.
class pqxx_session {
 public:
  explicit pqxx_session(const std::string& conninfo) : connection(conninfo) {
    // A relay commit lost in a database crash only publishes its events again, with the same
    // event ids: it need not wait for the WAL flush.
    pqxx::nontransaction(connection).exec("SET synchronous_commit = off");
    // One relay at a time publishes, across replicas: the others try again after their idle
    // wait. So rows need no lock before their delete (a row lock is a WAL record and a page
    // write of its own, per event).
    connection.prepare("outbox_turn", "SELECT pg_try_advisory_xact_lock($1)");
    // Takes the oldest rows by deleting them: one change per row. They come back if the
    // transaction does not commit, i.e. unless Kafka acknowledged every one of them. A row
    // its writer publishes itself after the commit waits for its publish_after: the writer
    // deletes it first unless it crashed or Kafka was away.
    connection.prepare("outbox_take",
                       "WITH taken AS (DELETE FROM outbox WHERE id IN (SELECT id FROM (SELECT"
                       " id, publish_after FROM outbox ORDER BY id LIMIT $1) oldest"
                       " WHERE publish_after IS NULL OR publish_after <= now())"
                       " RETURNING id, event_id::text, topic, message_key, event_type,"
                       " correlation_id, payload, to_char(created_at AT TIME ZONE 'UTC',"
                       " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS occurred_at, traceparent,"
                       " headers::text, encode(raw_payload, 'hex') AS raw_hex, render_with,"
                       " render_input)"
                       " SELECT * FROM taken ORDER BY id");
    connection.prepare("outbox_backlog",
                       "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)),"
                       " 0)::float8 FROM outbox");
  }
  pqxx::connection connection;
};

// The outbox's headers column: a JSON object of strings.
static std::vector<std::pair<std::string, std::string>> json_headers(const char* json) {
  std::vector<std::pair<std::string, std::string>> out;
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(json);
  if (doc.HasParseError() || !doc.IsObject())
    return out;
  for (const auto& m : doc.GetObject())
    if (m.value.IsString())
      out.emplace_back(m.name.GetString(), m.value.GetString());
  return out;
}

outbox_relay::outbox_relay(relay_settings settings, kafka::producer& producer)
    : settings_(std::move(settings)), producer_(producer) {}

outbox_relay::~outbox_relay() {
  stop();
}

void outbox_relay::start() {
  thread_ = std::thread([this] { run(); });
}

void outbox_relay::stop() {
  stopping_ = true;
  if (thread_.joinable())
    thread_.join();
}

void outbox_relay::run() {
  auto logger = log::get("outbox");
  std::unique_ptr<pqxx_session> session;
  while (!stopping_) {
    try {
      if (!session)
        session = std::make_unique<pqxx_session>(settings_.conninfo);
      int claimed = relay_batch(*session);
      measure_backlog(*session);
      if (claimed < settings_.batch_size && !stopping_)
        std::this_thread::sleep_for(settings_.idle_wait);
    } catch (const std::exception& e) {
      logger->warn("outbox relay interrupted, retrying: {}", e.what());
      session.reset();
      for (int i = 0; i < 10 && !stopping_; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void outbox_relay::measure_backlog(pqxx_session& session) {
  auto now = std::chrono::steady_clock::now();
  if (now - last_measured_ < std::chrono::seconds(1))
    return;
  last_measured_ = now;
  static auto& backlog = metrics::global().get_gauge(
      "outbox_backlog_events", "Outbox events written but not yet acknowledged by Kafka.");
  static auto& lag = metrics::global().get_gauge(
      "outbox_relay_lag_seconds", "Age of the oldest outbox event not yet published.");
  pqxx::nontransaction tx(session.connection);
  auto row = tx.exec_prepared1("outbox_backlog");
  backlog.set(row[0].as<double>());
  lag.set(row[1].as<double>());
}

std::vector<std::string> outbox_relay::render_payloads(pqxx::work& tx, const pqxx::result& rows) {
  std::vector<std::string> payloads(rows.size());
  // Each renderer once per batch, for all of its rows.
  std::map<std::string, std::vector<std::size_t>, std::less<>> rows_by_renderer;
  for (std::size_t i = 0; i < rows.size(); ++i)
    if (!rows[i][11].is_null())
      rows_by_renderer[rows[i][11].as<std::string>()].push_back(i);
  for (const auto& [name, indexes] : rows_by_renderer) {
    auto renderer = settings_.renderers.find(name);
    if (renderer == settings_.renderers.end())
      // Rolled back: a replica that has the renderer publishes these rows.
      throw std::runtime_error("outbox rows need the payload renderer '" + name +
                               "', which this program does not have");
    std::vector<render_request> requests;
    requests.reserve(indexes.size());
    for (auto i : indexes)
      requests.push_back({rows[i][3].as<std::string>(), rows[i][12].as<std::string>("")});
    auto out = renderer->second(tx, requests);
    if (out.size() != indexes.size())
      throw std::logic_error("payload renderer '" + name + "' answered " +
                             std::to_string(out.size()) + " payloads for " +
                             std::to_string(indexes.size()) + " rows");
    for (std::size_t k = 0; k < indexes.size(); ++k)
      payloads[indexes[k]] = std::move(out[k]);
  }
  return payloads;
}

int outbox_relay::relay_batch(pqxx_session& session) {
  auto started = std::chrono::steady_clock::now();
  // Where a batch's time goes: reading it from PostgreSQL, Kafka's acknowledgement, the commit.
  auto time_part = [&](const char* part) {
    auto now = std::chrono::steady_clock::now();
    metrics::global()
        .get_histogram("outbox_relay_batch_seconds",
                       "Time the outbox relay spent on one batch, by part: take (read, delete "
                       "and render the rows), publish (until Kafka acknowledged them), commit.",
                       {{"part", part}},
                       {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1})
        .observe(std::chrono::duration<double>(now - started).count());
    started = now;
  };
  pqxx::work tx(session.connection);
  if (!tx.exec_prepared1("outbox_turn", relay_lock_id)[0].as<bool>())
    return 0;
  auto rows = tx.exec_prepared("outbox_take", settings_.batch_size);
  if (rows.empty())
    return 0;
  auto rendered = render_payloads(tx, rows);
  time_part("take");
  std::vector<kafka::outgoing_message> messages;
  messages.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    message m{r[2].as<std::string>(),
              r[3].as<std::string>(),
              r[4].as<std::string>(),
              r[5].as<std::string>(),
              r[11].is_null() ? r[6].as<std::string>("") : std::move(rendered[i]),
              r[8].as<std::string>("")};
    if (!r[9].is_null())
      m.headers = json_headers(r[9].c_str());
    if (!r[10].is_null())
      m.raw_value = pg::from_hex(r[10].c_str());
    messages.push_back(kafka_message(m, r[1].as<std::string>(), r[7].as<std::string>()));
  }
  auto delivered = producer_.send_batch(messages);
  auto missing = static_cast<std::size_t>(std::count(delivered.begin(), delivered.end(), false));
  if (missing > 0)
    // Rolled back: every row of the batch is published again, the acknowledged ones as
    // duplicates with the same event id, which consumers drop.
    throw std::runtime_error(std::to_string(missing) + " outbox events not acknowledged by Kafka");
  time_part("publish");
  tx.commit();
  time_part("commit");
  static auto& published = metrics::global().get_counter(
      "outbox_events_published_total", "Outbox events acknowledged by Kafka and removed.");
  published.inc(static_cast<double>(rows.size()));
  return static_cast<int>(rows.size());
}

}  // namespace op::outbox
