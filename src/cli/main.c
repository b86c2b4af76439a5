/* main.c - the ppl command: run, check, svi, the REPL.  An ordinary client
 * of include/ppl.h: every diagnostic it prints comes from ppl_errmsg.
 *
 * Exit status: 0 success, 1 an error in the program or its data, 2 a usage
 * error on the command line. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ppl.h"
#include "repl.h"

static const char USAGE[] =
    "usage:\n"
    "  ppl                                   interactive REPL\n"
    "  ppl run FILE.ppl [--seed N] [--device cpu|cuda]\n"
    "  ppl check FILE.ppl                    parse and check only\n"
    "  ppl svi FILE.ppl --model NAME [--guide NAME|auto_normal|auto_mvn|auto_delta|auto_diag]\n"
    "          [--data D.json] [--steps N] [--lr X] [--particles K] [--seed N]\n"
    "          [--out params.json] [--summary S.json]\n"
    "  ppl sample FILE.ppl --model NAME [--data D.json] [--chains C] [--warmup W] [--samples S]\n"
    "          [--seed N] [--target-accept P] [--max-depth D] [--metric diag|dense]\n"
    "          [--out draws.csv] [--summary S.json]\n"
    "  ppl --help | --version\n";

static void to_stdout(void *ud, const char *text, size_t len) {
    (void)ud;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", USAGE);
    return 2;
}

static int lib_error(ppl_state *S) {
    const char *m = ppl_errmsg(S);
    size_t n = strlen(m);
    fprintf(stderr, "%s%s", m, n && m[n - 1] == '\n' ? "" : "\n");
    return 1;
}

/* Parse an unsigned integer option value; -1 when malformed. */
static long long parse_count(const char *s) {
    char *end;
    long long v = strtoll(s, &end, 10);
    return (*s && !*end && v >= 0) ? v : -1;
}

typedef struct opts {
    const char *file, *model, *guide, *data, *out, *summary, *device;
    long long seed, steps, particles, chains, warmup, samples, max_depth;
    double target_accept;
    const char *metric;
    double lr;
    bool have_seed;
} opts;

static int parse_opts(int argc, char **argv, opts *o, const char *allowed) {
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (o->file) return usage_error("unexpected argument \"%s\"", a);
            o->file = a;
            continue;
        }
        const char *name = a + 2;
        if (strncmp(a, "--", 2) != 0 || !strstr(allowed, name) || !*name)
            return usage_error("unknown option \"%s\"", a);
        if (i + 1 >= argc) return usage_error("option \"%s\" needs a value", a);
        const char *v = argv[++i];
        if (strcmp(name, "seed") == 0) {
            if ((o->seed = parse_count(v)) < 0) return usage_error("--seed needs a non-negative integer, got \"%s\"", v);
            o->have_seed = true;
        } else if (strcmp(name, "steps") == 0) {
            if ((o->steps = parse_count(v)) < 0) return usage_error("--steps needs a non-negative integer, got \"%s\"", v);
        } else if (strcmp(name, "particles") == 0) {
            if ((o->particles = parse_count(v)) < 1) return usage_error("--particles needs a positive integer, got \"%s\"", v);
        } else if (strcmp(name, "lr") == 0) {
            char *end;
            o->lr = strtod(v, &end);
            if (!*v || *end || !(o->lr > 0)) return usage_error("--lr needs a positive number, got \"%s\"", v);
        } else if (strcmp(name, "model") == 0) o->model = v;
        else if (strcmp(name, "guide") == 0) o->guide = v;
        else if (strcmp(name, "data") == 0) o->data = v;
        else if (strcmp(name, "out") == 0) o->out = v;
        else if (strcmp(name, "summary") == 0) o->summary = v;
        else if (strcmp(name, "device") == 0) o->device = v;
        else if (strcmp(name, "metric") == 0) o->metric = v;
        else if (strcmp(name, "chains") == 0 || strcmp(name, "warmup") == 0 || strcmp(name, "samples") == 0 ||
                 strcmp(name, "max-depth") == 0) {
            long long n = parse_count(v);
            if (n < 0 || (n == 0 && strcmp(name, "warmup") != 0))
                return usage_error("this option needs a positive integer, got \"%s\"", v);
            if (name[0] == 'c') o->chains = n;
            else if (name[0] == 'w') o->warmup = n;
            else if (name[0] == 's') o->samples = n;
            else o->max_depth = n;
        } else if (strcmp(name, "target-accept") == 0) {
            char *end;
            o->target_accept = strtod(v, &end);
            if (!*v || *end || !(o->target_accept > 0 && o->target_accept < 1))
                return usage_error("--target-accept needs a number in (0, 1), got \"%s\"", v);
        }
        else return usage_error("unknown option \"%s\"", a);
    }
    if (!o->file) return usage_error("%s", "missing the .ppl file");
    return 0;
}

static ppl_state *open_state(const opts *o) {
    ppl_options po = ppl_default_options();
    po.out = to_stdout;
    po.seed = o->have_seed ? (uint64_t)o->seed : 0;
    ppl_state *S = ppl_open(&po);
    if (!S) fprintf(stderr, "error: out of memory\n");
    return S;
}

static int check_device(const opts *o) {
    if (!o->device || strcmp(o->device, "cpu") == 0) return 0;
    if (strcmp(o->device, "cuda") == 0) {
        fprintf(stderr, "error: this build has no CUDA backend (use --device cpu)\n");
        return 2;
    }
    return usage_error("--device must be cpu or cuda, got \"%s\"", o->device);
}

