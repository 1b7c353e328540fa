"""bpfree.results.statistics and the report's comparison with bp: the paired t-test and its interval against
numpy's formulas, the exact Wilcoxon signed-rank p against a brute-force enumeration and hand-computed values
(its floor 2 / 2^n, zero differences, ties), Holm's correction on a known example, pairs formed by seed (row
order does not matter, a missing partner is left out and counted), confirmation executions (the only ones
compared when present; the plain note when absent) and the frame's confirmation column."""

import itertools
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from test_results import PROJECT, point, read_report, search, write

from bpfree import records, results
from bpfree.results import statistics


# ----------------------------------------------------------------------------------------- paired t
def test_paired_t_and_its_interval_equal_the_textbook_formulas():
    rng = np.random.default_rng(3)
    x, y = rng.normal(10, 1, 7), rng.normal(9.5, 1, 7)
    d = x - y
    n, mean, sd = len(d), d.mean(), d.std(ddof=1)
    t = mean / (sd / math.sqrt(n))
    half = scipy.stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    out = statistics.paired_t(x, y)
    assert out["delta"] == pytest.approx(mean)
    assert out["t"] == pytest.approx(t)
    assert out["p_t"] == pytest.approx(2 * scipy.stats.t.sf(abs(t), n - 1))
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert out["p_t"] == pytest.approx(scipy.stats.ttest_1samp(d, 0.0).pvalue)  # the one-sample test of d


def test_paired_t_needs_two_pairs_and_varying_differences():
    assert statistics.paired_t([1.0], [2.0])["note_t"] == "not tested: 1 pair (needs ≥ 2)"
    same = statistics.paired_t([3.0, 4.0, 5.0], [2.0, 3.0, 4.0])
    assert same["note_t"] == "undefined: every difference is the same" and math.isnan(same["p_t"])
    assert same["delta"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------- Wilcoxon
def brute_force_wilcoxon(d):
    """The exact two-sided p of the signed-rank sum of the nonzero d, mid-ranks for ties, by enumerating all
    2^n sign assignments: 2 · min(P(R+ ≤ observed), P(R+ ≥ observed)), at most 1."""
    d = np.asarray([v for v in d if v != 0], float)
    ranks = scipy.stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    sums = np.array([sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=len(d))])
    return min(1.0, 2 * min(np.mean(sums <= observed + 1e-9), np.mean(sums >= observed - 1e-9)))


@pytest.mark.parametrize("d", [[1.0, 2.0, 3.0], [1.0, -2.0, 3.0, 4.0, 5.0], [0.3, -1.2, 2.5, -0.1, 4.0, 5.5, 6.1],
                               [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]])
def test_wilcoxon_exact_p_without_ties_equals_the_enumeration(d):
    out = statistics.wilcoxon(np.asarray(d) + 10.0, np.full(len(d), 10.0))
    assert out["p_w"] == pytest.approx(brute_force_wilcoxon(d)) and not out["ties"] and out["zeros"] == 0
    ranks = scipy.stats.rankdata(np.abs(d))
    assert out["w"] == min(ranks[np.asarray(d) > 0].sum(), ranks[np.asarray(d) < 0].sum())


def test_wilcoxon_hand_computed_values():
    # n = 5, d = 1, -2, 3, 4, 5: R- = 2; of the 32 sign assignments, R+ ≤ 2 for {}, {1}, {2}: p = 2 · 3/32.
    assert statistics.wilcoxon([11.0, 8.0, 13.0, 14.0, 15.0], [10.0] * 5)["p_w"] == pytest.approx(0.1875)
    assert statistics.wilcoxon([1.0, 2.0, 3.0], [0.0] * 3)["p_w"] == pytest.approx(0.25)


@pytest.mark.parametrize("n, floor", [(3, 0.25), (5, 0.0625), (6, 0.03125)])
def test_the_exact_wilcoxon_p_never_goes_below_its_floor(n, floor):
    assert statistics.wilcoxon_floor(n) == floor
    ps = []
    for signs in itertools.product((-1.0, 1.0), repeat=n):
        for magnitudes in (np.arange(1.0, n + 1), np.ones(n)):  # distinct, all tied
            ps.append(statistics.wilcoxon(np.asarray(signs) * magnitudes + 20.0, np.full(n, 20.0))["p_w"])
    assert min(ps) == pytest.approx(floor) and all(p >= floor - 1e-12 for p in ps)


def test_the_issues_three_seeds_with_ties_give_no_p_below_the_floor():
    """3 seeds, scores tied across rules: the unpaired Mann–Whitney printed p = 0.077 (an approximation);
    the exact paired Wilcoxon p cannot go below 0.25."""
    bp, dfa = [10.0, 11.0, 11.0], [12.0, 13.0, 13.0]
    out = statistics.wilcoxon(dfa, bp)
    assert out["p_w"] == pytest.approx(0.25) and out["ties"]


