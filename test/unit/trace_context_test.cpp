#include "platform/log/trace_context.hpp"

#include <catch2/catch.hpp>

using namespace op::log;

TEST_CASE("traceparent headers are read by the W3C rules", "[trace]") {
  CHECK(trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") ==
        "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK_FALSE(trace_id_of(""));
  CHECK_FALSE(trace_id_of("not-a-trace"));
  CHECK_FALSE(trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  CHECK_FALSE(trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  CHECK_FALSE(trace_id_of("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK_FALSE(trace_id_of("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  auto made = make_traceparent("4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(trace_id_of(made) == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(new_trace_id().size() == 32);
  CHECK(new_trace_id() != new_trace_id());
}

TEST_CASE("the log context is per scope and restored afterwards", "[trace]") {
  CHECK(current_context().order_id.empty());
  {
    scoped_context outer("ORD-1", "t1");
    CHECK(current_context().order_id == "ORD-1");
    {
      scoped_context inner("ORD-2", "t2");
      CHECK(current_context().trace_id == "t2");
    }
    CHECK(current_context().trace_id == "t1");
  }
  CHECK(current_context().order_id.empty());
}
