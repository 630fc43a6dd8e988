# Writes OUTPUT: a C++ source defining op::pg::embedded_migrations() from the *.sql files of
# SQL_DIR, sorted by name, so the server binary carries its own schema.
file(GLOB files RELATIVE "${SQL_DIR}" "${SQL_DIR}/*.sql")
list(SORT files)
set(body "")
foreach(f IN LISTS files)
  file(READ "${SQL_DIR}/${f}" sql)
  string(APPEND body "      {\"${f}\", R\"sql_migration(${sql})sql_migration\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp" "// Generated from sql/ by cmake/embed_sql.cmake; do not edit.
#include \"platform/pg/migrator.hpp\"

namespace op::pg {
const std::vector<migration>& embedded_migrations() {
  static const std::vector<migration> migrations = {
${body}  };
  return migrations;
}
}  // namespace op::pg
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