def test_wilcoxon_drops_zero_differences_and_enumerates_ties():
    # d = 0, 1, -1, 2, 3: the zero is dropped (n = 4); |1| and |-1| tie: mid-ranks 1.5, 1.5, 3, 4, R- = 1.5.
    x, y = np.array([5.0, 6.0, 4.0, 7.0, 8.0]), np.full(5, 5.0)
    out = statistics.wilcoxon(x, y)
    assert (out["wilcoxon_n"], out["zeros"], out["ties"], out["w"]) == (4, 1, True, 1.5)
    assert out["p_w"] == pytest.approx(brute_force_wilcoxon(x - y))
    # R- ≤ 1.5 when the negative ones are none, the first 1.5 or the second: 3 of 16 assignments, p = 2 · 3/16.
    assert out["p_w"] == pytest.approx(0.375)
    assert statistics.wilcoxon([1.0, 2.0], [1.0, 2.0])["note_w"] == "not tested: no nonzero difference"


def test_differences_equal_up_to_float32_rounding_are_ties_and_zeros():
    f = np.float32
    bp = np.array([f(10.0), f(11.0), f(19.0), f(7.3)], dtype=float)
    dfa = np.array([f(11.2), f(12.2), f(20.2), f(7.3) + 3e-6], dtype=float)  # +1.2 each (float32), ~0 once
    out = statistics.wilcoxon(dfa, bp)
    assert out["zeros"] == 1 and out["wilcoxon_n"] == 3 and out["ties"]
    assert out["p_w"] == pytest.approx(0.25)


def test_the_tied_exact_p_equals_scipys_full_enumeration_and_scipys_exact_without_ties():
    rng = np.random.default_rng(0)
    for n in (2, 4, 7, 10):
        d = rng.choice([-3.0, -1.5, -1.0, 1.0, 1.5, 2.0, 3.0], size=n)
        enumerated = scipy.stats.wilcoxon(d, method=scipy.stats.PermutationMethod(n_resamples=2 ** n))
        w, p = statistics.exact_tied_p(d)
        assert (w, p) == (pytest.approx(enumerated.statistic), pytest.approx(enumerated.pvalue)), d
        untied = rng.permutation(np.arange(1.0, n + 1)) * rng.choice([-1.0, 1.0], size=n)
        exact = scipy.stats.wilcoxon(untied, method="exact")
        assert statistics.exact_tied_p(untied) == (pytest.approx(exact.statistic), pytest.approx(exact.pvalue))


def test_many_tied_pairs_still_get_an_exact_p_quickly():
    d = np.tile([1.0, 1.0, -2.0, 3.0, 3.0], 12)  # n = 60: 2^60 assignments, never enumerated
    out = statistics.wilcoxon(d + 5.0, np.full(len(d), 5.0))
    assert out["ties"] and out["wilcoxon_n"] == 60
    approximate = scipy.stats.wilcoxon(d, method="asymptotic", correction=False).pvalue
    assert out["p_w"] == pytest.approx(approximate, abs=0.01) and out["p_w"] != approximate


# ----------------------------------------------------------------------------------------- Holm
def test_holm_on_a_known_example():
    # sorted 0.005 ·4 = 0.02, 0.01 ·3 = 0.03, 0.03 ·2 = 0.06, 0.04 ·1 = 0.04 → max so far 0.06
    assert statistics.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = statistics.holm([0.02, float("nan"), 0.04])  # a test not run is not counted: m = 2
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert statistics.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert statistics.holm([0.3]) == pytest.approx([0.3]) and len(statistics.holm([])) == 0


# ----------------------------------------------------------------------------------------- pairs
def executions(seeds, values, trial_id="t", confirmation=False):
    return pd.DataFrame({"project": "p", "trial_id": trial_id, "execution": range(len(seeds)), "seed": seeds,
                         "confirmation": confirmation, "test.error_rate": values})


