#!/usr/bin/env python3
"""cputime.py OUT CMD...: runs CMD (its stdout to OUT) and prints the CPU
seconds (user + sys, getrusage of the child, microsecond resolution) that
it used; /usr/bin/time rounds to 10 ms, too coarse for short ppl runs."""
import resource
import subprocess
import sys

with open(sys.argv[1], "w") as out:
    subprocess.run(sys.argv[2:], stdout=out, check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.6f" % (r.ru_utime + r.ru_stime))
