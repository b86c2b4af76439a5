/* main.c - the ppl command: run, check, svi, sample, and the REPL.  An
 * ordinary client of include/ppl.h: every diagnostic about a program comes
 * from ppl_errmsg; this file only parses the command line and moves text
 * between the library, the terminal and files.
 *
 * Exit status: 0 success, 1 an error in the program, its data or an output
 * file, 2 a usage error on the command line, 130 interrupted by Ctrl-C. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ppl.h"
#include "repl.h"

enum { EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

/* ---- options ----------------------------------------------------------- */

/* Every option of every command, parsed into one record; `given` has bit i
 * set when OPTIONS[i] appeared, so no field needs a sentinel value. */
typedef struct args {
    const char *file;
    const char *model, *guide, *data, *out, *summary, *device, *metric, *plot;
    const char *checkpoint, *resume, *validation, *fast;
    long checkpoint_every, threads, epochs, batch_size, patience;
    double min_delta;
    uint64_t seed;
    long steps, particles, chains, warmup, samples, max_depth;
    double lr, target_accept;
    unsigned long given;
} args;

typedef enum kind {
    K_TEXT,   /* any string */
    K_CHOICE, /* one of the '|'-separated words in `choices` */
    K_SEED,   /* unsigned 64-bit integer */
    K_LONG,   /* integer in [lo, INT_MAX] (the library takes ints) */
    K_RATE,   /* finite number > 0 */
    K_PROB,   /* number strictly inside (0, 1) */
    K_NONNEG  /* finite number >= 0 */
} kind;

typedef struct option_spec {
    const char *name;
    kind kind;
    size_t offset;       /* of the field in args */
    long lo;             /* K_LONG: smallest value allowed */
    const char *choices; /* K_CHOICE */
    const char *meta;    /* the value's name in help texts */
    const char *help;
} option_spec;

#define FIELD(f) offsetof(args, f)
static const option_spec OPTIONS[] = {
    {"seed", K_SEED, FIELD(seed), 0, NULL, "N", "random seed (default: run 0, svi and sample 1)"},
    {"device", K_CHOICE, FIELD(device), 0, "cpu|cuda", "cpu|cuda", "tensor backend (default cpu)"},
    {"model", K_TEXT, FIELD(model), 0, NULL, "NAME", "the model to fit (required)"},
    {"guide", K_TEXT, FIELD(guide), 0, NULL, "NAME",
     "a guide in the file, or auto_normal (default), auto_diag, auto_mvn, auto_delta,"
     " auto_lowrank, auto_laplace"},
    {"data", K_TEXT, FIELD(data), 0, NULL, "D.json", "CmdStan-style JSON binding the model's arguments"},
    {"steps", K_LONG, FIELD(steps), 0, NULL, "N", "optimization steps (default 1000)"},
    {"lr", K_RATE, FIELD(lr), 0, NULL, "X", "Adam learning rate (default 0.01)"},
    {"particles", K_LONG, FIELD(particles), 1, NULL, "K", "ELBO particles per step (default 1)"},
    {"chains", K_LONG, FIELD(chains), 1, NULL, "C", "chains (default 4)"},
    {"warmup", K_LONG, FIELD(warmup), 0, NULL, "W", "warmup iterations per chain (default 1000)"},
    {"samples", K_LONG, FIELD(samples), 1, NULL, "S", "draws per chain (default 1000)"},
    {"target-accept", K_PROB, FIELD(target_accept), 0, NULL, "P", "NUTS target acceptance (default 0.8)"},
    {"max-depth", K_LONG, FIELD(max_depth), 1, NULL, "D", "NUTS tree depth limit (default 10)"},
    {"metric", K_CHOICE, FIELD(metric), 0, "diag|dense", "diag|dense", "mass matrix (default diag)"},
    {"out", K_TEXT, FIELD(out), 0, NULL, "PATH", NULL /* per command */},
    {"summary", K_TEXT, FIELD(summary), 0, NULL, "S.json", "write the summary JSON"},
    {"plot", K_TEXT, FIELD(plot), 0, NULL, "FILE.svg",
     "write an SVG picture (loss curve; trace + density)"},
    {"resume", K_TEXT, FIELD(resume), 0, NULL, "FILE",
     "continue the run saved in FILE by --checkpoint"},
    {"checkpoint", K_TEXT, FIELD(checkpoint), 0, NULL, "FILE",
     "save the run's state to FILE for --resume (atomically)"},
    {"checkpoint-every", K_LONG, FIELD(checkpoint_every), 1, NULL, "N",
     "iterations of a chain between checkpoints (default 100)"},
    {"threads", K_LONG, FIELD(threads), 1, NULL, "N", "chains run in parallel (default min(chains, cores))"},
    {"epochs", K_LONG, FIELD(epochs), 1, NULL, "E",
     "passes over the data in shuffled minibatches (instead of --steps)"},
    {"batch-size", K_LONG, FIELD(batch_size), 1, NULL, "B",
     "minibatch size (default: the plate's subsample=)"},
    {"validation", K_TEXT, FIELD(validation), 0, NULL, "V.json",
     "data for the validation ELBO after each epoch"},
    {"patience", K_LONG, FIELD(patience), 1, NULL, "P",
     "stop after P epochs without improvement; keep the best epoch's parameters"},
    {"min-delta", K_NONNEG, FIELD(min_delta), 0, NULL, "X", "smallest improvement that counts (default 0)"},
    {"fast", K_CHOICE, FIELD(fast), 0, "on|off", "on|off",
     "replay the recorded ops of the model instead of re-running it (default on)"},
};
#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