def test_pairs_are_formed_by_seed_whatever_the_row_order_and_a_missing_partner_is_counted():
    ours = executions([0, 1, 2, 3], [12.0, 14.0, 13.0, 99.0])
    theirs = executions([2, 0, 1], [11.0, 10.0, 12.5])
    x, y, left_ours, left_theirs = statistics.pair(ours, theirs, "test.error_rate")
    assert list(x) == [12.0, 14.0, 13.0] and list(y) == [10.0, 12.5, 11.0] and (left_ours, left_theirs) == (1, 0)
    shuffled = statistics.pair(ours.sample(frac=1, random_state=1), theirs.sample(frac=1, random_state=2),
                               "test.error_rate")
    assert [list(v) if isinstance(v, np.ndarray) else v for v in shuffled] == [list(x), list(y), 1, 0]
    theirs.loc[0, "test.error_rate"] = np.nan  # no finite value: seed 2 has no partner, not counted on their side
    x, y, left_ours, left_theirs = statistics.pair(ours, theirs, "test.error_rate")
    assert list(x) == [12.0, 14.0] and (left_ours, left_theirs) == (2, 0)
    theirs["seed"] = [2, None, 1]  # no seed: no partner
    assert statistics.pair(ours, theirs, "test.error_rate")[2:] == (3, 1)


def rule(directory, algorithm, seeds, val, test, confirmation=None, trial_id=None, first_execution=0,
         lr=1e-3):
    """Records of one trial of `algorithm`: execution first_execution + i with seed seeds[i]."""
    for i, (seed, v, t) in enumerate(zip(seeds, val, test)):
        record = records.ExecutionRecord(os.path.join(str(directory), PROJECT), trial_id or f"{algorithm}-lr{lr:g}",
                                         first_execution + i, point(algorithm, lr=lr), seed=seed,
                                         search=search(score="final"))
        record.data["history"] = {"val_error_rate": [60.0, v]}
        record.data["test"] = {"error_rate": t}
        if confirmation is not None:
            record.data["confirmation"] = confirmation
        record.finish("completed")


def test_report_pairs_by_seed_not_by_execution_number(tmp_path):
    exp = tmp_path / "exp"
    rule(exp, "bp", [2, 0, 1], [10.0, 10.0, 10.0], [11.0, 10.0, 12.5])  # execution 0 has seed 2
    rule(exp, "dfa", [0, 1, 2, 3], [12.0] * 4, [12.0, 14.0, 13.0, 99.0])
    text = read_report(tmp_path)
    d = np.array([12.0, 14.0, 13.0]) - np.array([10.0, 12.5, 11.0])
    low, high = scipy.stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert (f"| dfa | test error_rate | 3 (unpaired: 1 here, 0 bp) | +{d.mean():.4g} [+{low:.4g}, +{high:.4g}] | "
            f"t = {scipy.stats.ttest_1samp(d, 0.0).statistic:.3g}, p = ") in text
    assert "the same executions whose validation scores chose each configuration" in text
    assert "val_error_rate (final) |" not in text.split("## Compared with bp")[1]  # validation is not tested


def test_report_holm_across_the_rules_compared_with_bp(tmp_path):
    exp = tmp_path / "exp"
    seeds = list(range(6))
    rule(exp, "bp", seeds, [10.0] * 6, [10.0, 11.0, 12.0, 13.0, 14.0, 15.0])
    rule(exp, "dfa", seeds, [12.0] * 6, [13.0, 13.5, 15.5, 16.0, 17.5, 19.0])
    rule(exp, "fa", seeds, [11.0] * 6, [10.5, 10.0, 12.5, 14.0, 13.0, 15.5])
    frame = results.load(str(exp))
    table = results.best(frame, by="algorithm")
    compared = statistics.against_reference(table, results.execution_scores(frame), "bp", [])
    assert list(compared["configuration"]) == ["dfa", "fa"] and set(compared["metric"]) == {"test error_rate"}
    assert list(compared["holm_t"]) == pytest.approx(list(statistics.holm(compared["p_t"])))
    assert list(compared["holm_w"]) == pytest.approx(list(statistics.holm(compared["p_w"])))
    assert compared["p_w"].iloc[0] == pytest.approx(statistics.wilcoxon_floor(6))  # dfa above bp on every seed
    assert compared["holm_w"].iloc[0] == pytest.approx(2 * statistics.wilcoxon_floor(6))
    text = read_report(tmp_path)
    assert "(here 6 nonzero differences: 0.0312)" in text and "across the configurations compared with bp (2; " in text
    assert "| Holm p (t) | Wilcoxon signed-rank (exact p) | Holm p (W) |" in text
    assert "| dfa | test error_rate | 6 | +3.25 [" in text and "W = 0, p = 0.0312 (ties: exact over all 2^6 signs) | 0.0625 |" in text


