/* data_io.h - data in and out: CmdStan-style JSON, CSV with a header row,
 * any value as JSON, and atomic file writes. */
#ifndef PPL_RUNTIME_DATA_IO_H
#define PPL_RUNTIME_DATA_IO_H

#include <stddef.h>
#include "value.h"

/* load_json(path), load_csv(path), write_json(path, value) */
extern const rt_builtin_def rt_data_io_builtins[];

/* Parse JSON text into a value: objects -> records, rectangular numeric
 * arrays -> float64 tensors, other arrays -> lists, strings, numbers,
 * true/false -> 1/0, NaN/Infinity/-Infinity as CmdStan writes them.  On
 * error returns -1 with "NAME:LINE:COL: message" in err. */
int rt_parse_json_text(bk_ctx *ctx, const char *name, const char *text, size_t len, rt_value *out,
                       char *err, size_t errlen);
/* The same from a file; errors are reported at callloc through the VM. */
int rt_load_json(rt_vm *vm, const char *path, rt_loc callloc, rt_value *out);
/* A header row of column names, then rows of numbers -> a record of 1-D
 * tensors.  Blank lines and lines starting with # are skipped. */
int rt_parse_csv_text(bk_ctx *ctx, const char *name, const char *text, size_t len, rt_value *out,
                      char *err, size_t errlen);
int rt_load_csv(rt_vm *vm, const char *path, rt_loc callloc, rt_value *out);
/* Any value as JSON text (malloc'd); numbers with 17 significant digits so
 * they read back bit-exactly. */
char *rt_to_json(bk_ctx *ctx, rt_value v);
/* Write data to path atomically (path.tmp, then rename).  0 or -1 + err. */
int rt_write_file_atomic(const char *path, const char *data, size_t n, char *err, size_t errlen);
/* Read a whole file (malloc'd, NUL-terminated). NULL + err on failure. */
char *rt_read_file(const char *path, size_t *len, char *err, size_t errlen);

#endif
