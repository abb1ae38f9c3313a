/* Text from files (class names, ONNX names, paths) made safe to print: valid UTF-8 with every
 * control character written out as an escape, so a hostile name can neither drive the user's
 * terminal (escape sequences, window titles, carriage returns) nor break a report's one-line
 * messages or its JSON. Internal to libcleval. */
#ifndef CLEVAL_TEXT_PRINTABLE_H
#define CLEVAL_TEXT_PRINTABLE_H

#include <stdbool.h>
#include <stddef.h>

/* Copies `in` (NUL-terminated) to `out` (capacity `size` >= 1, always NUL-terminated, cut at a
 * character boundary when too small): bytes that are not valid UTF-8 and the C0 controls and
 * DEL become `\xHH`; the C1 controls and the bidirectional overrides (U+202A-U+202E,
 * U+2066-U+2069) become `\uHHHH`. With `keep_newlines`, '\n' and '\t' pass through (multi-line
 * logs such as build logs). Returns the length `out` would need, excluding the NUL, like
 * snprintf. */
size_t cleval_text_printable(const char *in, bool keep_newlines, char *out, size_t size);

/* The same into a new heap string (NULL when out of memory). */
char *cleval_text_printable_dup(const char *in);

#endif
