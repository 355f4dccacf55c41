#!/usr/bin/env bash
# Every GPU check of the project in one command, then a summary:
#   bash scripts/gpu-check.sh            (logs in $OUT, default ./gpu-check-out)
# 1. the tests marked gpu (the numerical suite on CuPy, the CUDA kernels against NumPy, two CuPy
#    ranks under mpiexec: needs mpi4py (in the image) and an MPI, e.g. the mpich wheel in .whl/);
# 2. benchmarks/bench_step.py --backend cupy: the six cases, forward and training step with
#    device synchronisation and peak GPU memory, next to pykan on torch's CUDA device when
#    pykan and a CUDA build of torch import (else kanarray alone);
# 3. the same four CPU cases with each contraction forced (to tune choose_contraction);
# 4. benchmarks/fit_vs_pykan.py on CuPy and NumPy;
# 5. benchmarks/scaling_mpi.py --backend cupy (1 and 2 ranks) where mpi4py and mpiexec are present;
# 6. benchmarks/bench_extrapolate.py --backend cupy (linear continuation against spline).
# Needs CUDA, CuPy and the test dependencies.  On a machine without a package registry, put
# the pure-Python wheels kanarray needs beyond the image (array-api-compat, array-api-strict,
# pykan, ...) in .whl/; they are installed into /tmp/site first.
set -o pipefail
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH  # mpiexec of an mpich wheel
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" | tee -a "$OUT/gpu.txt"

echo "== 1. tests marked gpu"
timeout 600 python3 -m pytest -q -m gpu -p no:cacheprovider --maxfail=40 2>&1 | tee "$OUT/gpu_tests.log" | tail -25

echo "== 2. bench_step on cupy"
pykan=""
if ! python3 -c "import kan, torch; assert torch.cuda.is_available()" 2>/dev/null; then
    pykan="--no-pykan"
    echo "(pykan or a CUDA build of torch is missing: kanarray alone)"
fi
timeout 900 python3 benchmarks/bench_step.py --backend cupy --repeats 10 $pykan 2>&1 | tee "$OUT/bench_step_cupy.md"

echo "== 3. contraction forced (kanarray alone)"
for c in dense sparse; do
    timeout 300 python3 benchmarks/bench_step.py --backend cupy --repeats 10 --no-pykan --contraction $c \
        --cases toy,mnist,fine,deep 2>&1 | tee "$OUT/bench_step_cupy_$c.md"
done

echo "== 4. fit benchmark on cupy and on numpy (same machine)"
timeout 300 python3 benchmarks/fit_vs_pykan.py --backend cupy --no-pykan --repeats 3 2>&1 | tee "$OUT/fit_gpu.md"
timeout 200 python3 benchmarks/fit_vs_pykan.py --backend numpy --no-pykan --repeats 3 2>&1 | tee "$OUT/fit_cpu.md"

echo "== 5. data-parallel step on cupy, 1 and 2 ranks on this GPU (the all-reduce through host memory)"
if python3 -c "import mpi4py" 2>/dev/null && command -v mpiexec >/dev/null; then
    timeout 300 python3 benchmarks/scaling_mpi.py --backend cupy --steps 3 --repeats 3 2>&1 | tee "$OUT/scaling_mpi_cupy.md"
else
    echo "(mpi4py or mpiexec missing: skipped)"
fi

echo "== 6. the linear continuation's cost on cupy (kanarray alone)"
timeout 300 python3 benchmarks/bench_extrapolate.py --backend cupy --repeats 10 2>&1 | tee "$OUT/bench_extrapolate_cupy.md"

echo
echo "== summary"
cat "$OUT/gpu.txt"
echo "gpu tests: $(grep -E '(passed|failed|error)' "$OUT/gpu_tests.log" | tail -1)"
echo "bench_step --backend cupy:"
grep -E '^\|' "$OUT/bench_step_cupy.md"
