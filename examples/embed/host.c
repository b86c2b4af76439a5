/* examples/embed/host.c - a host program that embeds ppl through
 * include/ppl.h alone: it loads a good model and a bad one, gets the bad
 * one's error message (with file, line, column and caret) as a value, and
 * keeps using the same state afterwards.
 *
 * Usage: embed_host GOOD.ppl BAD.ppl
 * Exit status 0 when the good file ran, the bad one failed with a located
 * message, and the state still works. */
#include <stdio.h>
#include <string.h>
#include "ppl.h"

static void to_stdout(void *ud, const char *text, size_t len) {
    (void)ud;
    fwrite(text, 1, len, stdout);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s GOOD.ppl BAD.ppl\n", argv[0]);
        return 2;
    }
    ppl_options opts = ppl_default_options();
    opts.out = to_stdout;
    ppl_state *S = ppl_open(&opts);
    if (!S) {
        fprintf(stderr, "ppl_open failed\n");
        return 1;
    }
    int failures = 0;
    if (ppl_load_file(S, argv[1]) != PPL_OK) {
        fprintf(stderr, "good model failed: %s\n", ppl_errmsg(S));
        failures++;
    }
    ppl_status st = ppl_load_file(S, argv[2]);
    const char *msg = ppl_errmsg(S);
    if (st == PPL_OK || !strstr(msg, "-->") || !strchr(msg, '^')) {
        fprintf(stderr, "bad model: expected a located error, got status %d: %s\n", st, msg);
        failures++;
    } else {
        printf("bad model rejected as expected (status %d):\n%s\n", st, msg);
    }
    /* the state is still usable after the error */
    double r = 0, x[1] = {20.0};
    if (ppl_load_string(S, "<host>", "def double(x) { return 2 * x }") != PPL_OK ||
        ppl_call(S, "double", 1, x, &r) != PPL_OK || r != 40.0) {
        fprintf(stderr, "state unusable after an error: %s\n", ppl_errmsg(S));
        failures++;
    }
    /* misuse is an error, not a crash */
    if (ppl_load_file(NULL, "x.ppl") != PPL_ERR_MISUSE) failures++;
    ppl_close(S);
    printf("%s\n", failures ? "FAILED" : "embed host: all checks passed");
    return failures ? 1 : 0;
}
