/* repl.c - the REPL: libedit line editing and history when stdin is a
 * terminal, plain line reading otherwise.  Input accumulates until it is a
 * complete chunk (ppl_incomplete), then runs through ppl_eval; an
 * expression's value is echoed.  No error ends the session.  Ctrl-C during
 * a computation interrupts it (ppl_interrupt); at the prompt it discards the
 * current input.  Ctrl-D on an empty prompt leaves with status 0. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <editline/readline.h>
#include "ppl.h"
#include "repl.h"

static ppl_state *volatile g_state;     /* for the signal handler only */
static volatile sig_atomic_t g_running;  /* an evaluation is in progress */
static volatile sig_atomic_t g_sigint;   /* Ctrl-C seen at the prompt */

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
    "Unfinished blocks and brackets continue on the next line.\n"
    "  :help          this text\n"
    "  :load FILE     run a .ppl file in this session\n"
    "  :quit          leave (or Ctrl-D)\n"
    "Ctrl-C interrupts a running computation.\n";

/* Append line to the growing buffer *buf. */
static int append(char **buf, size_t *len, const char *line) {
    size_t n = strlen(line);
    char *p = realloc(*buf, *len + n + 2);
    if (!p) return -1;
    memcpy(p + *len, line, n);
    *len += n;
    p[(*len)++] = '\n';
    p[*len] = 0;
    *buf = p;
    return 0;
}

static void report(ppl_state *S, ppl_status st) {
    if (st == PPL_ERR_INTERRUPTED) {
        fprintf(stderr, "interrupted\n");
        return;
    }
    const char *m = ppl_errmsg(S);
    size_t n = strlen(m);
    fprintf(stderr, "%s%s", m, n && m[n - 1] == '\n' ? "" : "\n");
}

/* Handle a complete chunk; returns 1 when the session should end. */
static int handle(ppl_state *S, const char *chunk) {
    const char *s = chunk;
    while (*s == ' ' || *s == '\t') s++;
    if (*s == ':') {
        if (strncmp(s, ":quit", 5) == 0 || strncmp(s, ":q", 2) == 0) return 1;
        if (strncmp(s, ":help", 5) == 0) {
            fputs(HELP, stdout);
            return 0;
        }
        if (strncmp(s, ":load", 5) == 0) {
            char path[4096];
            if (sscanf(s + 5, " %4095[^\n]", path) != 1) {
                fprintf(stderr, "error: :load needs a file name\n");
                return 0;
            }
            size_t n = strlen(path);
            while (n && (path[n - 1] == ' ' || path[n - 1] == '\r')) path[--n] = 0;
            g_running = 1;
            ppl_status st = ppl_load_file(S, path);
            g_running = 0;
            if (st != PPL_OK) report(S, st);
            return 0;
        }
        fprintf(stderr, "error: unknown command \"%.*s\" (try :help)\n", (int)strcspn(s, " \n"), s);
        return 0;
    }
    const char *echo = "";
    g_running = 1;
    ppl_status st = ppl_eval(S, "<repl>", chunk, &echo);
    g_running = 0;
    if (st != PPL_OK) report(S, st);
    else if (echo && *echo) printf("%s\n", echo);
    fflush(stdout);
    return 0;
}

static char *history_path(void) {
    const char *home = getenv("HOME");
    if (!home || !*home) return NULL;
    size_t n = strlen(home) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/.ppl_history", home);
    return p;
}

static char *read_plain(void) {
    size_t cap = 256, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    int c;
    while ((c = fgetc(stdin)) != EOF && c != '\n') {
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
    buf[n] = 0;
    return buf;
}

int ppl_cli_repl(void) {
    ppl_options o = ppl_default_options();
    o.out = to_stdout;
    ppl_state *S = ppl_open(&o);
    if (!S) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    g_state = S;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    bool tty = isatty(STDIN_FILENO);
    char *hist = tty ? history_path() : NULL;
    if (tty) {
        if (hist) read_history(hist);
        printf("ppl %s - :help for help, Ctrl-D to leave\n", ppl_version());
    }
    char *buf = NULL;
    size_t len = 0;
    for (;;) {
        g_sigint = 0;
        char *line = tty ? readline(buf ? "...> " : "ppl> ") : read_plain();
        if (!line) {
            if (tty && g_sigint) {
                /* Ctrl-C at the prompt: drop the pending input */
                printf("\n");
                free(buf);
                buf = NULL;
                len = 0;
                continue;
            }
            if (tty) printf("\n");
            break;
        }
        if (tty && *line) add_history(line);
        if (append(&buf, &len, line)) {
            free(line);
            fprintf(stderr, "error: out of memory\n");
            break;
        }
        free(line);
        if (ppl_incomplete(buf)) continue;
        int quit = handle(S, buf);
        free(buf);
        buf = NULL;
        len = 0;
        if (quit) break;
    }
    /* input that ended inside an unfinished block still runs (and reports) */
    if (buf) {
        handle(S, buf);
        free(buf);
    }
    if (hist) {
        write_history(hist);
        free(hist);
    }
    g_state = NULL;
    ppl_close(S);
    return 0;
}