static int cmd_run(int argc, char **argv) {
    opts o = {0};
    int rc = parse_opts(argc, argv, &o, "seed device");
    if (rc || (rc = check_device(&o))) return rc;
    ppl_state *S = open_state(&o);
    if (!S) return 1;
    rc = ppl_load_file(S, o.file) == PPL_OK ? 0 : lib_error(S);
    ppl_close(S);
    return rc;
}

static int cmd_check(int argc, char **argv) {
    opts o = {0};
    int rc = parse_opts(argc, argv, &o, "");
    if (rc) return rc;
    ppl_state *S = open_state(&o);
    if (!S) return 1;
    if (ppl_check_file(S, o.file) == PPL_OK) printf("%s: ok\n", o.file);
    else rc = lib_error(S);
    ppl_close(S);
    return rc;
}

static int write_text(const char *path, const char *text) {
    /* write then rename, so a crash never leaves a broken file */
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp) return -1;
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) {
        remove(tmp);
        fprintf(stderr, "error: cannot write \"%s\"\n", path);
    }
    free(tmp);
    return ok ? 0 : -1;
}

static int cmd_svi(int argc, char **argv) {
    opts o = {0};
    o.steps = -1;
    int rc = parse_opts(argc, argv, &o, "model guide data steps lr particles seed out summary device");
    if (rc || (rc = check_device(&o))) return rc;
    if (!o.model) return usage_error("%s", "ppl svi needs --model NAME");
    ppl_state *S = open_state(&o);
    if (!S) return 1;
    if (ppl_load_definitions(S, o.file) != PPL_OK) {
        rc = lib_error(S);
        ppl_close(S);
        return rc;
    }
    ppl_svi_opts so = ppl_svi_defaults();
    if (o.guide) so.guide = o.guide;
    if (o.steps >= 0) so.steps = o.steps;
    if (o.lr > 0) so.lr = o.lr;
    if (o.particles > 0) so.particles = (int)o.particles;
    if (o.have_seed) so.seed = (uint64_t)o.seed;
    so.data_json = o.data;
    ppl_result *R;
    if (ppl_svi(S, o.model, &so, &R) != PPL_OK) {
        rc = lib_error(S);
        ppl_close(S);
        return rc;
    }
    char *table = ppl_result_table(R);
    if (table) fputs(table, stdout);
    free(table);
    if (o.summary) {
        char *j = ppl_result_json(R);
        if (!j || write_text(o.summary, j)) rc = 1;
        free(j);
    }
    if (o.out) {
        char *j = ppl_result_params_json(R);
        if (!j || write_text(o.out, j)) rc = 1;
        free(j);
    }
    ppl_result_free(R);
    ppl_close(S);
    return rc;
}

static int cmd_sample(int argc, char **argv) {
    opts o = {0};
    o.warmup = -1;
    int rc = parse_opts(argc, argv, &o, "model data chains warmup samples seed target-accept max-depth metric out summary device");
    if (rc || (rc = check_device(&o))) return rc;
    if (!o.model) return usage_error("%s", "ppl sample needs --model NAME");
    if (o.metric && strcmp(o.metric, "diag") != 0 && strcmp(o.metric, "dense") != 0)
        return usage_error("--metric must be diag or dense, got \"%s\"", o.metric);
    ppl_state *S = open_state(&o);
    if (!S) return 1;
    if (ppl_load_definitions(S, o.file) != PPL_OK) {
        rc = lib_error(S);
        ppl_close(S);
        return rc;
    }
    ppl_mcmc_opts mo = ppl_mcmc_defaults();
    if (o.chains) mo.chains = (int)o.chains;
    if (o.warmup >= 0) mo.warmup = (int)o.warmup;
    if (o.samples) mo.samples = (int)o.samples;
    if (o.max_depth) mo.max_depth = (int)o.max_depth;
    if (o.target_accept > 0) mo.target_accept = o.target_accept;
    if (o.have_seed) mo.seed = (uint64_t)o.seed;
    mo.dense_metric = o.metric && strcmp(o.metric, "dense") == 0;
    mo.data_json = o.data;
    ppl_result *R;
    if (ppl_mcmc(S, o.model, &mo, &R) != PPL_OK) {
        rc = lib_error(S);
        ppl_close(S);
        return rc;
    }
    char *table = ppl_result_table(R);
    if (table) fputs(table, stdout);
    free(table);
    if (o.summary) {
        char *j = ppl_result_json(R);
        if (!j || write_text(o.summary, j)) rc = 1;
        free(j);
    }
    if (o.out) {
        char err[512];
        if (ppl_result_write_stan_csv(R, o.out, err, sizeof err) != PPL_OK) {
            fprintf(stderr, "error: %s\n", err);
            rc = 1;
        }
    }
    ppl_result_free(R);
    ppl_close(S);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) return ppl_cli_repl();
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs("ppl - a small probabilistic programming language\n\n", stdout);
        fputs(USAGE, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("ppl %s\n", ppl_version());
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
    if (strcmp(cmd, "run") == 0) return cmd_run(argc, argv);
    if (strcmp(cmd, "check") == 0) return cmd_check(argc, argv);
    if (strcmp(cmd, "svi") == 0) return cmd_svi(argc, argv);
    if (strcmp(cmd, "sample") == 0) return cmd_sample(argc, argv);
    return usage_error("unknown command \"%s\"", cmd);
}
