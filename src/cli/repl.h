/* repl.h - the interactive read-eval-print loop of the ppl command. */
#ifndef PPL_CLI_REPL_H
#define PPL_CLI_REPL_H

/* Runs the REPL on stdin/stdout until end of input or :quit; returns the
 * process exit status (0). */
int ppl_cli_repl(void);

#endif
