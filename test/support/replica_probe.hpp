#pragma once
// What a running replica says about itself over its probe endpoints: a sample of GET /metrics
// and the components and stages of GET /actuator/health.

#include <optional>
#include <string>
#include <vector>

namespace op::test {

// The value of one sample, e.g. `pipeline_stage_enabled{stage="pay"}`; nullopt when absent.
std::optional<double> find_metric_sample(unsigned short port, const std::string& series);
// The same, 0 when absent (a counter nothing has counted yet).
double metric_sample(unsigned short port, const std::string& series);

// The stages the replica's health lists (components.stages.details.enabled).
std::vector<std::string> enabled_stages(unsigned short port);

// True when GET /actuator/health shows the component, e.g. "paymentGateway".
bool has_health_component(unsigned short port, const std::string& component);

}  // namespace op::test
