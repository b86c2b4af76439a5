/* parse.c - the driver of the generated scanner and parser: text in, AST
 * out, every syntax error reported to the diagnostic list. */
#include <stdlib.h>
#include <string.h>
#include "ast.h"
#include "parse_internal.h"
#include "ppl_parser.h"
#include "ppl_lexer.h"

ast_program *rt_parse(rt_source *src, rt_diaglist *diags) {
    struct lex_extra x;
    memset(&x, 0, sizeof x);
    x.line = 1;
    x.col = 1;
    x.src = src;
    x.diags = diags;
    yyscan_t scanner;
    if (yylex_init_extra(&x, &scanner)) return NULL;
    YY_BUFFER_STATE buf = yy_scan_bytes(src->text, (int)src->len, scanner);
    int rc = buf ? yyparse(scanner, &x) : 2;
    if (buf) yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
    if (rc == 2 || x.oom) {
        ast_free(x.result);
        rt_diag_add(diags, NULL, (rt_loc){0, 0, 0, 0}, "out of memory while parsing");
        return NULL;
    }
    if (rc != 0 || x.nerr > 0 || !x.result) {
        if (x.nerr == 0) rt_diag_add(diags, src, (rt_loc){x.line, x.col, x.line, x.col}, "syntax error");
        ast_free(x.result);
        return NULL;
    }
    ast_program *p = calloc(1, sizeof *p);
    if (!p) {
        ast_free(x.result);
        rt_diag_add(diags, NULL, (rt_loc){0, 0, 0, 0}, "out of memory while parsing");
        return NULL;
    }
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

static bool ends_with_word(const char *s, size_t n, const char *w) {
    size_t k = strlen(w);
    if (n < k || memcmp(s + n - k, w, k) != 0) return false;
    if (n == k) return true;
    char c = s[n - k - 1];
    return !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
}

int rt_parse_incomplete(const char *text) {
    int depth = 0;
    bool in_str = false;
    const char *last = NULL; /* last significant character */
    size_t lastlen = 0;
    const char *line_start = text;
    for (const char *p = text; *p; p++) {
        char c = *p;
        if (in_str) {
            if (c == '\\' && p[1]) p++;
            else if (c == '"') in_str = false;
            else if (c == '\n') in_str = false; /* an unterminated string is an error, not more input */
            continue;
        }
        if (c == '#') {
            while (p[1] && p[1] != '\n') p++;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '(' || c == '[' || c == '{') depth++;
        else if (c == ')' || c == ']' || c == '}') depth--;
        if (c == '\n') line_start = p + 1;
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            last = p;
            lastlen = (size_t)(p - text) + 1;
        }
    }
    (void)line_start;
    if (in_str) return 0;
    if (depth > 0) return 1;
    if (!last) return 0;
    switch (*last) {
    case '+': case '-': case '*': case '/': case '%': case '@': case '=': case '~':
    case ',': case '<': case '>': case ':': case '.':
        return 1;
    }
    if (ends_with_word(text, lastlen, "and") || ends_with_word(text, lastlen, "or") ||
        ends_with_word(text, lastlen, "not") || ends_with_word(text, lastlen, "else"))
        return 1;
    return 0;
}
