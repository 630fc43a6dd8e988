#include "platform/kafka/partitioned_consumer.hpp"

#include <fmt/format.h>
#include <librdkafka/rdkafkacpp.h>

#include <deque>
#include <set>

#include "platform/kafka/kafka_admin.hpp"
#include "platform/log/logging.hpp"
#include "platform/metrics/registry.hpp"

namespace op::kafka {

// One assigned partition: its strand, the messages in flight and those waiting for an
// earlier message of the same key. Every member is touched only on the strand.
class partitioned_consumer::lane : public std::enable_shared_from_this<lane> {
 public:
  lane(partitioned_consumer& owner, int partition)
      : owner_(owner), partition_(partition), strand_(asio::make_strand(owner.workers_)) {}

  void enqueue(std::shared_ptr<consumed_message> message) {
    asio::post(strand_, [self = shared_from_this(), message = std::move(message)]() mutable {
      self->accept(std::move(message));
    });
  }

  // After a rebalance took the partition away: finish what is running, store nothing.
  void revoke() {
    asio::post(strand_, [self = shared_from_this()] { self->revoked_ = true; });
  }

 private:
  struct slot {
    std::int64_t offset;
    bool done = false;
  };

  void accept(std::shared_ptr<consumed_message> message) {
    order_.push_back({message->offset});
    ++owner_.in_flight_;
    if (order_.size() >= owner_.settings_.max_in_flight_per_partition && !paused_)
      set_paused(true);
    if (busy_keys_.count(message->key)) {
      waiting_[message->key].push_back(std::move(message));
      return;
    }
    start(std::move(message));
  }

  void start(std::shared_ptr<consumed_message> message) {
    busy_keys_.insert(message->key);
    auto self = shared_from_this();
    asio::co_spawn(strand_, owner_.handler_(*message), [self, message](std::exception_ptr failure) {
      if (failure) {
        try {
          std::rethrow_exception(failure);
        } catch (const std::exception& e) {
          log::get("kafka")->error("handler for {}[{}]@{} threw: {}", message->topic,
                                   message->partition, message->offset, e.what());
        }
      }
      asio::post(self->strand_, [self, message] { self->finish(*message); });
    });
  }

  void finish(const consumed_message& message) {
    for (auto& s : order_)
      if (s.offset == message.offset)
        s.done = true;
    --owner_.in_flight_;
    busy_keys_.erase(message.key);
    if (auto it = waiting_.find(message.key); it != waiting_.end()) {
      auto next = std::move(it->second.front());
      it->second.pop_front();
      if (it->second.empty())
        waiting_.erase(it);
      start(std::move(next));
    }
    std::int64_t committable = -1;
    while (!order_.empty() && order_.front().done) {
      committable = order_.front().offset;
      order_.pop_front();
    }
    if (committable >= 0 && !revoked_)
      store(committable + 1);
    if (paused_ && order_.size() < owner_.settings_.max_in_flight_per_partition / 2)
      set_paused(false);
  }

  void store(std::int64_t next_offset) {
    std::unique_ptr<RdKafka::TopicPartition> tp(
        RdKafka::TopicPartition::create(owner_.settings_.topic, partition_, next_offset));
    std::vector<RdKafka::TopicPartition*> list{tp.get()};
    auto code = owner_.consumer_->offsets_store(list);
    if (code != RdKafka::ERR_NO_ERROR)
      log::get("kafka")->debug("offset store {}[{}]={} refused: {}", owner_.settings_.topic,
                               partition_, next_offset, RdKafka::err2str(code));
  }

  void set_paused(bool pause) {
    std::unique_ptr<RdKafka::TopicPartition> tp(
        RdKafka::TopicPartition::create(owner_.settings_.topic, partition_));
    std::vector<RdKafka::TopicPartition*> list{tp.get()};
    if (pause)
      owner_.consumer_->pause(list);
    else
      owner_.consumer_->resume(list);
    paused_ = pause;
  }

