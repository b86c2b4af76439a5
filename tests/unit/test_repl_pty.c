/* test_repl_pty.c - drives the `ppl` command as a person and a script
 * would.  On a pseudo-terminal: a function over several lines, a call, an
 * error that leaves the session running, Ctrl-C discarding half-typed input
 * and interrupting a runaway loop, a distribution's log density, and Ctrl-D
 * leaving with status 0.  Through pipes: the REPL without a terminal, and
 * the subcommands' output, files and exit statuses.  Every read has a
 * timeout, so a hung process fails the test instead of hanging it.
 *
 * The binary comes from the PPL_BIN environment variable (set by CMake) or
 * argv[1]; default build/ppl.  Runs from the repository root. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *ppl_bin = "build/ppl";

static long elapsed_ms(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Wait for the child to exit within timeout_ms; kills it otherwise and
 * returns -1.  Returns the exit status, or 1000 + signal. */
static int wait_exit(pid_t pid, int timeout_ms) {
    int status = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (elapsed_ms(&t0) > timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(20000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

/* ---- the terminal session ---------------------------------------------- */

static int master = -1;
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
        if (elapsed_ms(&t0) > timeout_ms || nseen + 1 >= sizeof seen) return 0;
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

/* After a prompt, libedit switches the terminal to raw mode; a control
 * character that arrives before that is the kernel's (^D = EOF, ^C =
 * SIGINT from the line discipline), as fast typing would not be. */
static void settle(void) { usleep(200000); }

START_TEST(repl_session) {
    char home[] = "/tmp/ppl_repl_home_XXXXXX";
    ck_assert(mkdtemp(home) != NULL);
    nseen = 0;
    pid_t child = forkpty(&master, NULL, NULL, NULL);
    ck_assert(child >= 0);
    if (child == 0) {
        setenv("HOME", home, 1);
        setenv("TERM", "dumb", 1);
        execl(ppl_bin, "ppl", (char *)NULL);
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
    /* Ctrl-C at a continuation prompt drops the unfinished input */
    send_text("y = (1 +\n");
    EXPECT("...> ");
    settle();
    send_text("\x03");
    EXPECT("ppl> ");
    send_text("40 + 2\n");
    EXPECT("42");
    EXPECT("ppl> ");
    /* an unknown :command is an error, not a way out */
    send_text(":quux\n");
    EXPECT("unknown command \":quux\"");
    EXPECT("ppl> ");
    send_text(":help\n");
    EXPECT(":load FILE");
    EXPECT("ppl> ");
    /* Ctrl-C interrupts a runaway loop and the session goes on */
    send_text("while true { z = 1 }\n");
    /* a Ctrl-C that beats the evaluation to its start only clears the
     * (empty) line, so a slow machine gets a few more */
    int interrupted = 0;
    for (int i = 0; i < 5 && !interrupted; i++) {
        usleep(300000);
        send_text("\x03");
        interrupted = expect("interrupted", &pos, 2000);
    }
    ck_assert_msg(interrupted, "Ctrl-C did not interrupt the loop; the REPL printed:\n%s", seen);
    EXPECT("ppl> ");
    send_text("Normal(0, 1).log_prob(0.0)\n");
    EXPECT("-0.91893853");
    EXPECT("ppl> ");
    settle();
    send_text("\x04"); /* Ctrl-D */
    int status = wait_exit(child, 5000);
    seen[nseen] = 0;
    ck_assert_msg(status == 0, "exit status %d after Ctrl-D; the REPL printed:\n%s", status, seen);
    close(master);
    char hist[256];
    snprintf(hist, sizeof hist, "%s/.ppl_history", home);
    ck_assert_msg(access(hist, R_OK) == 0, "no history file written");
    unlink(hist);
    rmdir(home);
}
END_TEST

/* ---- commands through pipes -------------------------------------------- */

typedef struct run_result {
    int status;     /* exit status, 1000 + signal, -1 on timeout */
    char out[1 << 16], err[1 << 16];
} run_result;

static run_result res;

/* Run ppl with args (NULL-terminated) and stdin_text; fills res. */
static void run_ppl(const char *stdin_text, const char *const *args) {
    int in[2], out[2], err[2];
    ck_assert(pipe(in) == 0 && pipe(out) == 0 && pipe(err) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(in[1]);
        close(out[0]);
        close(err[0]);
        const char *argv[32] = {"ppl"};
        for (int i = 0; args[i] && i < 30; i++) argv[i + 1] = args[i];
        execv(ppl_bin, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    size_t n = stdin_text ? strlen(stdin_text) : 0;
    if (n) ck_assert(write(in[1], stdin_text, n) == (ssize_t)n);
    close(in[1]);
    size_t no = 0, ne = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds && elapsed_ms(&t0) < 30000) {
        if (poll(p, 2, 100) <= 0) continue;
        for (int i = 0; i < 2; i++) {
            if (!p[i].revents) continue;
            char *buf = i ? res.err : res.out;
            size_t *len = i ? &ne : &no;
            ssize_t k = read(p[i].fd, buf + *len, sizeof res.out - 1 - *len);
            if (k > 0) *len += (size_t)k;
            else {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0) close(p[i].fd);
    res.out[no] = res.err[ne] = 0;
    res.status = wait_exit(pid, 5000);
}

#define RUN(in, ...) run_ppl(in, (const char *const[]){__VA_ARGS__, NULL})
#define ASSERT_STATUS(want)                                                                        \
    ck_assert_msg(res.status == (want), "exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", res.status, \
                  want, res.out, res.err)
#define ASSERT_HAS(buf, s) ck_assert_msg(strstr(buf, s), "no \"%s\" in:\n%s", s, buf)

START_TEST(repl_without_terminal) {
    run_ppl("def g(x) {\n  return x + 1\n}\ng(1)\nprint(\"hi\")\n:help\n", (const char *const[]){NULL});
    ASSERT_STATUS(0);
    ck_assert_msg(strncmp(res.out, "2\nhi\n", 5) == 0, "stdout:\n%s", res.out);
    ck_assert_msg(!strstr(res.out, "ppl>"), "prompt printed without a terminal:\n%s", res.out);
    ck_assert_str_eq(res.err, "");
    /* an error is reported, the session goes on, and the status says so */
    run_ppl("x = nope\n3 * 3\n", (const char *const[]){NULL});
    ASSERT_STATUS(1);
    ASSERT_HAS(res.err, "unknown name \"nope\"");
    ck_assert_str_eq(res.out, "9\n");
    /* a bad HMM (a transition row summing to 0.7) is located at the argument
     * with a caret, and the session goes on with the corrected one */
    run_ppl("h = DiscreteHMM([0.5, 0.5], [[0.5, 0.5], [0.4, 0.3]], Normal([0.0, 1.0], 1.0))\n"
            "h = DiscreteHMM([0.5, 0.5], [[0.5, 0.5], [0.4, 0.6]], Normal([0.0, 1.0], 1.0))\n"
            "hmm_viterbi(h, [[1.0]])\n"
            "hmm_viterbi(h, [0.1, 2.0]).path\n",
            (const char *const[]){NULL});
    ASSERT_STATUS(1);
    ASSERT_HAS(res.err, "error: DiscreteHMM: trans rows must sum to 1, got 0.7 in row 1\n  --> <repl>:1:29\n");
    ASSERT_HAS(res.err, " |                             ^^^^^^^^^^^^^^^^^^^^^^^^\n");
    ASSERT_HAS(res.err, "error: hmm_viterbi: DiscreteHMM: the observed sequence must have shape [T], got [1, 1]");
    ck_assert_str_eq(res.out, "[0, 1]\n");
    /* a sequence no path explains (symbol 2 has probability 0 in both
     * states) is an error at y, as for hmm_marginals, and the session goes
     * on; a DiscreteHMM shows its parameters and its emission */
    run_ppl("h = DiscreteHMM([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]],\n"
            "  Categorical(probs=[[0.5, 0.5, 0.0], [0.1, 0.9, 0.0]]), duration=4)\n"
            "h\n"
            "hmm_viterbi(h, [0, 2, 1])\n"
            "hmm_marginals(h, [0, 2, 1])\n"
            "hmm_viterbi(h, [0, 1, 1]).path\n",
            (const char *const[]){NULL});
    ASSERT_STATUS(1);
    ASSERT_HAS(res.err, "error: hmm_viterbi: the sequence has probability 0 under the model\n"
                        "  --> <repl>:1:16\n");
    ASSERT_HAS(res.err, "error: hmm_marginals: the sequence has probability 0 under the model\n"
                        "  --> <repl>:1:18\n");
    ck_assert_str_eq(res.out, "DiscreteHMM([0.5, 0.5], [[0.9, 0.1],\n [0.2, 0.8]], "
                              "Categorical([[0.5, 0.5, 0],\n [0.1, 0.9, 0]]), duration=4)\n"
                              "[0, 0, 0]\n");
    /* input that ends inside a block is still run, so its error shows */
    run_ppl("def h(x) {\n", (const char *const[]){NULL});
    ASSERT_STATUS(1);
    ck_assert_msg(strncmp(res.err, "error: ", 7) == 0, "stderr:\n%s", res.err);
    run_ppl(":q\nprint(5)\n", (const char *const[]){NULL});
    ASSERT_STATUS(0);
    ck_assert_str_eq(res.out, "");
}
END_TEST

START_TEST(command_line) {
    RUN(NULL, "--version");
    ASSERT_STATUS(0);
    ck_assert_str_eq(res.out, "ppl 0.1.0\n");
    RUN(NULL, "--help");
    ASSERT_STATUS(0);
    ASSERT_HAS(res.out, "ppl svi FILE.ppl");
    RUN(NULL, "svi", "--help");
    ASSERT_STATUS(0);
    ASSERT_HAS(res.out, "--particles K");
    /* usage errors: one error line, a hint, status 2 */
    RUN(NULL, "run");
    ASSERT_STATUS(2);
    RUN(NULL, "run", "examples/coin.ppl", "--bogus", "1");
    ASSERT_STATUS(2);
    ck_assert_msg(strncmp(res.err, "error: unknown option \"--bogus\"", 31) == 0, "stderr:\n%s", res.err);
    ASSERT_HAS(res.err, "usage: ppl run");
    RUN(NULL, "run", "examples/coin.ppl", "--seed");
    ASSERT_STATUS(2);
    RUN(NULL, "run", "examples/coin.ppl", "--seed", "-4");
    ASSERT_STATUS(2);
    RUN(NULL, "svi", "examples/temperature.ppl", "--steps", "ten", "--model", "weather");
    ASSERT_STATUS(2);
    RUN(NULL, "svi", "examples/temperature.ppl");
    ASSERT_STATUS(2);
    ASSERT_HAS(res.err, "--model");
    RUN(NULL, "frobnicate");
    ASSERT_STATUS(2);
    RUN(NULL, "run", "examples/coin.ppl", "--device", "cuda");
    ASSERT_STATUS(2);
#ifdef PPL_CUDA /* without a GPU: "no CUDA device found: ..." */
    ASSERT_HAS(res.err, "error: --device cuda: ");
#else
    ck_assert_str_eq(res.err, "error: --device cuda: ppl was built without CUDA support; rebuild with -DPPL_CUDA=ON\n");
#endif
    /* check, run and library errors */
    RUN(NULL, "check", "examples/coin.ppl");
    ASSERT_STATUS(0);
    ck_assert_str_eq(res.out, "examples/coin.ppl: ok\n");
    RUN("print(6 * 7)\n", "run", "-");
    ASSERT_STATUS(0);
    ck_assert_str_eq(res.out, "42\n");
    RUN(NULL, "run", "tests/golden/bad_name.ppl");
    ASSERT_STATUS(1);
    ck_assert_msg(strncmp(res.err, "error: ", 7) == 0 && strstr(res.err, "bad_name.ppl:"), "stderr:\n%s",
                  res.err);
    RUN(NULL, "run", "no/such/file.ppl");
    ASSERT_STATUS(1);
}
END_TEST

START_TEST(svi_files) {
    char dir[] = "/tmp/ppl_cli_out_XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    char params[128], summary[128];
    snprintf(params, sizeof params, "%s/params.json", dir);
    snprintf(summary, sizeof summary, "%s/summary.json", dir);
    RUN(NULL, "svi", "examples/temperature.ppl", "--model", "weather", "--data", "examples/temperature.json",
        "--steps=200", "--lr", "0.05", "--seed", "3", "--out", params, "--summary", summary);
    ASSERT_STATUS(0);
    ASSERT_HAS(res.out, "temp");
    ASSERT_HAS(res.out, "mean");
    char text[4096];
    FILE *f = fopen(summary, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    ck_assert_msg(text[0] == '{' && strstr(text, "\"summary\"") && text[n - 1] == '\n', "%s", text);
    f = fopen(params, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    ck_assert_msg(text[0] == '{' && strstr(text, "temp"), "%s", text);
    /* an unwritable output is an error, and leaves no temporary file */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/p.json", dir);
    RUN(NULL, "svi", "examples/temperature.ppl", "--model", "weather", "--data", "examples/temperature.json",
        "--steps", "5", "--out", bad);
    ASSERT_STATUS(1);
    ASSERT_HAS(res.err, "cannot write");
    unlink(params);
    unlink(summary);
    ck_assert_msg(rmdir(dir) == 0, "files left in %s", dir);
}
END_TEST

/* `ppl sample` on a terminal draws the progress bar of DESIGN 1.7 on
 * stderr (docs/CLI.md, "Progress"): iterations of all chains, the phase,
 * the step size and the divergences, ending full; through a pipe it draws
 * none (sample_without_terminal_has_no_bar). */
START_TEST(sample_progress_bar) {
    nseen = 0;
    pid_t child = forkpty(&master, NULL, NULL, NULL);
    ck_assert(child >= 0);
    if (child == 0) {
        setenv("TERM", "dumb", 1);
        execl(ppl_bin, "ppl", "sample", "examples/eight_schools.ppl", "--model", "schools", "--data",
              "examples/eight_schools.json", "--chains", "2", "--warmup", "300", "--samples", "300",
              "--threads", "1", (char *)NULL);
        _exit(127);
    }
    size_t pos = 0;
    EXPECT("sample [");
    EXPECT(" warmup  step size ");
    EXPECT(" sampling  step size ");
    EXPECT("sample [==============================] 1200/1200  sampling  step size ");
    EXPECT("  divergences ");
    EXPECT("ess_bulk");   /* then the table */
    EXPECT("divergences: ");
    ck_assert_int_eq(wait_exit(child, 20000), 0);
    close(master);
}
END_TEST

START_TEST(sample_without_terminal_has_no_bar) {
    RUN(NULL, "sample", "examples/eight_schools.ppl", "--model", "schools", "--data", "examples/eight_schools.json",
        "--chains", "2", "--warmup", "100", "--samples", "100");
    ASSERT_STATUS(0);
    ck_assert_msg(!strstr(res.err, "sample ["), "a progress bar without a terminal:\n%s", res.err);
    ASSERT_HAS(res.out, "divergences: ");
}
END_TEST

int main(int argc, char **argv) {
    const char *bin = getenv("PPL_BIN");
    if (argc > 1) bin = argv[1];
    if (bin && *bin) ppl_bin = bin;
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("pty");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, repl_session);
    tcase_add_test(tc, sample_progress_bar);
    suite_add_tcase(s, tc);
    tc = tcase_create("pipes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, repl_without_terminal);
    tcase_add_test(tc, command_line);
    tcase_add_test(tc, svi_files);
    tcase_add_test(tc, sample_without_terminal_has_no_bar);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
