// payment-gateway-simulator: an in-memory card payment gateway for tests and benchmarks,
// with settable latency, decline rules and outages. See README.md beside this file.

#include <charconv>
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "gateway_state.hpp"
#include "platform/runtime/asio.hpp"
#include "simulator_server.hpp"

namespace {

struct options {
  std::string address = "127.0.0.1";
  long port = 8090;
  long latency_ms = 0;
  long jitter_ms = 0;
  long threads = 2;
};

void print_usage(std::ostream& out) {
  out << "usage: payment-gateway-simulator [--port N] [--address A] [--latency-ms N]\n"
         "                                 [--jitter-ms N] [--threads N]\n"
         "  --port N        TCP port (default 8090; 0 picks a free one)\n"
         "  --address A     address to bind (default 127.0.0.1)\n"
         "  --latency-ms N  delay added to every /v1 call (default 0)\n"
         "  --jitter-ms N   extra random delay of 0..N ms per /v1 call (default 0)\n"
         "  --threads N     I/O threads (default 2)\n"
         "Prints \"listening on ADDRESS:PORT\" as its first line once it accepts.\n";
}

bool parse_number(const char* text, long min, long max, long& out) {
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, out);
  return ec == std::errc() && ptr == end && out >= min && out <= max;
}

}  // namespace

int main(int argc, char** argv) {
  options opts;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      print_usage(std::cout);
      return 0;
    }
    long* number = arg == "--port"         ? &opts.port
                   : arg == "--latency-ms" ? &opts.latency_ms
                   : arg == "--jitter-ms"  ? &opts.jitter_ms
                   : arg == "--threads"    ? &opts.threads
                                           : nullptr;
    if ((number || arg == "--address") && i + 1 < argc) {
      const char* value = argv[++i];
      if (!number) {
        opts.address = value;
        continue;
      }
      long max = arg == "--port" ? 65535 : arg == "--threads" ? 256 : 3'600'000;
      long min = arg == "--threads" ? 1 : 0;
      if (parse_number(value, min, max, *number))
        continue;
      std::cerr << "invalid value for " << arg << ": " << value << "\n";
    } else {
      std::cerr << "unknown or incomplete argument: " << arg << "\n";
    }
    print_usage(std::cerr);
    return 64;
  }

  using namespace op::payment_simulator;
  fault_settings initial;
  initial.latency_ms = opts.latency_ms;
  initial.jitter_ms = opts.jitter_ms;
  gateway_state state(initial);

  op::asio::io_context ioc(static_cast<int>(opts.threads));
  simulator_server server(ioc, state);
  std::uint16_t port = 0;
  try {
    port = server.start(opts.address, static_cast<std::uint16_t>(opts.port));
  } catch (const std::exception& e) {
    std::cerr << "cannot listen on " << opts.address << ":" << opts.port << ": " << e.what()
              << "\n";
    return 1;
  }
  // Whoever started us waits for this line to learn the port.
  std::cout << "listening on " << opts.address << ":" << port << std::endl;

  op::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&ioc](const boost::system::error_code&, int) { ioc.stop(); });

  std::vector<std::thread> threads;
  for (long i = 1; i < opts.threads; ++i)
    threads.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& thread : threads)
    thread.join();
  return 0;
}
