/* test_repl_pty.c - drives the `ppl` REPL through a pseudo-terminal as a
 * person would: a function over several lines, a call, an error that leaves
 * the session running, Ctrl-C interrupting a runaway loop, a distribution's
 * log density, and Ctrl-D leaving with status 0.  Every read has a timeout,
 * so a hung REPL fails the test instead of hanging it.
 *
 * The binary comes from the PPL_BIN environment variable (set by CMake). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int master = -1;
static pid_t child = -1;
static char seen[1 << 16];
static size_t nseen;

/* Read until `want` appears after position *from (advanced past it), or
 * the timeout passes. */
static int expect(const char *want, size_t *from, int timeout_ms) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        seen[nseen] = 0;
        char *hit = strstr(seen + *from, want);
        if (hit) {
            *from = (size_t)(hit - seen) + strlen(want);
            return 1;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms > timeout_ms) return 0;
        struct pollfd p = {master, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            ssize_t k = read(master, seen + nseen, sizeof seen - 1 - nseen);
            if (k > 0) nseen += (size_t)k;
            else if (k < 0 && errno != EINTR && errno != EAGAIN) return 0;
        }
    }
}

static void send_text(const char *s) { ck_assert(write(master, s, strlen(s)) == (ssize_t)strlen(s)); }

#define EXPECT(s)                                                                          \
    ck_assert_msg(expect(s, &pos, 10000), "REPL output lacks \"%s\"; it printed:\n%s", s, seen + pos)

START_TEST(repl_session) {
    const char *bin = getenv("PPL_BIN");
    if (!bin) bin = "build/ppl";
    char home[] = "/tmp/ppl_repl_home_XXXXXX";
    ck_assert(mkdtemp(home) != NULL);
    child = forkpty(&master, NULL, NULL, NULL);
    ck_assert(child >= 0);
    if (child == 0) {
        setenv("HOME", home, 1);
        setenv("TERM", "dumb", 1);
        execl(bin, "ppl", (char *)NULL);
        _exit(127);
    }
    size_t pos = 0;
    EXPECT("ppl> ");
    send_text("def f(x) {\n");
    EXPECT("...> ");
    send_text("  return x * 2\n");
    EXPECT("...> ");
    send_text("}\n");
    EXPECT("ppl> ");
    send_text("f(21)\n");
    EXPECT("42");
    EXPECT("ppl> ");
    send_text("f(undefined_name)\n");
    EXPECT("unknown name \"undefined_name\"");
    EXPECT("ppl> ");
    send_text("1 + 1\n");
    EXPECT("2");
    EXPECT("ppl> ");
    /* Ctrl-C interrupts a runaway loop and the session goes on */
    send_text("while true { z = 1 }\n");
    usleep(300000);
    send_text("\x03");
    EXPECT("interrupted");
    EXPECT("ppl> ");
    send_text("Normal(0, 1).log_prob(0.0)\n");
    EXPECT("-0.91893853");
    EXPECT("ppl> ");
    /* let libedit put the terminal in raw mode first, as a person's typing
     * speed does; a ^D that arrives in cooked mode is the kernel's EOF */
    usleep(300000);
    send_text("\x04"); /* Ctrl-D */
    int status = 0;
    for (int i = 0; i < 100; i++) {
        pid_t r = waitpid(child, &status, WNOHANG);
        if (r == child) break;
        usleep(50000);
        if (i == 99) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            seen[nseen] = 0;
            ck_abort_msg("the REPL did not exit on Ctrl-D; it printed:\n%s", seen);
        }
    }
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    close(master);
    char hist[256];
    snprintf(hist, sizeof hist, "%s/.ppl_history", home);
    ck_assert_msg(access(hist, R_OK) == 0, "no history file written");
    unlink(hist);
    rmdir(home);
}
END_TEST

int main(void) {
    Suite *s = suite_create("repl");
    TCase *tc = tcase_create("pty");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, repl_session);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
