#pragma once
// Reads a topic from the beginning with a consumer group of its own, so a test sees every
// message the server published, whatever the server's own consumers do.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace RdKafka {
class KafkaConsumer;
}

namespace op::test {

struct consumed_message {
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
  int partition = 0;
  long long offset = 0;
};

class kafka_test_consumer {
 public:
  explicit kafka_test_consumer(const std::string& topic);
  ~kafka_test_consumer();

  // Messages whose key is `key`, waiting until `count` arrived or the timeout passed.
  std::vector<consumed_message> wait_for_key(const std::string& key, std::size_t count,
                                             std::chrono::seconds timeout);

 private:
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::vector<consumed_message> seen_;
};

}  // namespace op::test

namespace op::test {

// Produces one message and waits for the broker's acknowledgement.
// To the partition of message.key, or to `partition` when given.
void produce_message(const std::string& topic, const consumed_message& message,
                     std::optional<int> partition = std::nullopt);

}  // namespace op::test
