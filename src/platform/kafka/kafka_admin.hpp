#pragma once
// Talks to the cluster itself rather than to topics: creates the configured topics and
// answers whether the brokers are reachable (the `kafka` health component).

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

typedef struct rd_kafka_s rd_kafka_t;

namespace op::kafka {

struct kafka_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct topic_spec {
  std::string name;
  int partitions;
  int replication_factor;
};

struct topic_description {
  std::string name;
  int partitions;
};

class kafka_admin {
 public:
  explicit kafka_admin(const std::string& bootstrap_servers);
  ~kafka_admin();
  kafka_admin(const kafka_admin&) = delete;
  kafka_admin& operator=(const kafka_admin&) = delete;

  // Creates the topics that do not exist yet; existing ones are left as they are.
  // Returns the names it created. Throws kafka_error when the cluster refuses or is away.
  std::vector<std::string> ensure_topics(const std::vector<topic_spec>& topics,
                                         std::chrono::milliseconds timeout);

  // The cluster's view of one topic, or nullopt when it does not exist.
  std::optional<topic_description> describe(const std::string& topic,
                                            std::chrono::milliseconds timeout);

  // nullopt when a broker answered a metadata request in time, else the reason it did not.
  std::optional<std::string> probe(std::chrono::milliseconds timeout);

 private:
  rd_kafka_t* handle_;
};

}  // namespace op::kafka
