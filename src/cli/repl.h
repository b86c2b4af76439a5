/* repl.h - the interactive read-eval-print loop of the ppl command. */
#ifndef PPL_CLI_REPL_H
#define PPL_CLI_REPL_H

/* Runs the REPL on stdin/stdout until end of input, :quit or Ctrl-D, and
 * returns the process exit status: 0; or, when stdin is not a terminal
 * (a script piped in), 1 if any chunk failed and 130 after a Ctrl-C. */
int ppl_cli_repl(void);

#endif
