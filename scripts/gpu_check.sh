#!/bin/sh
# gpu_check.sh - build ppl with the CUDA backend on a machine with an NVIDIA
# GPU and verify it: test_cuda (every op and gradient against the CPU,
# Philox equality, allocator, fallback, device errors), the whole test suite
# in the CUDA build (but test_cuda, run first), bench_cuda, the temperature SVI and an
# eight-schools NUTS run with --device cuda against --device cpu, and compute-sanitizer
# on test_cuda when there is time.  Meant to finish in under 5 minutes of wall time.
#
# Assumptions: a Debian-like system with the CUDA toolkit (nvcc, cuBLAS,
# cuSOLVER; found on PATH or in /usr/local/cuda) and a GPU with its driver;
# the build dependencies of ppl (cmake >= 3.20, bison, flex, pkg-config,
# OpenBLAS, LAPACKE, libedit, Check) are installed with apt-get when missing
# (needs root or sudo, and a Debian mirror; PyPI for cmake as a last resort).
# Nothing else is downloaded.
#
# Usage (from the repository root):  sh scripts/gpu_check.sh
# Results go to $OUT (default ./gpu_check_out): summary.txt, build.log,
# test_cuda.log, ctest.log, bench.txt, sanitizer.log.  The exit status is 0
# when the build and test_cuda pass (not skipped).  Environment:
# CUDA_ARCH (default: the GPU's own, else 90), JOBS (default: all cores).
set -u
START=$(date +%s)
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
SUM="$OUT/summary.txt"
: >"$SUM"
say() { echo "$*" | tee -a "$SUM"; }
elapsed() { echo $(($(date +%s) - START)); }
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
BUILD=${BUILD:-build-gpu}

# ---- toolchain ----------------------------------------------------------------
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    PATH=/usr/local/cuda/bin:$PATH
    export PATH
fi
if ! command -v nvcc >/dev/null 2>&1; then
    say "FAIL: nvcc not found (install the CUDA toolkit or put it on PATH)"
    exit 1
fi
say "nvcc: $(nvcc --version | tail -1)"
if command -v nvidia-smi >/dev/null 2>&1; then
    say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
fi

need=""
for c in cmake bison flex pkg-config; do command -v $c >/dev/null 2>&1 || need="$need $c"; done
pkg-config --exists libedit 2>/dev/null || need="$need libedit-dev"
pkg-config --exists check 2>/dev/null || need="$need check"
[ -e /usr/include/lapacke.h ] || need="$need liblapacke-dev"
have_cblas=no
for f in /usr/include/cblas.h /usr/include/*/cblas.h /usr/include/*/*/cblas.h; do [ -e "$f" ] && have_cblas=yes; done
[ $have_cblas = yes ] || need="$need libopenblas-dev"
if [ -n "$need" ]; then
    pkgs=$(echo "$need" | sed 's/pkg-config/pkgconf/')
    say "installing:$pkgs"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $pkgs libopenblas-dev; } \
        >"$OUT/apt.log" 2>&1 || say "apt-get failed (see apt.log)"
    if ! command -v cmake >/dev/null 2>&1; then
        python3 -m pip install -q cmake >>"$OUT/apt.log" 2>&1 && PATH=$HOME/.local/bin:$PATH
    fi
fi

# ---- configure and build --------------------------------------------------------
ARCH=${CUDA_ARCH:-}
if [ -z "$ARCH" ] && command -v nvidia-smi >/dev/null 2>&1; then
    ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
fi
ARCH=${ARCH:-90}
say "configure: -DPPL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCH (jobs $JOBS)"
build() { # $1: PPL_WERROR
    cmake -S . -B $BUILD -DPPL_CUDA=ON -DPPL_WERROR="$1" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >>"$OUT/build.log" 2>&1 &&
        timeout 240 cmake --build $BUILD -j"$JOBS" >>"$OUT/build.log" 2>&1
}
: >"$OUT/build.log"
if ! build ON; then
    # another nvcc may warn where 13.0 did not: report it, and test anyway
    say "build with warnings as errors FAILED (first errors):"
    grep -m10 -E 'error|warning' "$OUT/build.log" | tee -a "$SUM"
    if ! build OFF; then
        say "FAIL: build (tail of build.log):"
        tail -30 "$OUT/build.log" | tee -a "$SUM"
        exit 1
    fi
    say "build: ok only without -Werror ($(elapsed) s)"
else
    say "build: ok ($(elapsed) s)"
fi

