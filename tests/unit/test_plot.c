/* test_plot.c - the SVG pictures: the plot_* built-ins and `ppl svi|sample
 * --plot` write well-formed XML (checked by a small parser here, and by
 * xmllint when installed), with the expected ticks, labels and escaping;
 * each picture is rendered to PNG with rsvg-convert (librsvg2-bin) and the
 * PNG's size checked against the SVG's.  The rendering checks are skipped,
 * with a message, when rsvg-convert is not installed.  Also: the histogram
 * and density estimates against exact values, and the error messages. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ppl.h"
#include "svg.h"

static ppl_state *S;
static char dir[256];

static void setup(void) {
    S = ppl_open(NULL);
    snprintf(dir, sizeof dir, "/tmp/ppl_test_plot.%ld", (long)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    ck_assert(system(cmd) == 0);
}

static void teardown(void) {
    ppl_close(S);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "missing %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert(fread(s, 1, (size_t)n, f) == (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* ---- a small XML well-formedness check ---------------------------------- */

static bool name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == ':' || c == '.'; }

static const char *entity(const char *p) {
    static const char *const ok[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (int i = 0; i < 5; i++)
        if (strncmp(p, ok[i], strlen(ok[i])) == 0) return p + strlen(ok[i]);
    return NULL;
}

/* NULL when well-formed, else a description of the first problem. */
static const char *xml_problem(const char *s, int *elements) {
    static char msg[128];
    const char *stack[256];
    size_t len[256];
    int depth = 0, roots = 0;
    *elements = 0;
    const char *p = s;
    if (strncmp(p, "<?xml", 5) == 0) {
        p = strstr(p, "?>");
        if (!p) return "unterminated XML declaration";
        p += 2;
    }
    while (*p) {
        if (*p != '<') {
            if (*p == '&') {
                if (!(p = entity(p))) return "bad entity in text";
                continue;
            }
            if (depth == 0 && !(*p == ' ' || *p == '\n')) return "text outside the root element";
            p++;
            continue;
        }
        if (p[1] == '/') {
            const char *n = p + 2;
            size_t l = 0;
            while (name_char(n[l])) l++;
            if (depth == 0 || len[depth - 1] != l || strncmp(stack[depth - 1], n, l) != 0) {
                snprintf(msg, sizeof msg, "mismatched end tag </%.*s>", (int)l, n);
                return msg;
            }
            depth--;
            if (n[l] != '>') return "junk in end tag";
            p = n + l + 1;
            continue;
        }
        const char *n = p + 1;
        size_t l = 0;
        while (name_char(n[l])) l++;
        if (l == 0) return "empty element name";
        if (depth == 0 && ++roots > 1) return "several root elements";
        (*elements)++;
        p = n + l;
        for (;;) {
            while (*p == ' ' || *p == '\n') p++;
            if (*p == '/' && p[1] == '>') {
                p += 2;
                break;
            }
            if (*p == '>') {
                if (depth == 256) return "too deep";
                stack[depth] = n;
                len[depth++] = l;
                p++;
                break;
            }
            size_t al = 0;
            while (name_char(p[al])) al++;
            if (al == 0 || p[al] != '=' || p[al + 1] != '"') {
                snprintf(msg, sizeof msg, "bad attribute in <%.*s>: %.20s", (int)l, n, p);
                return msg;
            }
            p += al + 2;
            while (*p && *p != '"') {
                if (*p == '<') return "'<' in an attribute value";
                if (*p == '&') {
                    if (!(p = entity(p))) return "bad entity in an attribute";
                } else {
                    p++;
                }
            }
            if (!*p) return "unterminated attribute";
            p++;
        }
    }
    if (depth) return "unclosed element";
    if (roots != 1) return "no root element";
    return NULL;
}

static bool have(const char *tool) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

static uint32_t be32(const unsigned char *b) { return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]; }

/* Well-formed, and (when the tools exist) accepted by xmllint and rendered
 * by rsvg-convert to a PNG of the SVG's size.  Returns the text (free it). */