static int option_index(const char *name, size_t len) {
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(OPTIONS[i].name) == len && strncmp(OPTIONS[i].name, name, len) == 0) return (int)i;
    return -1;
}

static bool given(const args *a, const char *name) {
    int i = option_index(name, strlen(name));
    return i >= 0 && (a->given >> i & 1);
}

/* ---- commands ---------------------------------------------------------- */

typedef struct command {
    const char *name;
    const char *synopsis; /* after "ppl NAME " */
    const char *about;
    const char *out_help; /* what --out writes, NULL when not accepted */
    const char *const *opts;
    int (*run)(const args *a);
} command;

static int cmd_run(const args *a);
static const struct command *find_command(const char *name);
static int cmd_check(const args *a);
static int cmd_svi(const args *a);
static int cmd_sample(const args *a);

static const char *const RUN_OPTS[] = {"seed", "device", NULL};
static const char *const CHECK_OPTS[] = {NULL};
static const char *const SVI_OPTS[] = {"model", "guide", "data", "steps", "lr", "particles", "seed",
                                       "out", "summary", "device", "plot", "checkpoint", "resume",
                                       "epochs", "batch-size", "validation", "patience", "min-delta", "fast",
                                       NULL};
static const char *const SAMPLE_OPTS[] = {"model", "data", "chains", "warmup", "samples", "seed",
                                          "target-accept", "max-depth", "metric", "out", "summary",
                                          "device", "plot", "checkpoint", "checkpoint-every", "resume",
                                          "threads", "fast", NULL};

