#!/usr/bin/env bash
# Every GPU check of the project in one command, then a summary:
#   bash scripts/gpu-check.sh            (logs in $OUT, default ./gpu-check-out)
#   BUDGET_S=480 bash scripts/gpu-check.sh   (stop starting steps after 480 s; default 1500)
#   CAP_TESTS / CAP_BENCH: caps of steps 1 and 2 in seconds (default 300 and 240)
#   ONLY="1 2 5": run only these steps (4 = 4a and 4b)
# 1. the tests marked gpu (the numerical suite on CuPy, the CUDA kernels against NumPy, two CuPy
#    ranks under mpiexec: needs mpi4py (in the image) and an MPI, e.g. the mpich wheel in .whl/);
# 2. benchmarks/bench_step.py --backend cupy: the six cases, forward and training step with
#    device synchronisation and peak GPU memory, next to pykan on torch's CUDA device when
#    pykan and a CUDA build of torch import (else kanarray alone);
# 3. benchmarks/bench_extrapolate.py --backend cupy (linear continuation against spline);
# 4. benchmarks/fit_vs_pykan.py on CuPy and NumPy;
# 5. benchmarks/scaling_mpi.py --backend cupy (1 and 2 ranks) where mpi4py and mpiexec are present;
# 6. the four CPU-sized cases with each contraction forced (to tune choose_contraction);
# 7. the four CPU-sized cases with the one-kernel Adam and SiLU switched off
#    (KANARRAY_CUPY_ELEMENTWISE=0), against step 2's kanarray columns;
# 8. benchmarks/bench_jets.py --backend cupy: input derivatives (physics-informed training) on CuPy.
# On a 15-minute lease: BUDGET_S=400 (the machine's start and the transfers come on top).
# Each step gets at most its own limit and what is left of BUDGET_S, so the whole run fits a
# lease; the steps come in order of importance.
# Needs CUDA, CuPy and the test dependencies.  On a machine without a package registry, put
# the wheels kanarray needs beyond the image (array-api-compat, array-api-strict, pykan, mpich)
# in .whl/: the pure-Python ones are installed into /tmp/site, mpich is unpacked into /tmp/mpich.
set -o pipefail
OUT=${OUT:-gpu-check-out}
BUDGET_S=${BUDGET_S:-1500}
START=$SECONDS
mkdir -p "$OUT"
left() {  # seconds for the next step: min(cap, what is left of the budget)
    local rest=$((BUDGET_S - (SECONDS - START)))
    if ((rest < $1)); then echo $((rest > 0 ? rest : 0)); else echo "$1"; fi
}
step() {  # step CAP NAME LOG COMMAND...: run with a timeout, or say it was skipped
    local cap=$1 name=$2 log=$3
    shift 3
    local t num=${name%%.*}
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $num "* ]] && [[ " $ONLY " != *" ${num%[ab]} "* ]]; then
        echo "== $name: not in ONLY"
        return
    fi
    t=$(left "$cap")
    if ((t < 20)); then
        echo "== $name: skipped (budget spent)" | tee "$log"
        return
    fi
    echo "== $name (at most ${t} s)"
    local t0=$SECONDS
    timeout "$t" "$@" 2>&1 | tee "$log"
    echo "   ($name: rc ${PIPESTATUS[0]}, $((SECONDS - t0)) s)"
}

if ls .whl/*.whl >/dev/null 2>&1; then
    pure=$(ls .whl/*.whl | grep -v '/mpich-')
    if [ -n "$pure" ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $pure \
            || exit 1
        export PYTHONPATH=/tmp/site
    fi
    if ls .whl/mpich-*.whl >/dev/null 2>&1; then
        python3 - <<'EOF' || exit 1
import glob, os, zipfile
with zipfile.ZipFile(glob.glob(".whl/mpich-*.whl")[0]) as wheel:
    wheel.extractall("/tmp/mpich", [n for n in wheel.namelist() if ".data/data/" in n])
for f in glob.glob("/tmp/mpich/*.data/data/bin/*"):
    os.chmod(f, 0o755)
EOF
        mpich=$(echo /tmp/mpich/*.data/data)
        export PATH=$mpich/bin:$PATH LD_LIBRARY_PATH=$mpich/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" | tee -a "$OUT/gpu.txt"
git rev-parse --short HEAD 2>/dev/null | sed 's/^/commit /' | tee -a "$OUT/gpu.txt"

xdist=""
if python3 -c "import xdist" 2>/dev/null; then
    xdist="-n 6 --dist loadfile"  # NVRTC compiles on the CPU: workers share the kernel cache on disk
fi
step ${CAP_TESTS:-300} "1. tests marked gpu" "$OUT/gpu_tests.log" \
    python3 -m pytest -q -m gpu -p no:cacheprovider -p no:benchmark --maxfail=60 -rfE $xdist

pykan=""
if ! python3 -c "import kan, torch; assert torch.cuda.is_available()" 2>/dev/null; then
    pykan="--no-pykan"
    echo "(pykan or a CUDA build of torch is missing: kanarray alone)"
fi
step ${CAP_BENCH:-240} "2. bench_step on cupy" "$OUT/bench_step_cupy.md" \
    python3 benchmarks/bench_step.py --backend cupy --repeats 10 --rounds 1 $pykan
step 90 "3. linear continuation's cost on cupy" "$OUT/bench_extrapolate_cupy.md" \
    python3 benchmarks/bench_extrapolate.py --backend cupy --repeats 10
step 120 "4a. fit benchmark on cupy" "$OUT/fit_gpu.md" \
    python3 benchmarks/fit_vs_pykan.py --backend cupy --no-pykan --repeats 3
step 90 "4b. fit benchmark on numpy (same machine)" "$OUT/fit_cpu.md" \
    python3 benchmarks/fit_vs_pykan.py --backend numpy --no-pykan --repeats 3
if python3 -c "import mpi4py" 2>/dev/null && command -v mpiexec >/dev/null; then
    step 120 "5. data-parallel step on cupy, 1 and 2 ranks" "$OUT/scaling_mpi_cupy.md" \
        python3 benchmarks/scaling_mpi.py --backend cupy --steps 3 --repeats 3
else
    echo "== 5. (mpi4py or mpiexec missing: skipped)"
fi
for c in dense sparse; do
    step 120 "6. contraction forced to $c" "$OUT/bench_step_cupy_$c.md" \
        python3 benchmarks/bench_step.py --backend cupy --repeats 10 --rounds 1 --no-pykan --no-efficient-kan --contraction $c \
        --cases toy,mnist,fine,deep
done
step 120 "7. array-API Adam and SiLU (KANARRAY_CUPY_ELEMENTWISE=0)" "$OUT/bench_step_cupy_unfused.md" \
    env KANARRAY_CUPY_ELEMENTWISE=0 python3 benchmarks/bench_step.py --backend cupy --repeats 10 --rounds 1 --no-pykan --no-efficient-kan \
    --cases toy,mnist,fine,deep
step 90 "8. input derivatives (jets) on cupy" "$OUT/bench_jets_cupy.md" \
    python3 benchmarks/bench_jets.py --backend cupy --repeats 10

echo
echo "== summary ($((SECONDS - START)) s)"
cat "$OUT/gpu.txt"
echo "gpu tests: $(grep -E '(passed|failed|error|skipped)' "$OUT/gpu_tests.log" | tail -1)"
echo "bench_step --backend cupy:"
grep -E '^\|' "$OUT/bench_step_cupy.md"
