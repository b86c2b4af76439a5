#!/bin/sh
# Interpreter overhead (issue: language core): a scalar loop of 10^6
# iterations in ppl, Lua 5.4 and CPython, and the startup time of `ppl run`
# on a small model.  Needs hyperfine and lua5.4 (apt-get install hyperfine lua5.4).
# usage: bench/bench_interp.sh [path/to/ppl]
set -eu
PPL=${1:-build/ppl}
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1
hyperfine -N --warmup 2 --runs 10 --export-markdown /tmp/ppl_bench_loop.md \
    "$PPL run bench/interp/loop.ppl" \
    "lua5.4 bench/interp/loop.lua" \
    "python3 bench/interp/loop.py"
hyperfine -N --warmup 5 --runs 50 --export-markdown /tmp/ppl_bench_startup.md \
    "$PPL run bench/interp/startup.ppl"
cat /tmp/ppl_bench_loop.md /tmp/ppl_bench_startup.md