static const command COMMANDS[] = {
    {"run", "FILE.ppl [--seed N] [--device cpu|cuda]",
     "Parse, check and run FILE.ppl (\"-\" reads standard input).\n"
     "Script output (print, summary) goes to stdout, diagnostics to stderr.",
     NULL, RUN_OPTS, cmd_run},
    {"check", "FILE.ppl",
     "Parse and check FILE.ppl (names, arity, constraints) without running it;\n"
     "prints \"FILE.ppl: ok\" when it is fine (\"-\" reads standard input).",
     NULL, CHECK_OPTS, cmd_check},
    {"svi", "FILE.ppl --model NAME [--guide NAME|auto_normal|auto_mvn|auto_delta|auto_diag]\n"
            "        [--data D.json] [--steps N] [--lr X] [--particles K] [--seed N]\n"
            "        [--out params.json] [--summary S.json] [--plot FILE.svg]\n"
            "        [--checkpoint STATE.json] [--resume STATE.json] [--fast on|off]\n"
            "        [--epochs E [--batch-size B] [--validation V.json] [--patience P [--min-delta X]]]",
     "Load the definitions and data of FILE.ppl (not its script actions), fit\n"
     "--model by stochastic variational inference (Trace_ELBO, Adam) and print\n"
     "the summary table.  Output files are written atomically.\n"
     "--epochs runs passes over the subsampled plate in shuffled minibatches,\n"
     "with the validation ELBO and early stopping after each epoch.",
     "write the learned parameters as JSON", SVI_OPTS, cmd_svi},
    {"sample", "FILE.ppl --model NAME [--data D.json] [--chains C] [--warmup W]\n"
               "        [--samples S] [--seed N] [--target-accept P] [--max-depth D]\n"
               "        [--metric diag|dense] [--out draws.csv] [--summary S.json]\n"
               "        [--plot FILE.svg] [--checkpoint FILE [--checkpoint-every N]] [--resume FILE]\n"
               "        [--threads N] [--fast on|off]",
     "Load the definitions and data of FILE.ppl (not its script actions), draw\n"
     "from the posterior of --model with NUTS and print the summary table.",
     "write the draws as Stan CSV (draws_1.csv ... for several chains)", SAMPLE_OPTS, cmd_sample},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void print_synopses(FILE *f) {
    fprintf(f, "usage:\n  ppl                 interactive REPL (:help inside)\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  ppl %s %s\n", COMMANDS[i].name, COMMANDS[i].synopsis);
    fprintf(f, "  ppl --help | --version | COMMAND --help\n");
}

static void print_help(void) {
    printf("ppl %s - a small probabilistic programming language\n\n", ppl_version());
    print_synopses(stdout);
    printf("\nExit status: 0 success, 1 an error in the program or its data,\n"
           "2 a command-line error, 130 interrupted.  See docs/CLI.md.\n");
}

static void print_command_help(const command *c) {
    printf("usage: ppl %s %s\n\n%s\n", c->name, c->synopsis, c->about);
    if (!c->opts[0]) return;
    printf("\noptions:\n");
    for (const char *const *o = c->opts; *o; o++) {
        const option_spec *s = &OPTIONS[option_index(*o, strlen(*o))];
        char head[64];
        snprintf(head, sizeof head, "--%s %s", s->name, s->meta);
        printf("  %-24s %s\n", head, s->help ? s->help : c->out_help);
    }
}

/* A one-line error, then the command's synopsis as a hint; exit status 2. */
static int usage_error(const command *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const command *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (c)
        fprintf(stderr, "\nusage: ppl %s %s\nTry 'ppl %s --help' for more.\n", c->name, c->synopsis,
                c->name);
    else
        fprintf(stderr, "\nTry 'ppl --help' for more.\n");
    return EXIT_USAGE;
}

/* ---- value parsing ----------------------------------------------------- */

static bool parse_long(const char *v, long lo, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno == ERANGE || x < lo || x > INT_MAX) return false;
    *out = x;
    return true;
}

static bool parse_seed(const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    if (*v < '0' || *v > '9') return false; /* strtoull would accept "-1" */
    unsigned long long x = strtoull(v, &end, 10);
    if (*end || errno == ERANGE) return false;
    *out = (uint64_t)x;
    return true;
}

static bool parse_double(const char *v, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !isfinite(x)) return false;
    *out = x;
    return true;
}

static bool choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        size_t w = strcspn(p, "|");
        if (w == n && strncmp(p, v, n) == 0) return true;
        p += w + (p[w] == '|');
    }
    return false;
}

/* Store value v of option s into a; returns 0 or a usage error. */
static int set_option(const command *c, const option_spec *s, const char *v, args *a) {
    void *field = (char *)a + s->offset;
    double d;
    switch (s->kind) {
    case K_TEXT:
        *(const char **)field = v;
        return 0;
    case K_CHOICE:
        if (!choice_ok(s->choices, v))
            return usage_error(c, "--%s must be %s, got \"%s\"", s->name, s->choices, v);
        *(const char **)field = v;
        return 0;
    case K_SEED:
        if (!parse_seed(v, field))
            return usage_error(c, "--%s needs a non-negative integer below 2^64, got \"%s\"", s->name, v);
        return 0;
    case K_LONG:
        if (!parse_long(v, s->lo, field))
            return usage_error(c, "--%s needs an integer %s, got \"%s\"", s->name,
                               s->lo > 0 ? "of at least 1" : "of at least 0", v);
        return 0;
    case K_RATE:
        if (!parse_double(v, &d) || !(d > 0))
            return usage_error(c, "--%s needs a positive number, got \"%s\"", s->name, v);
        *(double *)field = d;
        return 0;
    case K_PROB:
        if (!parse_double(v, &d) || !(d > 0 && d < 1))
            return usage_error(c, "--%s needs a number strictly between 0 and 1, got \"%s\"", s->name, v);
        *(double *)field = d;
        return 0;
    case K_NONNEG:
        if (!parse_double(v, &d) || !(d >= 0))
            return usage_error(c, "--%s needs a number >= 0, got \"%s\"", s->name, v);
        *(double *)field = d;
        return 0;
    }
    return usage_error(c, "internal: bad option kind");
}

