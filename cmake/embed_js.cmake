# Turns a JavaScript file into a C header holding it as one string:
#   cmake -DINPUT=<file.js> -DOUTPUT=<file.h> -DNAME=<C name> -P embed_js.cmake
# The module serves the script from this string; the header is committed
# too (for the apxs build), and a test checks that it is up to date.
file(READ "${INPUT}" text)
string(REGEX REPLACE "\n$" "" text "${text}")
string(REPLACE "\\" "\\\\" text "${text}")
string(REPLACE "\"" "\\\"" text "${text}")
# no trigraphs: "??x" would be one in C
string(REPLACE "??" "?\\?" text "${text}")
string(REPLACE "\n" "\\n\"\n    \"" text "${text}")
string(TOUPPER "${NAME}_H" guard)
get_filename_component(source "${INPUT}" NAME)
file(WRITE "${OUTPUT}"
"/* Generated from src/js/${source} by cmake/embed_js.cmake: edit that file, not this one. */
/* clang-format off */
#ifndef ${guard}
#define ${guard}

static const char ${NAME}[] =
    \"${text}\\n\";

#endif
")
