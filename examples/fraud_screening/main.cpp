// fraud-screening: order-pipeline with a fraud screen between reserve and pay, and a
// notification recorded for every confirmed order. See README.md.

#include <chrono>
#include <cstring>
#include <iostream>
#include <order_pipeline/pipeline.hpp>
#include <pqxx/pqxx>
#include <thread>

#include "fraud_settings.hpp"
#include "notification_handler.hpp"
#include "schema.hpp"
#include "screening_step.hpp"

namespace {

// Only serving needs the tables: --help-config and --check-config run without a database.
bool serves(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    for (const char* flag : {"--help", "-h", "--help-config", "--check-config"})
      if (!std::strcmp(argv[i], flag))
        return false;
  return true;
}

// Creates the example's tables, waiting up to a minute for PostgreSQL as the pipeline does
// at start. Replicas starting together take turns (the advisory lock): concurrent CREATE
// TABLE IF NOT EXISTS can still collide on the catalog's unique keys.
bool create_tables(const std::string& database_url) {
  for (int attempt = 1;; ++attempt) {
    try {
      pqxx::connection connection(database_url);
      pqxx::work tx(connection);
      tx.exec("SELECT pg_advisory_xact_lock(hashtext('fraud-screening schema'))");
      tx.exec(fraud_screening::schema_sql);
      tx.commit();
      return true;
    } catch (const pqxx::broken_connection& e) {
      if (attempt == 60) {
        std::cerr << "fraud-screening: PostgreSQL unavailable: " << e.what() << "\n";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));
    } catch (const std::exception& e) {
      std::cerr << "fraud-screening: creating its tables failed: " << e.what() << "\n";
      return false;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // --help-config and --check-config need neither the database nor the example's settings:
  // the defaults declare the same step, with the same keys.
  fraud_screening::fraud_settings settings;
  if (serves(argc, argv)) {
    try {
      settings = fraud_screening::fraud_settings::from_environment();
    } catch (const std::invalid_argument& e) {
      std::cerr << "configuration error: " << e.what() << "\n";
      return 78;  // as the pipeline answers a bad configuration
    }
    if (!create_tables(settings.database_url))
      return 1;
  }

  order_pipeline::pipeline shop;
  shop.insert_after("reserve", fraud_screening::screening_step(settings));
  shop.add_handler(fraud_screening::notification_handler());
  return shop.run(argc, argv);
}