  partitioned_consumer& owner_;
  const int partition_;
  asio::strand<asio::thread_pool::executor_type> strand_;
  std::deque<slot> order_;
  std::set<std::string> busy_keys_;
  std::map<std::string, std::deque<std::shared_ptr<consumed_message>>> waiting_;
  bool paused_ = false;
  bool revoked_ = false;
};

// Eager rebalancing: on revocation, lanes stop storing offsets (the new owner of the
// partition starts from the last committed offset; redelivered messages are idempotent).
class partitioned_consumer::rebalancer final : public RdKafka::RebalanceCb {
 public:
  explicit rebalancer(partitioned_consumer& owner) : owner_(owner) {}
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    auto logger = log::get("kafka");
    owner_.committed_at_assignment_.clear();
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      std::string names;
      for (auto* p : partitions)
        names += fmt::format(" {}[{}]", p->topic(), p->partition());
      logger->info("{} assigned:{}", owner_.settings_.topic, names);
      consumer->assign(partitions);
    } else {
      owner_.revoke_all();
      consumer->unassign();
    }
  }

 private:
  partitioned_consumer& owner_;
};

partitioned_consumer::partitioned_consumer(consumer_settings settings, asio::thread_pool& workers,
                                           handler h)
    : settings_(std::move(settings)),
      workers_(workers),
      handler_(std::move(h)),
      rebalancer_(std::make_unique<rebalancer>(*this)) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  auto set = [&](const std::string& key, const std::string& value) {
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK)
      throw kafka_error(fmt::format("consumer {}={}: {}", key, value, err));
  };
  set("bootstrap.servers", settings_.bootstrap_servers);
  set("group.id", settings_.group_id);
  set("client.id", "order-pipeline-" + settings_.topic);
  set("auto.offset.reset", "earliest");
  // Offsets are stored by the lanes once a message's effect is durable; the background
  // commit then sends what was stored.
  set("enable.auto.offset.store", "false");
  set("enable.auto.commit", "true");
  set("auto.commit.interval.ms", "1000");
  // The broker answers a waiting fetch as soon as a message is appended, so the wait costs no
  // latency while messages flow; when nothing happens, a 10 ms wait had each stage's consumer
  // fetch 100 times a second (about a third of a core of the broker, idle). Not longer: a
  // partition resumed after a pause is fetched once the fetch in flight comes back.
  set("fetch.wait.max.ms", "100");
  set("session.timeout.ms", "10000");
  set("heartbeat.interval.ms", "1000");
  if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(rebalancer_.get()), err) !=
      RdKafka::Conf::CONF_OK)
    throw kafka_error("consumer rebalance_cb: " + err);
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer_)
    throw kafka_error("cannot create consumer: " + err);
}

partitioned_consumer::~partitioned_consumer() {
  stop(std::chrono::milliseconds(0));
}

void partitioned_consumer::start() {
  auto code = consumer_->subscribe({settings_.topic});
  if (code != RdKafka::ERR_NO_ERROR)
    throw kafka_error(fmt::format("subscribe {}: {}", settings_.topic, RdKafka::err2str(code)));
  poller_ = std::thread([this] { poll_loop(); });
}

std::shared_ptr<partitioned_consumer::lane> partitioned_consumer::lane_for(int partition) {
  std::lock_guard lock(lanes_mutex_);
  auto& l = lanes_[partition];
  if (!l)
    l = std::make_shared<lane>(*this, partition);
  return l;
}

void partitioned_consumer::revoke_all() {
  std::lock_guard lock(lanes_mutex_);
  for (auto& [partition, l] : lanes_)
    l->revoke();
  lanes_.clear();
}

std::vector<partitioned_consumer::partition_lag> partitioned_consumer::lag() const {
  std::lock_guard lock(lag_mutex_);
  return lag_;
}

