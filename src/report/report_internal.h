/* Helpers the report's files share (text.c defines them). */
#ifndef CLEVAL_REPORT_INTERNAL_H
#define CLEVAL_REPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cleval/report.h"

/* The display name of class k: its name, or its label number written into buf. */
const char *report_class_label(const cleval_class_names *names, uint32_t k, char *buf, size_t size);

/* Characters (UTF-8 code points) in `s`, for padding columns of names. */
size_t report_display_width(const char *s);

#endif
