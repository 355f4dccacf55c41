"""Symbolic recovery of every Feynman equation, as `kanarray reproduce feynman --only all` runs it
(feynman.recover: seeds 0, 1, 2; G = 5 fit with lamb 1e-3, prune, refine to 20, fit, auto_symbolic,
fit; 50 steps per fit), with the symbolic search on both scales (this checkout) and with pykan's
search alone (``_search_both_scales`` replaced by one ``_search`` on x as given, the code before
d008950).  Each seed's model is trained once; from the same trained model each variant runs
auto_symbolic and the last fit.  Recovered: some seed of 0, 1, 2 gives the ground truth.
    python benchmarks/paper/recovery_search.py OUT.json"""
import copy, copyreg, importlib, json, sys, time, types
import kanarray.symbolic.fitting as fitting
from kanarray.datasets import FEYNMAN, feynman_dataset
from kanarray.reproduce.feynman import ground_truth, recovered_formula, recovery_model, variables
from kanarray.symbolic.formula import canonical, formulas_agree

copyreg.pickle(types.ModuleType, lambda m: (importlib.import_module, (m.__name__,)))  # deepcopy keeps xp
both = fitting._search_both_scales
def given_only(fn, x, y, a_range, b_range, *grid):
    a, b, _ = fitting._search(fn, x, y, a_range, b_range, *grid)
    return a, b
VARIANTS = {"both scales": both, "given only": given_only}

out, t0 = {}, time.perf_counter()
for name, entry in FEYNMAN.items():
    data = feynman_dataset(name)
    res = {v: [] for v in VARIANTS}
    for seed in (0, 1, 2):
        try:
            model = recovery_model(entry, data, seed, steps=50)
        except (ValueError, FloatingPointError):
            for v in VARIANTS:
                res[v].append((False, None))
            continue
        for v, search in VARIANTS.items():
            fitting._search_both_scales = search
            try:
                formula = recovered_formula(copy.deepcopy(model), entry, data, steps=50)
                ok = formulas_agree(formula, ground_truth(entry), variables(entry), data["test_input"])[0]
                res[v].append((bool(ok), str(canonical(formula))))
            except (ValueError, FloatingPointError):
                res[v].append((False, None))
            fitting._search_both_scales = both
    out[name] = res
    print(name, {v: [int(ok) for ok, _ in r] for v, r in res.items()}, flush=True)
for v in VARIANTS:
    hits = [n for n, r in out.items() if any(ok for ok, _ in r[v])]
    print(v, "recovered", len(hits), "of", len(out), hits)
print(f"{time.perf_counter() - t0:.0f} s")
json.dump(out, open(sys.argv[1], "w"), indent=1)
