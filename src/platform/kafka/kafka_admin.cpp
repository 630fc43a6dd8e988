#include "platform/kafka/kafka_admin.hpp"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include "platform/kafka/kafka_log.hpp"

namespace op::kafka {

kafka_admin::kafka_admin(const std::string& bootstrap_servers) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_servers.c_str(), err, sizeof err) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    throw kafka_error(err);
  }
  // Brokers that come and go are reported by the health component; keep this handle quiet.
  route_logs(conf, /*quiet=*/true);
  handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!handle_)
    throw kafka_error(err);
}

kafka_admin::~kafka_admin() {
  rd_kafka_destroy(handle_);
}

std::vector<std::string> kafka_admin::ensure_topics(const std::vector<topic_spec>& topics,
                                                    std::chrono::milliseconds timeout) {
  char err[512];
  std::vector<rd_kafka_NewTopic_t*> requests;
  for (const auto& t : topics) {
    auto* nt =
        rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, t.replication_factor, err, sizeof err);
    if (!nt) {
      for (auto* r : requests)
        rd_kafka_NewTopic_destroy(r);
      throw kafka_error(fmt::format("topic {}: {}", t.name, err));
    }
    requests.push_back(nt);
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(handle_);
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(handle_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, static_cast<int>(timeout.count()), err,
                                              sizeof err);
  rd_kafka_AdminOptions_set_request_timeout(options, static_cast<int>(timeout.count()), err,
                                            sizeof err);
  rd_kafka_CreateTopics(handle_, requests.data(), requests.size(), options, queue);

  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 1000);
  std::vector<std::string> created;
  std::string failure;
  if (!event) {
    failure = "no answer from the cluster to CreateTopics";
  } else if (rd_kafka_event_error(event)) {
    failure = rd_kafka_event_error_string(event);
  } else {
    const auto* result = rd_kafka_event_CreateTopics_result(event);
    size_t count = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
    for (size_t i = 0; i < count; ++i) {
      auto code = rd_kafka_topic_result_error(results[i]);
      std::string name = rd_kafka_topic_result_name(results[i]);
      if (code == RD_KAFKA_RESP_ERR_NO_ERROR) {
        created.push_back(name);
      } else if (code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        failure += fmt::format("{}: {}; ", name, rd_kafka_topic_result_error_string(results[i]));
      }
    }
  }
  if (event)
    rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  for (auto* r : requests)
    rd_kafka_NewTopic_destroy(r);
  if (!failure.empty())
    throw kafka_error("creating topics failed: " + failure);
  return created;
}

std::optional<topic_description> kafka_admin::describe(const std::string& topic,
                                                       std::chrono::milliseconds timeout) {
  rd_kafka_topic_t* handle = rd_kafka_topic_new(handle_, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* metadata = nullptr;
  auto code = rd_kafka_metadata(handle_, 0, handle, &metadata, static_cast<int>(timeout.count()));
  rd_kafka_topic_destroy(handle);
  if (code != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw kafka_error(fmt::format("metadata of {}: {}", topic, rd_kafka_err2str(code)));
  std::optional<topic_description> out;
  if (metadata->topic_cnt == 1 && metadata->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
    out = topic_description{topic, metadata->topics[0].partition_cnt};
  rd_kafka_metadata_destroy(metadata);
  return out;
}

std::optional<std::string> kafka_admin::probe(std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* metadata = nullptr;
  // all_topics=0 with no topic: asks for broker list only, the cheapest request that
  // proves a broker is answering.
  auto code = rd_kafka_metadata(handle_, 0, nullptr, &metadata, static_cast<int>(timeout.count()));
  if (code != RD_KAFKA_RESP_ERR_NO_ERROR)
    return fmt::format("brokers did not answer: {}", rd_kafka_err2str(code));
  int brokers = metadata->broker_cnt;
  rd_kafka_metadata_destroy(metadata);
  if (brokers == 0)
    return std::string("no broker in cluster metadata");
  return std::nullopt;
}

}  // namespace op::kafka
