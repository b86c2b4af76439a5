/* parse.c - the driver of the generated scanner and parser: text in, AST
 * out, every syntax error reported to the diagnostic list; and the REPL's
 * "is this input unfinished?" test. */
#include <stdlib.h>
#include <string.h>
#include "ast.h"
#include "parse_internal.h"
#include "ppl_parser.h"
#include "ppl_lexer.h"

static ast_program *parse_failed(struct lex_extra *x, rt_diaglist *diags, const char *why) {
    ast_free(x->result);
    if (why) rt_diag_add(diags, NULL, (rt_loc){0, 0, 0, 0}, "%s", why);
    return NULL;
}

ast_program *rt_parse(rt_source *src, rt_diaglist *diags) {
    struct lex_extra x;
    memset(&x, 0, sizeof x);
    x.line = 1;
    x.col = 1;
    x.src = src;
    x.diags = diags;
    if (src->len > (size_t)INT32_MAX / 2)   /* flex buffers are int-sized */
        return parse_failed(&x, diags, "the source text is too large to parse");
    yyscan_t scanner;
    if (yylex_init_extra(&x, &scanner)) return parse_failed(&x, diags, "out of memory while parsing");
    YY_BUFFER_STATE buf = yy_scan_bytes(src->text, (int)src->len, scanner);
    int rc = buf ? yyparse(scanner, &x) : 2;
    if (buf) yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
    if (x.oom || (rc == 2 && !x.too_deep)) return parse_failed(&x, diags, "out of memory while parsing");
    if (rc != 0 || x.nerr > 0 || !x.result) {
        /* every path to a failure reports first; this is a safety net */
        return parse_failed(&x, diags, x.nerr == 0 ? "syntax error" : NULL);
    }
    ast_program *p = calloc(1, sizeof *p);
    if (!p) return parse_failed(&x, diags, "out of memory while parsing");
    p->body = x.result;
    p->src = rt_source_retain(src);
    return p;
}

void ast_program_free(ast_program *p) {
    if (!p) return;
    ast_free(p->body);
    rt_source_release(p->src);
    free(p);
}

/* ---- the REPL's continuation test ---- */

static int is_word_char(char c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Does text[0, n) end with the keyword `w` (as a whole word)? */
static int ends_with_word(const char *text, size_t n, const char *w) {
    size_t k = strlen(w);
    if (n < k || memcmp(text + n - k, w, k) != 0) return 0;
    return n == k || !is_word_char(text[n - k - 1]);
}

/* Does text[0, n) end with a number like `1.` (complete: the dot is its
 * decimal point, not a field access waiting for a name)? */
static int ends_with_number_dot(const char *text, size_t n) {
    size_t i = n - 1;                      /* text[i] == '.' */
    size_t digits = 0;
    while (i > 0 && text[i - 1] >= '0' && text[i - 1] <= '9') {
        i--;
        digits++;
    }
    return digits > 0 && (i == 0 || !is_word_char(text[i - 1]));
}

/* The last character of the text that is not blank or comment decides
 * whether a binary operator (or `=`, `~`, `,`) is left dangling. */
static int dangling(const char *text, size_t n) {
    if (n == 0) return 0;
    if (text[n - 1] == '.') return !ends_with_number_dot(text, n);
    if (strchr("+-*/%@=~,<>:", text[n - 1])) return 1;
    static const char *const words[] = {"and", "or", "not", "else", "in", "as"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (ends_with_word(text, n, words[i])) return 1;
    return 0;
}

/* Bytes that can appear outside strings and comments; any other byte is
 * already a syntax error that more lines cannot repair. */
static int valid_code_byte(const char *p) {
    unsigned char c = (unsigned char)*p;
    if (c == '!') return p[1] == '=';
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || is_word_char((char)c) ||
           (c != 0 && strchr(".()[]{},;:~=<>+-*/%@", c) != NULL);
}

static char closer_of(char open) { return open == '(' ? ')' : open == '[' ? ']' : '}'; }

int rt_parse_incomplete(const char *text) {
    if (!text) return 0;
    char open[PPL_MAX_PARSE_DEPTH];    /* the brackets still open, innermost last */
    int depth = 0;
    int in_str = 0;
    size_t last = 0;     /* end of the last significant character */
    for (size_t i = 0; text[i]; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\' && text[i + 1] && text[i + 1] != '\n') i++;
            else if (c == '"' || c == '\n') in_str = 0;   /* strings end at the line */
            last = i + 1;
            continue;
        }
        if (c == '#') {
            while (text[i + 1] && text[i + 1] != '\n') i++;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '(' || c == '[' || c == '{') {
            if (depth == PPL_MAX_PARSE_DEPTH) return 0;          /* too deep: an error */
            open[depth++] = c;
        } else if (c == ')' || c == ']' || c == '}') {
            if (depth == 0 || closer_of(open[depth - 1]) != c) return 0;   /* mismatched */
            depth--;
        } else if (!valid_code_byte(text + i)) {
            return 0;
        }
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') last = i + 1;
    }
    if (in_str || depth > 0) return 1;
    return dangling(text, last);
}
