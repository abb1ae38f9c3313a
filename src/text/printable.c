/* Printable copies of untrusted text (see printable.h). */
#include "printable.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Length of the valid UTF-8 sequence at `s` (1-4) and its code point, or 0 when the bytes are
 * not one (overlong forms, surrogates and values above U+10FFFF are invalid, as in RFC 3629). */
static size_t utf8_sequence(const unsigned char *s, uint32_t *code_point)
{
    unsigned char c = s[0];
    size_t length;
    uint32_t value, min;
    if (c < 0x80) {
        *code_point = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        length = 2, value = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3, value = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4, value = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < length; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the terminating NUL */
        value = value << 6 | (s[i] & 0x3F);
    }
    if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 0;
    *code_point = value;
    return length;
}

static bool is_escaped_code_point(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* Appends `piece` (length n) whole or not at all, so `out` is never cut inside a character or
 * an escape; `*used` counts what the whole text needs. */
static void append(char *out, size_t size, size_t *used, size_t *kept, const char *piece, size_t n)
{
    if (*kept == *used && *used + n < size) {
        for (size_t i = 0; i < n; i++)
            out[*used + i] = piece[i];
        *kept += n;
    }
    *used += n;
}

size_t cleval_text_printable(const char *in, bool keep_newlines, char *out, size_t size)
{
    size_t used = 0, kept = 0;
    const unsigned char *s = (const unsigned char *)in;
    while (*s) {
        uint32_t cp;
        size_t length = utf8_sequence(s, &cp);
        char escape[8];
        if (length == 0) {
            snprintf(escape, sizeof escape, "\\x%02x", *s);
            append(out, size, &used, &kept, escape, 4);
            s++;
            continue;
        }
        bool control = cp < 0x20 || cp == 0x7F;
        if (control && !(keep_newlines && (cp == '\n' || cp == '\t'))) {
            snprintf(escape, sizeof escape, "\\x%02x", (unsigned)cp);
            append(out, size, &used, &kept, escape, 4);
        } else if (is_escaped_code_point(cp)) {
            snprintf(escape, sizeof escape, "\\u%04x", (unsigned)cp);
            append(out, size, &used, &kept, escape, 6);
        } else {
            append(out, size, &used, &kept, (const char *)s, length);
        }
        s += length;
    }
    if (size) out[kept] = '\0';
    return used;
}

char *cleval_text_printable_dup(const char *in)
{
    size_t need = cleval_text_printable(in, false, NULL, 0) + 1;
    char *out = malloc(need);
    if (out) cleval_text_printable(in, false, out, need);
    return out;
}