void partitioned_consumer::measure_lag() {
  std::vector<RdKafka::TopicPartition*> assigned;
  if (consumer_->assignment(assigned) != RdKafka::ERR_NO_ERROR)
    return;
  consumer_->position(assigned);
  // Until a partition's first message since the assignment is consumed, its position is
  // unknown; it starts at the group's committed offset. Counting from the log's start would
  // report everything ever consumed as lag after every restart.
  std::vector<RdKafka::TopicPartition*> query;
  for (auto* tp : assigned)
    if (tp->offset() < 0 && !committed_at_assignment_.count(tp->partition()))
      query.push_back(RdKafka::TopicPartition::create(tp->topic(), tp->partition()));
  if (!query.empty()) {
    // One round trip per assignment; a partition nobody else consumes keeps its offset.
    if (consumer_->committed(query, 1000) == RdKafka::ERR_NO_ERROR)
      for (auto* tp : query)
        if (tp->err() == RdKafka::ERR_NO_ERROR)
          committed_at_assignment_[tp->partition()] = tp->offset();
    RdKafka::TopicPartition::destroy(query);
  }
  std::vector<partition_lag> measured;
  for (auto* tp : assigned) {
    int64_t low = 0, high = 0;
    // Cached watermarks from the last fetch: no broker round trip on the poll thread.
    if (consumer_->get_watermark_offsets(tp->topic(), tp->partition(), &low, &high) !=
            RdKafka::ERR_NO_ERROR ||
        high < 0)
      continue;
    std::int64_t position = tp->offset();
    if (position < 0) {
      auto it = committed_at_assignment_.find(tp->partition());
      if (it == committed_at_assignment_.end())
        continue;  // not known yet: no figure rather than a wrong one
      // No committed offset: the group starts at the log's start (auto.offset.reset).
      position = it->second >= 0 ? it->second : low;
    }
    auto lag = std::max<std::int64_t>(0, high - position);
    measured.push_back({tp->topic(), tp->partition(), lag});
    metrics::global()
        .get_gauge("kafka_consumer_lag_records", "Messages not yet consumed, per partition.",
                   {{"topic", tp->topic()}, {"partition", std::to_string(tp->partition())}})
        .set(static_cast<double>(lag));
  }
  RdKafka::TopicPartition::destroy(assigned);
  std::lock_guard lock(lag_mutex_);
  lag_ = std::move(measured);
}

void partitioned_consumer::poll_loop() {
  auto logger = log::get("kafka");
  auto last_lag = std::chrono::steady_clock::now();
  while (!stopping_) {
    if (std::chrono::steady_clock::now() - last_lag > std::chrono::seconds(2)) {
      measure_lag();
      last_lag = std::chrono::steady_clock::now();
    }
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(100));
    switch (msg->err()) {
      case RdKafka::ERR_NO_ERROR: {
        auto m = std::make_shared<consumed_message>();
        m->topic = msg->topic_name();
        m->partition = msg->partition();
        m->offset = msg->offset();
        if (msg->key())
          m->key = *msg->key();
        m->value.assign(static_cast<const char*>(msg->payload()), msg->len());
        if (auto* headers = msg->headers())
          for (const auto& h : headers->get_all())
            m->headers[h.key()] = std::string(static_cast<const char*>(h.value()), h.value_size());
        lane_for(m->partition)->enqueue(std::move(m));
        break;
      }
      case RdKafka::ERR__TIMED_OUT:
      case RdKafka::ERR__PARTITION_EOF:
        break;
      default:
        logger->debug("{} consumer: {}", settings_.topic, msg->errstr());
    }
  }
}

void partitioned_consumer::stop(std::chrono::milliseconds drain) {
  if (!consumer_ || stopping_.exchange(true))
    return;
  if (poller_.joinable())
    poller_.join();
  auto deadline = std::chrono::steady_clock::now() + drain;
  while (in_flight_ > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (in_flight_ > 0)
    log::get("kafka")->warn("{}: leaving {} messages unfinished; they will be redelivered",
                            settings_.topic, in_flight_.load());
  revoke_all();
  consumer_->close();  // commits the stored offsets and leaves the group
}

}  // namespace op::kafka
