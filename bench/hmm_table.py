#!/usr/bin/env python3
"""hmm_table.py - the docs/BENCHMARKS.md tables of bench/bench_hmm.sh: reads
the output lines ("measure K shape value unit") of bench_hmm (ppl and the
plain C loops), hmm_peers.py (hmmlearn) and hmm_pomegranate.py from the
files given, and prints the forward / gradient / forward-backward / Viterbi
table (ns per step) and the Baum-Welch table in Markdown.  The peers' long
sequences may be shorter than ppl's (their cost is linear in T): rows are
matched by K and by long / batch.
usage: hmm_table.py FILE...
"""
import sys

vals = {}
for path in sys.argv[1:]:
    for line in open(path):
        f = line.split()
        if len(f) != 5 or line.startswith("#"):
            continue
        name, K, shape, v, _ = f
        kind = "batch" if shape == "50x100" else "long"
        vals[(name, int(K), kind)] = (float(v), shape)


def g(name, K, kind):
    x = vals.get((name, K, kind))
    return x[0] if x else None


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.1f}x"


Ks = sorted({k for (_, k, _) in vals})
print("| K | sequences | plain C | plain C + dgemv | ppl forward | ppl / best plain | ppl gradient |"
      " ppl fwd-bwd | ppl Viterbi | hmmlearn forward (log / scaling) | hmmlearn fwd-bwd |"
      " hmmlearn Viterbi | pomegranate forward / fwd-bwd | hmmlearn log / ppl forward |"
      " hmmlearn / ppl Viterbi |")
print("|" + "---|" * 15)
for K in Ks:
    for kind in ("long", "batch"):
        pf = g("ppl_forward", K, kind)
        if pf is None:
            continue
        sh = vals[("ppl_forward", K, kind)][1]
        hl = vals.get(("hmmlearn_forward", K, kind))
        if hl and hl[1] != sh:
            sh += f" (hmmlearn {hl[1]})"
        pg = vals.get(("pomegranate_forward", K, kind))
        if pg and pg[1] != vals[("ppl_forward", K, kind)][1]:
            sh += f" (pomegranate {pg[1]})"
        best = min(x for x in (g("plain_c_forward", K, kind), g("plain_c_forward_blas", K, kind)) if x)
        print(f"| {K} | {sh} | {fmt(g('plain_c_forward', K, kind))} | "
              f"{fmt(g('plain_c_forward_blas', K, kind))} | {fmt(pf)} | "
              f"{fmt(g('ratio_forward_to_best_plain', K, kind))} | {fmt(g('ppl_forward_grad', K, kind))} | "
              f"{fmt(g('ppl_forward_backward', K, kind))} | {fmt(g('ppl_viterbi', K, kind))} | "
              f"{fmt(g('hmmlearn_forward', K, kind))} / {fmt(g('hmmlearn_scaling_forward', K, kind))} | "
              f"{fmt(g('hmmlearn_forward_backward', K, kind))} | {fmt(g('hmmlearn_viterbi', K, kind))} | "
              f"{fmt(g('pomegranate_forward', K, kind))} / {fmt(g('pomegranate_forward_backward', K, kind))} | "
              f"{ratio(g('hmmlearn_forward', K, kind), pf)} | "
              f"{ratio(g('hmmlearn_viterbi', K, kind), g('ppl_viterbi', K, kind))} |")
        del best
print()
print("| K | sequences | ppl BW s/iter | ppl BW us/step | one BW iteration / one ppl forward |"
      " hmmlearn BW us/step (log / scaling) | pomegranate BW us/step | ppl speed-up vs hmmlearn"
      " (log / scaling) |")
print("|" + "---|" * 8)
for K in Ks:
    for kind in ("long", "batch"):
        bw = g("ppl_baum_welch_iter", K, kind)
        if bw is None:
            continue
        sh = vals[("ppl_baum_welch_iter", K, kind)][1]
        steps = 5000 if kind == "batch" else int(sh.split("x")[1])

        def per_step(name):
            x = vals.get((name, K, kind))
            if not x:
                return None
            n = 5000 if kind == "batch" else int(x[1].split("x")[1])
            return x[0] / n * 1e6

        us = bw / steps * 1e6
        hl, hs, pg = (per_step("hmmlearn_baum_welch_iter"), per_step("hmmlearn_scaling_baum_welch_iter"),
                      per_step("pomegranate_baum_welch_iter"))
        fw = g("ppl_forward", K, kind)
        print(f"| {K} | {sh} | {bw:.4g} | {us:.3g} | {us * 1e3 / fw:.1f} | {fmt(hl)} / {fmt(hs)} | "
              f"{fmt(pg)} | {ratio(hl, us)} / {ratio(hs, us)} |")
