/* fuzz_parse.c - libFuzzer target for the front end: any bytes go through
 * rt_parse, the diagnostics are rendered, and everything is freed.  Crashes,
 * leaks, sanitizer reports and slow inputs are the bugs it looks for.
 *   clang -fsanitize=fuzzer,address,undefined ... ; ./fuzz_parse tests/fuzz/corpus */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "../../src/runtime/ast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rt_source *src = rt_source_new("fuzz.ppl", (const char *)data, size);
    if (!src) return 0;
    rt_diaglist diags;
    rt_diaglist_init(&diags);
    ast_program *p = rt_parse(src, &diags);
    if (p) {
        char *dump = ast_dump(p->body);
        free(dump);
    }
    char *text = rt_diaglist_format(&diags);
    free(text);
    (void)rt_parse_incomplete(src->text);
    ast_program_free(p);
    rt_diaglist_free(&diags);
    rt_source_release(src);
    return 0;
}
