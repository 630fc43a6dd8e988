#include "support/simulator_process.hpp"

#include <fcntl.h>
#include <rapidjson/document.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>

#include "support/http_client.hpp"
#include "support/test_environment.hpp"

namespace op::test {
namespace {
std::int64_t number_field(const std::string& json, const std::string& field) {
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  REQUIRE(doc.IsObject());
  REQUIRE(doc.HasMember(field.c_str()));
  return doc[field.c_str()].GetInt64();
}
}  // namespace

simulator_process::simulator_process(unsigned short port) {
  // A port of the tests' own range, not an ephemeral one: a test that restarts the simulator
  // on its port must find it free.
  const std::string port_arg = std::to_string(port ? port : free_port());
  int out[2];
  REQUIRE(::pipe(out) == 0);
  pid_ = ::fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    // Dies with the test, and holds none of the test runner's pipes: an orphan that kept
    // CTest's output pipe open would hang the run.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDERR_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    ::execl(PAYMENT_GATEWAY_SIMULATOR_BINARY, "payment-gateway-simulator", "--port",
            port_arg.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  ::close(out[1]);
  std::string line;
  char c;
  while (::read(out[0], &c, 1) == 1 && c != '\n')
    line += c;
  ::close(out[0]);
  auto colon = line.rfind(':');
  REQUIRE(colon != std::string::npos);
  port_ = static_cast<unsigned short>(std::stoi(line.substr(colon + 1)));
}

simulator_process::~simulator_process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

std::int64_t simulator_process::order(const std::string& order_id, const std::string& field) const {
  auto reply = http_get(port_, "/v1/orders/" + order_id);
  if (reply.status == 404)
    return 0;
  REQUIRE(reply.status == 200);
  return number_field(reply.body, field);
}

std::int64_t simulator_process::stats(const std::string& field) const {
  auto reply = http_get(port_, "/v1/stats");
  REQUIRE(reply.status == 200);
  return number_field(reply.body, field);
}

void simulator_process::control(const std::string& json) const {
  REQUIRE(http_call(port_, "POST", "/control", json).status == 200);
}

}  // namespace op::test
