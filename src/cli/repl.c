/* repl.c - the REPL: libedit line editing and history when stdin is a
 * terminal, plain line reading (no prompts) otherwise.  Lines accumulate
 * until they form a complete chunk (ppl_incomplete), which runs through
 * ppl_eval; an expression's value is echoed.  No error ends the session.
 * Ctrl-C during a computation interrupts it (ppl_interrupt); at the prompt
 * it discards the pending input.  Ctrl-D on an empty prompt leaves with
 * status 0. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <editline/readline.h>
#include "ppl.h"
#include "repl.h"

enum { HISTORY_MAX = 1000 };

/* Shared with the SIGINT handler only; the CLI is a program, not the
 * library, so process-wide state here is fine. */
static ppl_state *volatile g_state;
static volatile sig_atomic_t g_running; /* an evaluation is in progress */
static volatile sig_atomic_t g_sigint;  /* Ctrl-C arrived while reading */

static void on_sigint(int sig) {
    (void)sig;
    if (g_running && g_state) ppl_interrupt(g_state);
    else g_sigint = 1;
}

static void to_stdout(void *ud, const char *text, size_t len) {
    (void)ud;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

static const char HELP[] =
    "Enter statements or expressions; an expression's value is printed.\n"
    "Unfinished blocks and brackets continue on the next line (prompt ...>).\n"
    "  :help          this text\n"
    "  :load FILE     run a .ppl file in this session\n"
    "  :quit, :q      leave (or Ctrl-D on an empty line)\n"
    "Ctrl-C interrupts a running computation, or discards the input being typed.\n";

typedef struct repl {
    ppl_state *S;
    bool tty;      /* libedit and prompts, or plain reading */
    char *history; /* ~/.ppl_history, NULL when HOME is unset */
    char *buf;     /* the pending (incomplete) chunk */
    size_t len;
    int errors;    /* failed chunks, for the exit status of plain sessions */
} repl;

static void print_with_newline(FILE *f, const char *m) {
    size_t n = strlen(m);
    fprintf(f, "%s%s", m, n && m[n - 1] == '\n' ? "" : "\n");
}

static void report(repl *r, ppl_status st) {
    r->errors++;
    if (st == PPL_ERR_INTERRUPTED) fputs("interrupted\n", stderr);
    else print_with_newline(stderr, ppl_errmsg(r->S));
    fflush(stderr);
}

/* ---- input ------------------------------------------------------------- */

/* One line from a non-terminal stdin without its newline (malloc'd), or
 * NULL at end of input. */
static char *read_plain(void) {
    size_t cap = 256, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        if (n + 2 > cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
        }
        buf[n++] = (char)c;
    }
    if (c == EOF && n == 0) {
        free(buf);
        return NULL;
    }
    if (n && buf[n - 1] == '\r') n--; /* files written on Windows */
    buf[n] = 0;
    return buf;
}

static char *read_line(repl *r) {
    g_sigint = 0;
    if (!r->tty) return read_plain();
    char *line = readline(r->buf ? "...> " : "ppl> ");
    if (line && *line) {
        add_history(line);
        /* saved at once, so a session that is killed keeps its history */
        if (r->history) write_history(r->history);
    }
    return line;
}

static char *history_path(void) {
    const char *home = getenv("HOME");
    if (!home || !*home) return NULL;
    size_t n = strlen(home) + sizeof "/.ppl_history";
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/.ppl_history", home);
    return p;
}

/* Append a line to the pending chunk; -1 when out of memory. */
static int append(repl *r, const char *line) {
    size_t n = strlen(line);
    char *p = realloc(r->buf, r->len + n + 2);
    if (!p) return -1;
    memcpy(p + r->len, line, n);
    r->len += n;
    p[r->len++] = '\n';
    p[r->len] = 0;
    r->buf = p;
    return 0;
}

static void discard(repl *r) {
    free(r->buf);
    r->buf = NULL;
    r->len = 0;
}

/* ---- evaluation -------------------------------------------------------- */

static void run_chunk(repl *r, const char *text) {
    const char *echo = "";
    g_running = 1;
    ppl_status st = ppl_eval(r->S, "<repl>", text, &echo);
    g_running = 0;
    if (st != PPL_OK) report(r, st);
    else if (echo && *echo) print_with_newline(stdout, echo);
    fflush(stdout);
}

