# Turns src/guard/rules.toml into a C++ string literal compiled into the binary, so that the
# guard's built-in rules need no file beside it. Run by add_custom_command (src/CMakeLists.txt).
file(READ ${IN} rules)
set(text "// Generated from src/guard/rules.toml by embed_rules.cmake; do not edit.\nR\"__rules__(${rules})__rules__\"\n")
file(WRITE ${OUT}.tmp "${text}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
