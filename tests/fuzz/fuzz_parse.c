/* fuzz_parse.c - libFuzzer target for the front end: any bytes go through
 * the scanner, the parser and (when they parse) the lowering checks.  It
 * must never crash, hang, leak or trip a sanitizer; errors are fine. */
#include <stddef.h>
#include <stdint.h>
#include "ppl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ppl_state *S; /* one state for the whole run: checking is pure */
    if (!S) S = ppl_open(NULL);
    if (!S || size > 1 << 16) return 0;
    char *text = __builtin_alloca(size + 1);
    __builtin_memcpy(text, data, size);
    text[size] = 0;
    /* embedded NULs end the C string; the scanner sees the prefix */
    ppl_check_string(S, "fuzz.ppl", text);
    (void)ppl_errmsg(S);
    (void)ppl_incomplete(text);
    return 0;
}
