#!/usr/bin/env bash
# Every GPU check of the project in one go, for a machine with CUDA and CuPy but no package
# registry (see README): the pure-Python wheels kanarray needs beyond that image travel in .whl/.
#   bash benchmarks/gpu_checks.sh            (writes logs to $OUT, or to ./out)
set -o pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" | tee -a "$OUT/gpu.txt"
echo "== tests marked gpu"
timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider --maxfail=40 --timeout 120 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
echo "== fit benchmark on cupy"
timeout 200 python3 benchmarks/fit_vs_pykan.py --backend cupy --no-pykan --repeats 3 2>&1 | tee "$OUT/fit_gpu.md"
echo "== fit benchmark on numpy (same machine)"
timeout 120 python3 benchmarks/fit_vs_pykan.py --backend numpy --no-pykan --repeats 3 2>&1 | tee "$OUT/fit_cpu.md"