static char *check_svg(const char *path) {
    char *s = slurp(path);
    int elements;
    const char *bad = xml_problem(s, &elements);
    ck_assert_msg(bad == NULL, "%s: not well-formed: %s", path, bad);
    ck_assert_msg(elements > 5, "%s: only %d elements", path, elements);
    ck_assert_msg(strstr(s, "<svg xmlns=\"http://www.w3.org/2000/svg\""), "%s: no SVG root", path);
    int w = 0, h = 0;
    const char *ws = strstr(s, " width=\""), *hs = strstr(s, " height=\"");
    ck_assert(ws && hs && sscanf(ws, " width=\"%d\"", &w) == 1 && sscanf(hs, " height=\"%d\"", &h) == 1);
    char cmd[700];
    if (have("xmllint")) {
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
        ck_assert_msg(system(cmd) == 0, "xmllint rejects %s", path);
    }
    if (!have("rsvg-convert")) {
        static bool said;
        if (!said) printf("SKIP rendering checks: rsvg-convert not found (Debian package librsvg2-bin)\n");
        said = true;
        return s;
    }
    snprintf(cmd, sizeof cmd, "rsvg-convert '%s' -o '%s.png' 2>'%s.err'", path, path, path);
    ck_assert_msg(system(cmd) == 0, "rsvg-convert failed on %s", path);
    char pngp[300], errp[300];
    snprintf(pngp, sizeof pngp, "%s.png", path);
    snprintf(errp, sizeof errp, "%s.err", path);
    char *e = slurp(errp);
    ck_assert_msg(e[0] == 0, "rsvg-convert complains about %s: %s", path, e);
    free(e);
    FILE *f = fopen(pngp, "rb");
    ck_assert(f != NULL);
    unsigned char hd[24];
    ck_assert(fread(hd, 1, 24, f) == 24);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    ck_assert_msg(memcmp(hd, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(hd + 12, "IHDR", 4) == 0, "%s: not a PNG", pngp);
    ck_assert_msg((int)be32(hd + 16) == w && (int)be32(hd + 20) == h, "%s: PNG is %ux%u, SVG %dx%d", pngp, be32(hd + 16),
                  be32(hd + 20), w, h);
    ck_assert_msg(size > 200, "%s: suspiciously small PNG (%ld bytes)", pngp, size);
    return s;
}

static void run(const char *src) {
    ck_assert_msg(ppl_load_string(S, "<test>", src) == PPL_OK, "%s\n%s", src, ppl_errmsg(S));
}

static char *plot(const char *name, const char *call_fmt) {
    char path[300], src[2048];
    snprintf(path, sizeof path, "%s/%s.svg", dir, name);
    snprintf(src, sizeof src, call_fmt, path);
    run(src);
    return check_svg(path);
}

START_TEST(builtins_render) {
    run("x = linspace(0, 10, 101)\n");
    char *s = plot("lines", "plot_lines(\"%s\", {x: x, ys: [sin(x), cos(x)]}, labels=[\"sin\", \"cos\"], "
                            "title=\"a<b & \\\"c\\\"\", xlabel=\"time\", ylabel=\"value\")");
    /* ticks 0, 2, ..., 10 on x; -1 .. 1 in steps of 0.5 on y; escaped title */
    for (int t = 0; t <= 10; t += 2) {
        char lab[32];
        snprintf(lab, sizeof lab, ">%d</text>", t);
        ck_assert_msg(strstr(s, lab), "no x tick %d", t);
    }
    ck_assert(strstr(s, ">-1.0</text>") && strstr(s, ">0.5</text>") && strstr(s, ">1.0</text>"));
    ck_assert(strstr(s, ">a&lt;b &amp; &quot;c&quot;</text>"));
    ck_assert(strstr(s, ">sin</text>") && strstr(s, ">cos</text>") && strstr(s, ">time</text>"));
    free(s);
    s = plot("loss", "plot_lines(\"%s\", 1000 * exp(-x) + 1, smooth=5, logy=true)");
    ck_assert(strstr(s, ">1</text>") && strstr(s, ">10</text>") && strstr(s, ">100</text>") && strstr(s, ">1000</text>"));
    free(s);
    /* 200000 points of a long loss curve are thinned to a few per pixel
     * column, keeping the extremes (the spike at step 100000 survives) */
    s = plot("long", "plot_lines(\"%s\", where(arange(0, 200000) == 100000, 50.0, sin(arange(0, 200000) / 5000)))");
    ck_assert_msg(strlen(s) < 60000, "%zu bytes for a long line", strlen(s));
    double ymin = 1e9, ymax = -1e9;
    int npts = 0;
    for (const char *q = strstr(s, "points=\""); q; q = strstr(q + 1, "points=\"")) {
        const char *r = q + 8;
        double X, Y;
        int used;
        while (sscanf(r, "%lf,%lf %n", &X, &Y, &used) == 2) {
            ymin = Y < ymin ? Y : ymin;
            ymax = Y > ymax ? Y : ymax;
            npts++;
            r += used;
        }
    }
    /* plot area y from 36 to 346; the spike near the top, sin's troughs near the bottom */
    ck_assert_msg(npts > 500 && npts < 3000, "%d points drawn", npts);
    ck_assert_msg(ymin < 60 && ymax > 320, "y pixels %g..%g", ymin, ymax);
    free(s);
    /* less than a decade on a log axis: ticks at 1..9 times a power of ten */
    s = plot("logsmall", "plot_lines(\"%s\", [2.0, 3.0, 4.0], logy=true)");
    ck_assert(strstr(s, ">2</text>") && strstr(s, ">3</text>") && strstr(s, ">4</text>"));
    free(s);
    free(plot("band", "plot_band(\"%s\", x, sin(x), sin(x) - 0.3, sin(x) + 0.3, points={x: x, y: sin(x) + 0.1}, "
                      "truth=sin(x), title=\"band\")"));
    free(plot("hist", "plot_hist(\"%s\", Normal(0, 1).sample([2000]), bins=25, ref=0)"));
    free(plot("density", "plot_density(\"%s\", Normal(0, 1).sample([500, 3]), labels=[\"a\", \"b\", \"c\"])"));
    free(plot("scatter", "plot_scatter(\"%s\", x, x * x, label=\"x^2\")"));
    free(plot("images", "plot_images(\"%s\", reshape(arange(0, 6 * 64), [6, 8, 8]), cols=3, title=\"digits\")"));
    /* one 2x4 image: the page, the black background, then runs of equal
     * gray merged into one rectangle each: row 0 one white run, row 1 two */
    s = plot("image", "plot_images(\"%s\", [[0, 0, 1, 1], [1, 0, 0, 1]])");
    int rects = 0;
    for (const char *p = s; (p = strstr(p, "<rect")); p++) rects++;
    ck_assert_int_eq(rects, 5);
    ck_assert(strstr(s, "width=\"128.0\" height=\"64.0\" fill=\"rgb(255,255,255)\""));
    free(s);
}
END_TEST

START_TEST(cli_plot) {
    const char *bin = getenv("PPL_BIN");
    if (!bin) {
        printf("SKIP cli_plot: PPL_BIN not set\n");
        return;
    }
    char cmd[1024], path[300];
    snprintf(path, sizeof path, "%s/svi.svg", dir);
    snprintf(cmd, sizeof cmd, "%s svi examples/temperature.ppl --model weather --data examples/temperature.json --steps 300 --plot %s >/dev/null", bin, path);
    ck_assert_msg(system(cmd) == 0, "%s", cmd);
    char *s = check_svg(path);
    ck_assert(strstr(s, "SVI loss") && strstr(s, ">step</text>"));
    free(s);
    snprintf(path, sizeof path, "%s/nuts.svg", dir);
    snprintf(cmd, sizeof cmd, "%s sample examples/temperature.ppl --model weather --data examples/temperature.json --chains 2 --warmup 200 --samples 200 --plot %s >/dev/null", bin, path);
    ck_assert_msg(system(cmd) == 0, "%s", cmd);
    s = check_svg(path);
    ck_assert(strstr(s, ">trace of temp</text>") && strstr(s, ">posterior density of temp</text>") && strstr(s, ">chain 2</text>"));
    free(s);
    snprintf(cmd, sizeof cmd, "%s svi examples/temperature.ppl --model weather --data examples/temperature.json --steps 10 --plot /nonexistent/dir/x.svg >/dev/null 2>&1", bin);
    ck_assert_msg(system(cmd) != 0, "writing into a missing directory should fail");
}
END_TEST

START_TEST(estimates) {
    /* histogram: exact counts and a density integrating to 1 */
    double x[] = {0, 0.5, 1, 1.5, 2, 2, 3, 4, NAN};
    double e[5], h[5];
    ck_assert_int_eq(rt_svg_histogram(x, 9, 4, false, e, h), 0);
    ck_assert(e[0] == 0 && e[4] == 4 && e[2] == 2);
    ck_assert(h[0] == 2 && h[1] == 2 && h[2] == 2 && h[3] == 2);
    ck_assert_int_eq(rt_svg_histogram(x, 9, 4, true, e, h), 0);
    ck_assert(fabs(h[0] + h[1] + h[2] + h[3] - 1) < 1e-12);
    /* KDE of a standard-normal grid of quantiles: integrates to 1 and is near
     * phi(0) at 0 (bias of a Gaussian kernel: phi(0) / sqrt(1 + bw^2)) */
    enum { N = 2000, M = 400 };
    static double q[N], gx[M], gy[M];
    for (int i = 0; i < N; i++) {
        /* inverse cdf by bisection on erf */
        double p = (i + 0.5) / N, lo = -10, hi = 10;
        for (int k = 0; k < 100; k++) {
            double mid = (lo + hi) / 2;
            if (0.5 * erfc(-mid / sqrt(2)) < p) lo = mid;
            else hi = mid;
        }
        q[i] = lo;
    }
    ck_assert_int_eq(rt_svg_kde(q, N, M, gx, gy), 0);
    double area = 0, at0 = 0, best = 1e9;
    for (int j = 1; j < M; j++) area += 0.5 * (gy[j] + gy[j - 1]) * (gx[j] - gx[j - 1]);
    for (int j = 0; j < M; j++)
        if (fabs(gx[j]) < best) best = fabs(gx[j]), at0 = gy[j];
    ck_assert_msg(fabs(area - 1) < 1e-3, "KDE area %g", area);
    double bw = 0.9 * 1.0 * pow(N, -0.2);
    ck_assert_msg(fabs(at0 - 0.3989422804 / sqrt(1 + bw * bw)) < 0.01, "KDE at 0: %g", at0);
    ck_assert_int_eq(rt_svg_kde((double[]){NAN}, 1, M, gx, gy), -1);
}
END_TEST

static void fails(const char *src, const char *frag) {
    ck_assert_msg(ppl_load_string(S, "t.ppl", src) != PPL_OK, "%s: should fail", src);
    ck_assert_msg(strstr(ppl_errmsg(S), frag), "%s: message lacks \"%s\":\n%s", src, frag, ppl_errmsg(S));
}

START_TEST(errors) {
    fails("plot_lines(\"/tmp/x.svg\", {x: [1, 2, 3], y: [1, 2]})", "plot_lines: x has 3 values but each series has 2");
    fails("plot_lines(\"/tmp/x.svg\", {x: [1, 2]})", "plot_lines: the record needs exactly one of y");
    fails("plot_lines(\"/tmp/x.svg\", [1, 2], labels=[\"a\", \"b\"])", "plot_lines: 2 labels for 1 series");
    fails("plot_band(\"/tmp/x.svg\", [1, 2], [1, 2], [0, 1], [2])", "plot_band: upper has shape [1], expected 2 values");
    fails("plot_images(\"/tmp/x.svg\", [1, 2, 3])", "plot_images: images must be [N, H, W]");
    fails("plot_hist(\"/tmp/x.svg\", [1, 2], bins=0)", "plot_hist: bins must be an integer in 1..10000");
    fails("plot_lines(\"/nonexistent/dir/x.svg\", [1, 2])", "cannot write \"/nonexistent/dir/x.svg");
    fails("plot_scatter(\"/tmp/x.svg\", [1, 2], [1, 2], color=1)", "color");
}
END_TEST

int main(void) {
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("plot");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, builtins_render);
    tcase_add_test(tc, cli_plot);
    tcase_add_test(tc, estimates);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int nf = srunner_ntests_failed(r);
    srunner_free(r);
    return nf ? 1 : 0;
}