static void load_command(repl *r, const char *arg) {
    while (*arg == ' ' || *arg == '\t') arg++;
    size_t n = strlen(arg);
    while (n && (arg[n - 1] == ' ' || arg[n - 1] == '\t')) n--;
    if (n >= 2 && (arg[0] == '"' || arg[0] == '\'') && arg[n - 1] == arg[0]) {
        arg++; /* a quoted name, for paths with spaces */
        n -= 2;
    }
    if (n == 0) {
        r->errors++;
        fputs("error: :load needs a file name\n", stderr);
        return;
    }
    char *path = strndup(arg, n);
    if (!path) {
        r->errors++;
        fputs("error: out of memory\n", stderr);
        return;
    }
    g_running = 1;
    ppl_status st = ppl_load_file(r->S, path);
    g_running = 0;
    free(path);
    if (st != PPL_OK) report(r, st);
}

/* A line starting with ':' (at the start of a chunk); true to leave. */
static bool colon_command(repl *r, const char *line) {
    const char *cmd = line + 1, *end = cmd + strcspn(cmd, " \t");
    size_t n = (size_t)(end - cmd);
    if ((n == 4 && strncmp(cmd, "quit", 4) == 0) || (n == 1 && *cmd == 'q')) return true;
    if (n == 4 && strncmp(cmd, "help", 4) == 0) fputs(HELP, stdout);
    else if (n == 4 && strncmp(cmd, "load", 4) == 0) load_command(r, end);
    else {
        r->errors++;
        fprintf(stderr, "error: unknown command \":%.*s\" (try :help)\n", (int)n, cmd);
    }
    fflush(stdout);
    return false;
}

/* Feed one input line; true when the session should end. */
static bool feed(repl *r, const char *line) {
    const char *s = line + strspn(line, " \t");
    if (!r->buf && *s == ':') return colon_command(r, s);
    if (!r->buf && !*s) return false;
    if (append(r, line)) {
        discard(r);
        r->errors++;
        fputs("error: out of memory\n", stderr);
        return false;
    }
    if (ppl_incomplete(r->buf)) return false;
    run_chunk(r, r->buf);
    discard(r);
    return false;
}

/* ---- the session ------------------------------------------------------- */

static void install_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    /* no SA_RESTART: a Ctrl-C must break the terminal read at the prompt */
    sigaction(SIGINT, &sa, NULL);
}

static void start_terminal(repl *r) {
    r->history = history_path();
    stifle_history(HISTORY_MAX);
    if (r->history) read_history(r->history); /* a missing file is fine */
    printf("ppl %s - :help for help, Ctrl-D to leave\n", ppl_version());
    fflush(stdout);
}

/* The loop; returns the exit status. */
static int session(repl *r) {
    for (;;) {
        char *line = read_line(r);
        if (!line) {
            if (g_sigint && r->tty) { /* Ctrl-C at the prompt */
                fputs("\n", stdout);
                discard(r);
                continue;
            }
            if (g_sigint) return 130; /* Ctrl-C while a pipe fed us */
            if (r->tty) fputs("\n", stdout);
            if (!r->buf) break;
            /* end of input inside an unfinished chunk: run it, so its
             * diagnostic (the unclosed bracket) shows */
            run_chunk(r, r->buf);
            discard(r);
            if (r->tty) continue; /* a person leaves with a second Ctrl-D */
            break;
        }
        bool quit = feed(r, line);
        free(line);
        if (quit) break;
    }
    fflush(stdout);
    return !r->tty && r->errors ? 1 : 0;
}

int ppl_cli_repl(void) {
    repl r;
    memset(&r, 0, sizeof r);
    ppl_options o = ppl_default_options();
    o.out = to_stdout;
    r.S = ppl_open(&o);
    if (!r.S) {
        fputs("error: out of memory\n", stderr);
        return 1;
    }
    r.tty = isatty(STDIN_FILENO);
    g_state = r.S;
    install_sigint();
    if (r.tty) start_terminal(&r);
    int rc = session(&r);
    discard(&r);
    if (r.history) write_history(r.history);
    free(r.history);
    g_state = NULL;
    ppl_close(r.S);
    return rc;
}
