/* data_io.h - data in and out: CmdStan-style JSON, CSV with a header row,
 * any value as JSON, and atomic file writes. */
#ifndef PPL_RUNTIME_DATA_IO_H
#define PPL_RUNTIME_DATA_IO_H

#include <stddef.h>
#include "value.h"

/* load_json(path), load_csv(path), write_json(path, value) */
extern const rt_builtin_def rt_data_io_builtins[];

/* Parse JSON text into a value: objects -> records, rectangular arrays of
 * numbers (nested to at most BK_MAXDIM levels) -> float64 tensors of that
 * shape ([] -> shape [0], [[], []] -> [2, 0]), other arrays -> lists,
 * strings (\u escapes as UTF-8), numbers -> 0-d tensors, true/false -> 1/0,
 * null -> none, and NaN / Infinity / -Infinity (also Inf, inf, nan) as
 * CmdStan writes them.  Nesting deeper than 64 levels, duplicate fields,
 * ragged arrays and numbers beyond float64 range are errors.  On error
 * returns -1 with "NAME:LINE:COL: message" in err, e.g.
 * "data.json:3:14: expected a number" or
 * "data.json:2:9: ragged array: row 2 has 3 elements, row 1 has 4". */
int rt_parse_json_text(bk_ctx *ctx, const char *name, const char *text, size_t len, rt_value *out,
                       char *err, size_t errlen);
/* The same from a file; errors are reported at callloc through the VM
 * (PPL_ERR_IO when the file cannot be read, else a runtime error whose
 * message starts with the data file's path:line:col). */
int rt_load_json(rt_vm *vm, const char *path, rt_loc callloc, rt_value *out);
/* A header row of column names (optionally "quoted", "" for a quote), then
 * rows of numbers -> a record of 1-D float64 tensors named by the header.
 * Blank lines and lines starting with # are skipped; CRLF is accepted;
 * nan / inf cells are numbers.  Errors name path:line:col (a cell that is
 * not a number, a row with the wrong number of fields, an empty cell, a
 * duplicate or empty column name, an unterminated quote). */
int rt_parse_csv_text(bk_ctx *ctx, const char *name, const char *text, size_t len, rt_value *out,
                      char *err, size_t errlen);
int rt_load_csv(rt_vm *vm, const char *path, rt_loc callloc, rt_value *out);
/* Any value as one line of JSON (malloc'd; NULL on out of memory):
 * tensors as numbers or nested arrays, each number in the fewest digits
 * (at most 17) that read back bit-exactly, NaN / Infinity / -Infinity as
 * CmdStan writes them; records as objects, lists as arrays, strings
 * escaped, none as null, a distribution as its family name ("Normal"),
 * other values as their type name. */
char *rt_to_json(bk_ctx *ctx, rt_value v);
/* Write data to path atomically (path.tmp, then rename).  0 or -1 + err. */
int rt_write_file_atomic(const char *path, const char *data, size_t n, char *err, size_t errlen);
/* Read a whole file (malloc'd, NUL-terminated). NULL + err on failure. */
char *rt_read_file(const char *path, size_t *len, char *err, size_t errlen);

#endif