static bool allowed(const command *c, const char *name) {
    for (const char *const *o = c->opts; *o; o++)
        if (strcmp(*o, name) == 0) return true;
    return false;
}

/* Parse argv[2..] for command c: one file, options as "--name value" or
 * "--name=value", "--" ends the options.  Returns 0, EXIT_USAGE, or -1
 * when help was printed. */
static int parse_args(const command *c, int argc, char **argv, args *a) {
    bool only_files = false;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (only_files || arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (a->file) return usage_error(c, "unexpected argument \"%s\" (one file only)", arg);
            a->file = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_files = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_command_help(c);
            return -1;
        }
        if (arg[1] != '-') return usage_error(c, "unknown option \"%s\"", arg);
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = option_index(name, len);
        if (k < 0 || !allowed(c, OPTIONS[k].name))
            return usage_error(c, "unknown option \"--%.*s\" for ppl %s", (int)len, name, c->name);
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            /* a following "--x" is the next option, not this one's value */
            if (i + 1 >= argc || (strncmp(argv[i + 1], "--", 2) == 0 && argv[i + 1][2]))
                return usage_error(c, "option --%s needs a value (%s)", OPTIONS[k].name, OPTIONS[k].meta);
            v = argv[++i];
        }
        int rc = set_option(c, &OPTIONS[k], v, a);
        if (rc) return rc;
        a->given |= 1ul << k;
    }
    if (!a->file) return usage_error(c, "ppl %s needs a FILE.ppl", c->name);
    return 0;
}

/* ---- running the library ----------------------------------------------- */

/* The state a batch command is running, for the SIGINT handler. */
static ppl_state *volatile g_running;

static void on_sigint(int sig) {
    (void)sig;
    if (g_running) ppl_interrupt(g_running);
}

/* Ctrl-C asks the library to stop (it returns PPL_ERR_INTERRUPTED and the
 * command exits 130 without writing half files); a second Ctrl-C kills. */
