/* Numbers of the reports as text. Internal to src/report. */
#ifndef CLEVAL_REPORT_DECIMAL_H
#define CLEVAL_REPORT_DECIMAL_H

#include <stddef.h>

/* The shortest decimal that reads back as exactly `value` (Python's repr; integers without an
 * exponent), "null" for NaN and infinities, which JSON cannot hold. */
void report_exact_decimal(double value, char *out, size_t size);

#endif
