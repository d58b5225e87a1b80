# Turns store/migrations/NNNN_name.sql into a C++ table compiled into the binary, so that
# `codepilot migrate` needs no files beside it. Run by add_custom_command (src/CMakeLists.txt).
string(REPLACE "|" ";" files "${IN}")
list(SORT files)
set(text "// Generated from src/store/migrations/*.sql by embed_migrations.cmake; do not edit.\n")
foreach(file IN LISTS files)
    get_filename_component(name ${file} NAME_WE)
    string(REGEX MATCH "^[0-9]+" number ${name})
    math(EXPR version "${number}")
    file(READ ${file} sql)
    string(APPEND text "{${version}, \"${name}\", R\"__sql__(${sql})__sql__\"},\n")
endforeach()
file(WRITE ${OUT}.tmp "${text}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
