#pragma once
// Records one notification per confirmed order in order_notifications, for a mailer to send.

#include <order_pipeline/event_handlers.hpp>

namespace fraud_screening {

order_pipeline::event_handler notification_handler();

}  // namespace fraud_screening