# ---- test_cuda ------------------------------------------------------------------
CK_FORK=no timeout 180 ./$BUILD/test_cuda >"$OUT/test_cuda.log" 2>&1
rc=$?
tail -3 "$OUT/test_cuda.log" | tee -a "$SUM"
case $rc in
0) say "test_cuda: PASS ($(elapsed) s)" ;;
77) say "test_cuda: SKIPPED (no usable GPU)" ;;
*) say "test_cuda: FAIL (status $rc; failures in test_cuda.log)"
   grep -E ':[EF]:' "$OUT/test_cuda.log" | head -20 | tee -a "$SUM" ;;
esac
TEST_RC=$rc

# ---- benchmark ------------------------------------------------------------------
timeout 120 ./$BUILD/bench_cuda >"$OUT/bench.txt" 2>&1 || say "bench_cuda: status $? (see bench.txt)"
cat "$OUT/bench.txt" | tee -a "$SUM" >/dev/null
say "bench: done ($(elapsed) s)"

# ---- models with --device cuda against the CPU ------------------------------------
# The printed numbers of each run on both devices; the largest relative
# difference of corresponding numbers is reported (GPU sums round otherwise,
# so expect ~1e-12 for SVI, and NUTS chains that may part after warmup).
maxrel() { # file1 file2: the largest |a - b| / max(1, |a|) over the numbers, in order
    tr -s ' \t,:{}[]()=' '\n' <"$1" | grep -E '^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$' >"$OUT/.n1"
    tr -s ' \t,:{}[]()=' '\n' <"$2" | grep -E '^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$' >"$OUT/.n2"
    if [ "$(wc -l <"$OUT/.n1")" != "$(wc -l <"$OUT/.n2")" ]; then echo "different output"; return; fi
    paste "$OUT/.n1" "$OUT/.n2" | awk '{d = $1 - $2; if (d < 0) d = -d; a = $1 < 0 ? -$1 : $1;
        if (a < 1) a = 1; if (d / a > m) m = d / a} END {printf "max rel diff %.3g over %d numbers\n", m, NR}'
}
if [ $TEST_RC = 0 ]; then
    SVI="svi examples/temperature.ppl --model weather --guide auto_normal --data examples/temperature.json --steps 1000 --seed 1"
    SMP="sample examples/eight_schools.ppl --model schools --data examples/eight_schools.json --warmup 200 --samples 200 --chains 2 --seed 1"
    for run in "$SVI" "$SMP" "run examples/temperature.ppl"; do
        tag=$(echo "$run" | cut -d' ' -f1)
        # shellcheck disable=SC2086
        timeout 60 ./$BUILD/ppl $run --device cpu >"$OUT/model_$tag.cpu.txt" 2>&1
        # shellcheck disable=SC2086
        timeout 60 ./$BUILD/ppl $run --device cuda >"$OUT/model_$tag.cuda.txt" 2>"$OUT/model_$tag.cuda.err"
        mrc=$?
        if [ $mrc -ne 0 ]; then
            say "ppl $tag --device cuda: FAIL (status $mrc)"; head -5 "$OUT/model_$tag.cuda.err" | tee -a "$SUM"
        else
            say "ppl $tag --device cuda: ran; vs cpu: $(maxrel "$OUT/model_$tag.cpu.txt" "$OUT/model_$tag.cuda.txt")"
            grep -m5 '^warning:' "$OUT/model_$tag.cuda.err" | tee -a "$SUM" >/dev/null
        fi
    done
    rm -f "$OUT/.n1" "$OUT/.n2"
    say "models: done ($(elapsed) s)"
fi

# ---- the whole suite in the CUDA build (CPU paths unchanged) --------------------
if [ "$(elapsed)" -lt 200 ]; then
    timeout $((270 - $(elapsed))) ctest --test-dir $BUILD -j"$JOBS" -E test_cuda --output-on-failure >"$OUT/ctest.log" 2>&1
    say "ctest: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1) ($(elapsed) s)"
fi

# ---- compute-sanitizer on test_cuda, in the time that is left --------------------
left=$((285 - $(elapsed)))
if command -v compute-sanitizer >/dev/null 2>&1 && [ $TEST_RC = 0 ] && [ $left -gt 30 ]; then
    CK_FORK=no timeout $left compute-sanitizer --tool memcheck --error-exitcode 3 ./$BUILD/test_cuda \
        >"$OUT/sanitizer.log" 2>&1
    src=$?
    case $src in
    0) say "compute-sanitizer memcheck: no errors" ;;
    124) say "compute-sanitizer memcheck: not finished in ${left} s (partial log in sanitizer.log)" ;;
    *) say "compute-sanitizer memcheck: status $src"; grep -m5 -E 'ERROR|Invalid' "$OUT/sanitizer.log" | tee -a "$SUM" ;;
    esac
fi
say "total: $(elapsed) s"
[ $TEST_RC = 0 ]
