#include "orders/adapters/dead_letters.hpp"

#include <fmt/format.h>

#include "orders/adapters/event_envelope.hpp"
#include "platform/log/logging.hpp"
#include "platform/metrics/registry.hpp"
#include "platform/outbox/outbox.hpp"
#include "platform/pg/hex.hpp"

namespace op::orders {
namespace {

#define OP_ISO_UTC(column) \
  "to_char(" column " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

const char* const entry_columns =
    "id, stage, order_id, topic, partition, \"offset\", message_key, encode(payload, 'hex'),"
    " headers::text, error_class, error_message, attempts, " OP_ISO_UTC(
        "first_failure_at") ", " OP_ISO_UTC("last_failure_at") ", status, replay_count, " OP_ISO_UTC("replayed_at") ", " OP_ISO_UTC("created_at");

dead_letter read_entry(const pqxx::row& r) {
  dead_letter e;
  e.id = r[0].as<std::int64_t>();
  e.stage = r[1].as<std::string>();
  if (!r[2].is_null())
    e.order_id = r[2].as<std::string>();
  e.topic = r[3].as<std::string>();
  e.partition = r[4].as<int>();
  e.offset = r[5].as<std::int64_t>();
  e.key = r[6].as<std::string>();
  e.payload = pg::from_hex(r[7].c_str());
  e.headers_json = r[8].as<std::string>();
  e.error_class = r[9].as<std::string>();
  e.error_message = r[10].as<std::string>();
  e.attempts = r[11].as<int>();
  e.first_failure_at = r[12].as<std::string>();
  e.last_failure_at = r[13].as<std::string>();
  e.status = r[14].as<std::string>();
  e.replay_count = r[15].as<int>();
  if (!r[16].is_null())
    e.replayed_at = r[16].as<std::string>();
  e.created_at = r[17].as<std::string>();
  return e;
}

std::string original_headers_json(const kafka::consumed_message& m) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [name, value] : m.headers)
    if (name != replay_header)
      headers.emplace_back(name, value);
  return outbox::headers_json(headers);
}

metrics::counter& parked_counter(const std::string& stage, const std::string& error_class) {
  return metrics::global().get_counter("dlq_messages_total",
                                       "Messages dead-lettered by a saga stage, by error class.",
                                       {{"stage", stage}, {"error_class", error_class}});
}

metrics::counter& replay_counter() {
  return metrics::global().get_counter("dlq_replays_total",
                                       "Dead letters re-injected into their original topic.");
}

}  // namespace

dead_letter_queue::dead_letter_queue(std::string dlq_topic) : dlq_topic_(std::move(dlq_topic)) {
  // At zero from the start, so rates and alerts work before the first dead letter.
  replay_counter();
  for (const char* stage : {"validate", "reserve", "pay", "confirm"})
    for (const char* error_class : {error_undecodable, error_permanent, error_retries_exhausted})
      parked_counter(stage, error_class);
}

void dead_letter_queue::prepare_statements(pqxx::connection& c) {
  c.prepare("dlq_insert",
            "INSERT INTO dead_letters (stage, order_id, topic, partition, \"offset\", message_key,"
            " payload, headers, error_class, error_message, attempts, first_failure_at,"
            " last_failure_at) VALUES ($1, $2, $3, $4, $5, $6, decode($7, 'hex'), $8::jsonb, $9,"
            " $10, $11, coalesce($12::timestamptz, now()), now())"
            " ON CONFLICT (stage, topic, partition, \"offset\") DO UPDATE"
            " SET last_failure_at = now() RETURNING id, " OP_ISO_UTC(
                "first_failure_at") ", " OP_ISO_UTC("last_failure_at"));
  c.prepare("dlq_park_again",
            "UPDATE dead_letters SET status = 'PARKED', error_class = $2, error_message = $3,"
            " attempts = $4, last_failure_at = now() WHERE id = $1 RETURNING id, " OP_ISO_UTC(
                "first_failure_at") ", " OP_ISO_UTC("last_failure_at"));
  c.prepare("dlq_list", fmt::format("SELECT {} FROM dead_letters WHERE id > $1"
                                    " AND ($2::text IS NULL OR stage = $2)"
                                    " AND ($3::text IS NULL OR status = $3) ORDER BY id LIMIT $4",
                                    entry_columns));
  c.prepare("dlq_find", fmt::format("SELECT {} FROM dead_letters WHERE id = $1", entry_columns));
  c.prepare("dlq_lock",
            fmt::format("SELECT {} FROM dead_letters WHERE id = $1 FOR UPDATE", entry_columns));
  c.prepare("dlq_mark_replayed",
            "UPDATE dead_letters SET status = 'REPLAYED', replay_count = replay_count + 1,"
            " replayed_at = now() WHERE id = $1");
  c.prepare("dlq_queue",
            "UPDATE dead_letters SET status = 'QUEUED' WHERE id IN (SELECT id FROM dead_letters"
            " WHERE status = 'PARKED' AND ($1::text IS NULL OR stage = $1) ORDER BY id LIMIT $2"
            " FOR UPDATE SKIP LOCKED)");
  c.prepare("dlq_claim_queued",
            fmt::format("SELECT {} FROM dead_letters WHERE status = 'QUEUED' ORDER BY id LIMIT $1"
                        " FOR UPDATE SKIP LOCKED",
                        entry_columns));
  c.prepare("dlq_count_by_status", "SELECT status, count(*) FROM dead_letters GROUP BY status");
}

