#pragma once
// The example's own tables (schema.sql, compiled in).

namespace fraud_screening {

extern const char* const schema_sql;

}  // namespace fraud_screening