static void catch_sigint(ppl_state *S) {
    g_running = S;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

static void to_stdout(void *ud, const char *text, size_t len) {
    (void)ud;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

static void print_with_newline(FILE *f, const char *m) {
    size_t n = strlen(m);
    fprintf(f, "%s%s", m, n && m[n - 1] == '\n' ? "" : "\n");
}

/* Report a failed library call; returns the exit status. */
static int lib_error(ppl_state *S, ppl_status st) {
    if (st == PPL_ERR_INTERRUPTED) {
        fputs("interrupted\n", stderr);
        return EXIT_INTERRUPTED;
    }
    print_with_newline(stderr, ppl_errmsg(S));
    return 1;
}

/* The bar of done/total, `width` wide, into bar[width + 1]. */
static void fill_bar(char *bar, int width, long done, long total) {
    int filled = total > 0 ? (int)(width * done / total) : width;
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : ' ';
    bar[width] = 0;
}

/* A one-line progress bar on stderr (only when stderr is a terminal); MCMC
 * has its own (below), so the per-chain "sample" reports are not shown. */
static void show_progress(void *ud, const char *phase, long done, long total, double value) {
    (void)ud;
    if (strcmp(phase, "svi") != 0) return;
    char bar[64];
    fill_bar(bar, 30, done, total);
    fprintf(stderr, "\rsvi    [%s] %ld/%ld steps  elbo %.6g   ", bar, done, total, value);
    if (done >= total) fputs("\n", stderr);
    fflush(stderr);
}

/* SVI by epochs: one line per epoch (kept), its bar filling with the
 * epoch's steps, then the epoch's train ELBO and validation ELBO. */
static void show_epoch(void *ud, long epoch, long epochs, long step, long steps, double elbo, double val) {
    (void)ud;
    char bar[64];
    fill_bar(bar, 30, step, steps);
    int w = snprintf(NULL, 0, "%ld", epochs);
    fprintf(stderr, "\repoch %*ld/%ld [%s] %ld/%ld steps  elbo %.6g", w, epoch, epochs, bar, step, steps, elbo);
    if (step < steps) fputs("   ", stderr);
    else if (isnan(val)) fputs("\n", stderr);
    else fprintf(stderr, "  val elbo %.6g\n", val);
    fflush(stderr);
}

/* The MCMC bar, updated within the chains: iterations of all chains, the
 * phase (how many chains are still in warmup), the mean current step size
 * and the divergences so far. */
static void show_mcmc_progress(void *ud, const ppl_mcmc_progress *p) {
    (void)ud;
    char bar[64], phase[48];
    fill_bar(bar, 30, p->done, p->total);
    int warming = 0, stepped = 0;
    double step = 0;
    for (int c = 0; c < p->chains; c++) {
        if (p->chain_done[c] < p->warmup) warming++;
        if (p->chain_step[c] > 0) {
            step += p->chain_step[c];
            stepped++;
        }
    }
    if (warming == 0) snprintf(phase, sizeof phase, "sampling");
    else if (warming == p->chains) snprintf(phase, sizeof phase, "warmup");
    else snprintf(phase, sizeof phase, "warmup (%d of %d chains)", warming, p->chains);
    fprintf(stderr, "\rsample [%s] %ld/%ld  %s  step size %.3g  divergences %ld      ", bar, p->done, p->total,
            phase, stepped ? step / stepped : 0.0, p->divergences);
    if (p->done >= p->total) fputs("\n", stderr);
    fflush(stderr);
}

static ppl_state *open_state(const args *a) {
    ppl_options po = ppl_default_options();
    po.out = to_stdout;
    if (isatty(STDERR_FILENO)) {
        po.progress = show_progress;
        po.progress_epoch = show_epoch;
        po.mcmc_progress = show_mcmc_progress;
    }
    if (given(a, "seed")) po.seed = a->seed;
    ppl_state *S = ppl_open(&po);
    if (!S) {
        fputs("error: out of memory\n", stderr);
        return NULL;
    }
    if (a->device && ppl_set_device(S, a->device) != PPL_OK) {
        fprintf(stderr, "%s\n", ppl_errmsg(S));
        ppl_close(S);
        return NULL;
    }
    catch_sigint(S);
    return S;
}

static int close_state(ppl_state *S, int rc) {
    g_running = NULL;
    /* the ops that ran on the CPU for the device, once each */
    for (const char *w = ppl_device_warnings(S); w && *w;) {
        const char *e = strchr(w, '\n');
        int n = e ? (int)(e - w) : (int)strlen(w);
        fprintf(stderr, "warning: %.*s\n", n, w);
        w += n + (e ? 1 : 0);
    }
    ppl_close(S);
    return rc;
}

/* --device cuda needs a build with the CUDA backend and a GPU: without
 * them the run is refused (a usage error) with the reason, rather than
 * silently done on the CPU. */
static int check_device(const args *a) {
    if (!a->device || strcmp(a->device, "cuda") != 0) return 0;
    char why[256];
    if (ppl_device_available("cuda", why, sizeof why) == 0) return 0;
    fprintf(stderr, "error: --device cuda: %s\n", why);
    return EXIT_USAGE;
}

/* All of standard input as a string (malloc'd), or NULL. */
static char *read_stdin(void) {
    size_t cap = 1 << 14, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, stdin);
        if (ferror(stdin) || feof(stdin)) break;
        char *p = realloc(buf, cap *= 2);
        if (!p) free(buf);
        buf = p;
    }
    if (!buf || ferror(stdin)) {
        fprintf(stderr, "error: cannot read standard input%s\n", buf ? "" : ": out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

/* Load (or only check) a.file, where "-" is standard input. */
static ppl_status load_program(ppl_state *S, const char *file, bool check_only, bool *read_failed) {
    *read_failed = false;
    if (strcmp(file, "-") != 0) return check_only ? ppl_check_file(S, file) : ppl_load_file(S, file);
    char *text = read_stdin();
    if (!text) {
        *read_failed = true;
        return PPL_ERR_IO;
    }
    ppl_status st = check_only ? ppl_check_string(S, "<stdin>", text) : ppl_load_string(S, "<stdin>", text);
    free(text);
    return st;
}

static int cmd_run(const args *a) {
    ppl_state *S = open_state(a);
    if (!S) return 1;
    bool read_failed;
    ppl_status st = load_program(S, a->file, false, &read_failed);
    return close_state(S, st == PPL_OK ? 0 : read_failed ? 1 : lib_error(S, st));
}

static int cmd_check(const args *a) {
    ppl_state *S = open_state(a);
    if (!S) return 1;
    bool read_failed;
    ppl_status st = load_program(S, a->file, true, &read_failed);
    if (st == PPL_OK) printf("%s: ok\n", strcmp(a->file, "-") == 0 ? "<stdin>" : a->file);
    return close_state(S, st == PPL_OK ? 0 : read_failed ? 1 : lib_error(S, st));
}

/* Write text to path through a temporary file in the same directory and a
 * rename, so readers never see a half-written file; 0 or -1 (reported). */
static int write_atomic(const char *path, const char *text) {
    size_t n = strlen(path);
    char *tmp = malloc(n + 32);
    if (!tmp) {
        fputs("error: out of memory\n", stderr);
        return -1;
    }
    snprintf(tmp, n + 32, "%s.tmp.%ld", path, (long)getpid());
    int err = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0666);
    if (fd < 0) err = errno;
    size_t len = strlen(text), done = 0;
    bool newline = len == 0 || text[len - 1] != '\n';
    while (!err && done < len) {
        ssize_t k = write(fd, text + done, len - done);
        if (k < 0 && errno != EINTR) err = errno;
        else if (k > 0) done += (size_t)k;
    }
    if (!err && newline && write(fd, "\n", 1) != 1) err = errno ? errno : EIO;
    if (!err && fsync(fd) != 0 && errno != EINVAL) err = errno;
    if (fd >= 0 && close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        if (fd >= 0) unlink(tmp);
        fprintf(stderr, "error: cannot write \"%s\": %s\n", path, strerror(err));
    }
    free(tmp);
    return err ? -1 : 0;
}

/* Write a malloc'd JSON text (NULL: out of memory) and free it. */
static int write_json(const char *path, char *json) {
    if (!json) {
        fprintf(stderr, "error: out of memory formatting \"%s\"\n", path);
        return -1;
    }
    int rc = write_atomic(path, json);
    free(json);
    return rc;
}

/* Common prologue of svi and sample: a file and a model, definitions loaded. */
static int load_for_inference(const command *c, const args *a, ppl_state **out) {
    *out = NULL;
    if (!a->model) return usage_error(c, "ppl %s needs --model NAME", c->name);
    if (strcmp(a->file, "-") == 0) return usage_error(c, "ppl %s needs a file (not standard input)", c->name);
    ppl_state *S = open_state(a);
    if (!S) return 1;
    ppl_status st = ppl_load_definitions(S, a->file);
    if (st != PPL_OK) return close_state(S, lib_error(S, st));
    *out = S;
    return 0;
}

/* Print the summary table and write --summary; returns the exit status. */
static int report_result(const args *a, const ppl_result *R) {
    char *table = ppl_result_table(R);
    if (!table) {
        fputs("error: out of memory formatting the summary table\n", stderr);
        return 1;
    }
    fputs(table, stdout);
    fflush(stdout);
    free(table);
    if (a->summary && write_json(a->summary, ppl_result_json(R))) return 1;
    char err[512] = "";
    if (a->plot && ppl_result_write_plot(R, a->plot, err, sizeof err) != PPL_OK) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    return 0;
}

static int cmd_svi(const args *a) {
    const command *c = find_command("svi");
    if (given(a, "epochs") && given(a, "steps"))
        return usage_error(c, "--steps and --epochs exclude each other");
    static const char *const NEED_EPOCHS[] = {"batch-size", "validation", "patience", "min-delta", NULL};
    for (int i = 0; NEED_EPOCHS[i]; i++)
        if (given(a, NEED_EPOCHS[i]) && !given(a, "epochs"))
            return usage_error(c, "--%s needs --epochs", NEED_EPOCHS[i]);
    if (given(a, "min-delta") && !given(a, "patience"))
        return usage_error(c, "--min-delta needs --patience");
    ppl_state *S;
    int rc = load_for_inference(c, a, &S);
    if (!S) return rc;
    ppl_svi_opts so = ppl_svi_defaults();
    if (a->guide) so.guide = a->guide;
    if (given(a, "steps")) so.steps = a->steps;
    if (given(a, "lr")) so.lr = a->lr;
    if (given(a, "particles")) so.particles = (int)a->particles;
    if (given(a, "seed")) so.seed = a->seed;
    so.data_json = a->data;
    so.resume = a->resume;
    if (given(a, "epochs")) {
        so.epochs = a->epochs;
        so.batch_size = given(a, "batch-size") ? a->batch_size : 0;
        so.validation_json = a->validation;
        so.patience = given(a, "patience") ? a->patience : 0;
        so.min_delta = a->min_delta;
    }
    if (a->fast) so.no_fast_path = strcmp(a->fast, "off") == 0;
    ppl_result *R = NULL;
    ppl_status st = ppl_svi(S, a->model, &so, &R);
    if (st != PPL_OK) return close_state(S, lib_error(S, st));
    rc = report_result(a, R);
    if (a->out && write_json(a->out, ppl_result_params_json(R))) rc = 1;
    /* The whole state (parameters, optimizer moments, random stream) for --resume. */
    if (a->checkpoint && (st = ppl_save_params(S, a->checkpoint)) != PPL_OK) rc = lib_error(S, st);
    ppl_result_free(R);
    return close_state(S, rc);
}

static int cmd_sample(const args *a) {
    const command *c = find_command("sample");
    ppl_state *S;
    int rc = load_for_inference(c, a, &S);
    if (!S) return rc;
    ppl_mcmc_opts mo = ppl_mcmc_defaults();
    if (given(a, "chains")) mo.chains = (int)a->chains;
    if (given(a, "warmup")) mo.warmup = (int)a->warmup;
    if (given(a, "samples")) mo.samples = (int)a->samples;
    if (given(a, "max-depth")) mo.max_depth = (int)a->max_depth;
    if (given(a, "target-accept")) mo.target_accept = a->target_accept;
    if (given(a, "seed")) mo.seed = a->seed;
    if (a->metric) mo.dense_metric = strcmp(a->metric, "dense") == 0;
    mo.data_json = a->data;
    mo.checkpoint = a->checkpoint;
    mo.resume = a->resume;
    if (given(a, "checkpoint-every")) mo.checkpoint_every = (int)a->checkpoint_every;
    if (given(a, "threads")) mo.threads = (int)a->threads;
    if (a->fast) mo.no_fast_path = strcmp(a->fast, "off") == 0;
    ppl_result *R = NULL;
    ppl_status st = ppl_mcmc(S, a->model, &mo, &R);
    if (st != PPL_OK) return close_state(S, lib_error(S, st));
    rc = report_result(a, R);
    if (a->out) {
        char err[512] = "";
        if (ppl_result_write_stan_csv(R, a->out, err, sizeof err) != PPL_OK) {
            fprintf(stderr, "%s%s\n", strncmp(err, "error:", 6) == 0 ? "" : "error: ", err);
            rc = 1;
        }
    }
    ppl_result_free(R);
    return close_state(S, rc);
}

/* ---- dispatch ---------------------------------------------------------- */

static const command *find_command(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i].name, name) == 0) return &COMMANDS[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return ppl_cli_repl();
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_help();
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf("ppl %s\n", ppl_version());
        return 0;
    }
    const command *c = find_command(name);
    if (!c) {
        size_t n = strlen(name);
        if (n > 4 && strcmp(name + n - 4, ".ppl") == 0)
            return usage_error(NULL, "unknown command \"%s\" (to run a file: ppl run %s)", name, name);
        if (name[0] == '-') return usage_error(NULL, "unknown option \"%s\"", name);
        return usage_error(NULL, "unknown command \"%s\" (commands: run, check, svi, sample)", name);
    }
    args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(c, argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = check_device(&a))) return rc;
    return c->run(&a);
}
