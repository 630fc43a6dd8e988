#pragma once
// Sends librdkafka's own log lines (syslog levels) to the "kafka" JSON logger instead of
// raw stderr.

typedef struct rd_kafka_conf_s rd_kafka_conf_t;

namespace op::kafka {

// `quiet`: log everything at debug level; for handles whose failures another component
// reports (the admin handle behind the health probe).
void route_logs(rd_kafka_conf_t* conf, bool quiet = false);

}  // namespace op::kafka
