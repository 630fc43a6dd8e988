#include "platform/kafka/kafka_log.hpp"

#include <librdkafka/rdkafka.h>

#include "platform/log/logging.hpp"

namespace op::kafka {
namespace {

spdlog::level::level_enum from_syslog(int level) {
  if (level <= 2)
    return spdlog::level::critical;
  if (level == 3)
    return spdlog::level::err;
  if (level == 4)
    return spdlog::level::warn;
  if (level <= 6)
    return spdlog::level::info;
  return spdlog::level::debug;
}

void log_line(const rd_kafka_t* rk, int level, const char* facility, const char* text) {
  static auto logger = log::get("kafka");
  logger->log(from_syslog(level), "{} {}: {}", rd_kafka_name(rk), facility, text);
}

void quiet_log_line(const rd_kafka_t* rk, int, const char* facility, const char* text) {
  static auto logger = log::get("kafka");
  logger->debug("{} {}: {}", rd_kafka_name(rk), facility, text);
}

}  // namespace

void route_logs(rd_kafka_conf_t* conf, bool quiet) {
  rd_kafka_conf_set_log_cb(conf, quiet ? quiet_log_line : log_line);
}

}  // namespace op::kafka