# ----------------------------------------------------------------------------------------- confirmation
@pytest.mark.parametrize("same_trial", [True, False])
def test_confirmation_executions_are_the_only_ones_compared(tmp_path, same_trial):
    """Selection executions (seeds 0-2, two lrs per rule) choose lr 1e-3; confirmation executions (seeds
    100-104) of the chosen configuration, recorded as more executions of its trial or as a trial of their
    own, are the only ones tested; their validation scores change neither the choice nor its mean."""
    exp = tmp_path / "exp"
    for algorithm, offset in (("bp", 0.0), ("dfa", 3.0)):
        rule(exp, algorithm, [0, 1, 2], [10.0 + offset] * 3, [50.0, 60.0, 70.0])
        rule(exp, algorithm, [0, 1, 2], [20.0 + offset] * 3, [50.0, 60.0, 70.0], lr=1e-2)
        # by seed 100..104: bp 10, 11, 12, 13, 14; dfa 10.5, 12, 13.5, 15, 16.5 (recorded in another order)
        confirm, tests = (([100, 101, 102, 103, 104], [10.0, 11.0, 12.0, 13.0, 14.0]) if algorithm == "bp" else
                          ([102, 100, 104, 103, 101], [13.5, 10.5, 16.5, 15.0, 12.0]))
        rule(exp, algorithm, confirm, [0.0] * 5, tests, confirmation=True,
             trial_id=None if same_trial else f"{algorithm}-confirm", first_execution=3 if same_trial else 0)
    frame = results.load(str(exp))
    assert frame["confirmation"].dtype == bool and frame["confirmation"].sum() == 20  # 10 executions, 2 epochs
    text = read_report(tmp_path)
    assert "| bp | 10 ± 0 | 3 | final@2/2 |" in text and "| dfa | 13 ± 0 | 3 | final@2/2 |" in text  # chosen: lr 1e-3
    assert "22 executions (10 of them confirmation executions" in text
    assert "Compared: the **confirmation executions** only" in text
    assert "| configuration | n | test error_rate |" in text
    assert "| bp | 5 | 12 ± 1.6 |" in text and "| dfa | 5 | 13.5 ± 2.4 |" in text
    d = np.array([0.5, 1.0, 1.5, 2.0, 2.5])  # dfa minus bp, seed by seed (100..104)
    assert f"| dfa | test error_rate | 5 | +{d.mean():.4g} [" in text
    assert "W = 0, p = 0.0625" in text and "(here 5 nonzero differences: 0.0625)" in text
    assert "the same executions whose validation scores" not in text


def test_without_test_scores_a_chosen_configuration_is_not_tested(tmp_path):
    exp = tmp_path / "exp"
    for algorithm, error in (("bp", 10.0), ("dfa", 13.0)):
        for lr, extra in ((1e-3, 0.0), (1e-2, 5.0)):
            for seed in range(3):
                write(exp, f"{algorithm}-lr{lr:g}", seed, point(algorithm, lr=lr),
                      {"val_error_rate": [60.0, error + extra + seed]}, search=search(score="final"))
    text = read_report(tmp_path)
    assert ("No test scores among these executions: nothing is tested (the validation score that chose each "
            "configuration is not).") in text
    assert "| dfa | val_error_rate" not in text


def test_frame_confirmation_column_and_a_bad_value_is_refused(tmp_path):
    write(tmp_path, "bp", 0, point("bp"), {"loss": [0.5]}, search=search("loss"))
    rule(tmp_path, "bp", [7], [1.0], [2.0], confirmation=True, trial_id="confirmed")
    bad = write(tmp_path, "bad", 0, point("bp"), {"loss": [0.5]}, search=search("loss"))
    record = records.read(bad)
    record["confirmation"] = "yes"
    with open(bad, "w") as f:
        json.dump(record, f)
    errors = []
    frame = results.load(str(tmp_path), errors=errors)
    assert dict(zip(frame["trial_id"], frame["confirmation"])) == {"bp": False, "confirmed": True}
    assert len(errors) == 1 and "invalid confirmation" in errors[0]
    assert list(frame.columns[:7]) == list(results.BASE_COLUMNS[:7]) and results.BASE_COLUMNS[6] == "confirmation"


def test_a_configuration_without_a_matching_reference_says_so(tmp_path):
    exp = tmp_path / "exp"
    for algorithm, arch in (("bp", "16"), ("dfa", "16"), ("dfa", "32")):
        for seed in range(3):
            write(exp, f"{algorithm}-{arch}", seed, point(algorithm, arch=arch),
                  {"val_error_rate": [60.0, 10.0 + seed]}, search=search(score="final"),
                  test={"error_rate": 11.0 + seed + (algorithm == "dfa") * (1 + 0.5 * seed)})
    text = read_report(tmp_path, "--by", "algorithm,arch")
    assert "| dfa · arch 32 | test error_rate | 0 | — | no bp with the same arch | — | — | — |" in text
    assert "| dfa · arch 16 | test error_rate | 3 | +1.5 [" in text and "W = 0, p = 0.25 | 0.25 |" in text