std::int64_t dead_letter_queue::park(pqxx::work& tx, const failed_message& failed) const {
  const auto& m = *failed.message;
  std::optional<std::int64_t> replayed_entry;
  if (auto it = m.headers.find(replay_header); it != m.headers.end()) {
    try {
      replayed_entry = std::stoll(it->second);
    } catch (const std::exception&) {
    }
  }
  pqxx::result rows;
  if (replayed_entry)
    rows = tx.exec_prepared("dlq_park_again", *replayed_entry, failed.error_class,
                            failed.error_message, failed.attempts);
  if (rows.empty())
    rows = tx.exec_prepared("dlq_insert", failed.stage, failed.order_id, m.topic, m.partition,
                            m.offset, m.key, pg::to_hex(m.value), original_headers_json(m),
                            failed.error_class, failed.error_message, failed.attempts,
                            failed.first_failure_at);
  auto id = rows[0][0].as<std::int64_t>();

  outbox::message letter;
  letter.topic = dlq_topic_;
  letter.key = m.key;
  letter.event_type = "DeadLetter";
  letter.correlation_id = failed.order_id.value_or("");
  letter.raw_value = m.value;
  if (auto it = m.headers.find("traceparent"); it != m.headers.end())
    letter.traceparent = it->second;
  letter.headers = {
      {"dlq-entry-id", std::to_string(id)},
      {"dlq-original-topic", m.topic},
      {"dlq-original-partition", std::to_string(m.partition)},
      {"dlq-original-offset", std::to_string(m.offset)},
      {"dlq-original-key", m.key},
      {"dlq-stage", failed.stage},
      {"dlq-error-class", failed.error_class},
      {"dlq-error-message", failed.error_message},
      {"dlq-attempts", std::to_string(failed.attempts)},
      {"dlq-first-failure", rows[0][1].as<std::string>()},
      {"dlq-last-failure", rows[0][2].as<std::string>()},
  };
  if (auto it = m.headers.find("event-id"); it != m.headers.end())
    letter.headers.emplace_back("dlq-original-event-id", it->second);
  outbox::append(tx, letter);
  parked_counter(failed.stage, failed.error_class).inc();
  log::get("saga")->error("{}: {} {}[{}]@{} dead-lettered as entry {} after {} attempt(s): {}",
                          failed.stage, failed.order_id ? "order " + *failed.order_id : "message",
                          m.topic, m.partition, m.offset, id, failed.attempts,
                          failed.error_message);
  return id;
}

std::vector<dead_letter> dead_letter_queue::list(pqxx::work& tx,
                                                 const dead_letter_filter& filter) const {
  std::vector<dead_letter> out;
  for (const auto& r :
       tx.exec_prepared("dlq_list", filter.after_id, filter.stage, filter.status, filter.limit))
    out.push_back(read_entry(r));
  return out;
}

std::optional<dead_letter> dead_letter_queue::find(pqxx::work& tx, std::int64_t id) const {
  auto rows = tx.exec_prepared("dlq_find", id);
  if (rows.empty())
    return std::nullopt;
  return read_entry(rows[0]);
}

void dead_letter_queue::reinject(pqxx::work& tx, const dead_letter& entry) const {
  outbox::message replay;
  replay.topic = entry.topic;
  replay.key = entry.key;
  replay.event_type = "Replay";
  replay.correlation_id = entry.order_id.value_or("");
  replay.raw_value = entry.payload;
  // The original headers (event-id included, so stages still drop true duplicates), plus the
  // entry the message came from.
  replay.headers = decode_headers_json(entry.headers_json);
  replay.headers.emplace_back(replay_header, std::to_string(entry.id));
  tx.exec_prepared("dlq_mark_replayed", entry.id);
  outbox::append(tx, replay);
  replay_counter().inc();
  log::get("saga")->info("dead letter {} ({} {}) replayed into {}", entry.id, entry.stage,
                         entry.order_id.value_or("-"), entry.topic);
}

replay_outcome dead_letter_queue::replay(pqxx::work& tx, std::int64_t id) const {
  auto rows = tx.exec_prepared("dlq_lock", id);
  if (rows.empty())
    return replay_outcome::not_found;
  auto entry = read_entry(rows[0]);
  if (entry.status == "REPLAYED")
    return replay_outcome::already_replayed;
  reinject(tx, entry);
  return replay_outcome::replayed;
}

int dead_letter_queue::queue_replay(pqxx::work& tx, const std::optional<std::string>& stage,
                                    int limit) const {
  return static_cast<int>(tx.exec_prepared("dlq_queue", stage, limit).affected_rows());
}

int dead_letter_queue::replay_queued(pqxx::work& tx, int limit) const {
  int replayed = 0;
  for (const auto& r : tx.exec_prepared("dlq_claim_queued", limit)) {
    reinject(tx, read_entry(r));
    ++replayed;
  }
  return replayed;
}

std::vector<std::pair<std::string, std::int64_t>> dead_letter_queue::count_by_status(
    pqxx::work& tx) const {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& r : tx.exec_prepared("dlq_count_by_status"))
    out.emplace_back(r[0].as<std::string>(), r[1].as<std::int64_t>());
  return out;
}

}  // namespace op::orders
