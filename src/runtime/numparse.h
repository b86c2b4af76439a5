/* numparse.h - decimal text to double, fast and bit-identical to strtod.
 *
 * Data files are mostly numbers, and glibc's strtod costs some 1,000
 * instructions for a 17-digit one.  rt_parse_number reads a number in
 * JSON's grammar in one pass and converts it exactly (Clinger's fast path,
 * then the Eisel-Lemire algorithm, then strtod for the rare rest: more
 * than 19 significant digits, subnormals, overflow, halfway ambiguity). */
#ifndef PPL_RUNTIME_NUMPARSE_H
#define PPL_RUNTIME_NUMPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    RT_NUM_OK = 0,
    RT_NUM_NONE,         /* no digit (nor '-' and a digit) at the start */
    RT_NUM_LEADING_ZERO, /* "012": a JSON number cannot start with 0 */
    RT_NUM_MALFORMED,    /* '-' without digits, "1.", "1e", "1e+" */
    RT_NUM_OOM           /* the strtod fallback could not copy a long number */
};

/* Read -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at the start of
 * [s, end) (no NUL needed): RT_NUM_OK with *v = what strtod gives for that
 * text (bit for bit: -0, subnormals, +-inf past the float64 range) and
 * *stop just past it; else one of the codes above and *stop = s.  Text
 * after the number is not looked at. */
int rt_parse_number(const char *s, const char *end, double *v, const char **stop);

/* The conversion alone: the value of m * 10^e10 (negated when neg),
 * correctly rounded, when it can be decided without big arithmetic;
 * false otherwise (then use strtod).  m is at most 19 digits. */
bool rt_decimal_to_double(uint64_t m, int64_t e10, bool neg, double *v);

/* strtod in the "C" locale whatever locale the host program set (under
 * de_DE, say, plain strtod would stop "0.5" at "0"): the calling thread's
 * locale is switched for the call only, other threads are untouched. */
double rt_strtod_c(const char *s, char **endp);

#endif
