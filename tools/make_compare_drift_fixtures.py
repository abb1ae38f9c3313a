#!/usr/bin/env python3
"""Generate the reference fixtures for `cleval compare` and `cleval drift`.

tests/fixtures/compare/
  base_a.h5, base_b.h5   3000 samples, 6 classes: y, pred, float32 logits; B is A with noise
                         and planted flips (some fixing A's errors, more breaking right ones).
  base.json              what compare must report for A = base_a, B = base_b: counts, flip
                         matrix, flipped indices, accuracies, Newcombe's paired interval,
                         McNemar's p (docs/contract.md's formula), score differences, top samples.
  nolabel_a.h5, nolabel_b.h5, nolabel.json
                         no y: predictions and score differences only.
  wide_b.h5              base_a's y and pred with scores 7 wide: no score comparison.
  mcnemar.json           (b, c) pairs with the contract's p = min(1, 2 P(X <= min(b, c))),
                         X ~ Binomial(b + c, 1/2), and ln p: from scipy.stats.binom where the
                         tail is representable (also checked against scipy.stats.binomtest,
                         which equals it for p = 1/2), from mpmath at 60 digits where it
                         underflows. b + c reaches the hundreds of thousands; the C tests
                         build those files themselves, so nothing large is committed.

tests/fixtures/drift/
  ref.h5, cur.h5, ref_cur.json
                         logits (confidence = max softmax); 8 classes by `max(label) + 1`
                         over pred and y (class 7 occurs only in ref's y, so both counts are
                         zero there); the current run has moved priors, a class that is never
                         predicted and flatter logits.
  ref_prob.h5, cur_prob.h5, prob.json
                         rows that are probability vectors (confidence = the largest entry),
                         no labels.
  cur_mixed.h5, ref_mixed.json
                         cur_prob with one row that sums to 1.01: the whole file falls back to
                         softmax; reference ref_prob.
  stats.json             count vectors with PSI (floored at 1e-4), the base-2 Jensen-Shannon
                         distance (scipy.spatial.distance.jensenshannon), the chi-squared
                         statistic (E = floored p * n_current) and scipy.stats.chi2.sf.

Confidences and entropies are computed in float64 from the float32 scores (scipy.special.softmax,
scipy.stats.entropy, numpy.histogram over [0, 1] with 10 bins); rows whose confidence lies within
1e-5 of a bin edge are regenerated, so a float32 kernel bins them the same way. Everything is
seeded. Run from the repository root:

    python3 tools/make_compare_drift_fixtures.py
"""

import json
from pathlib import Path

import h5py
import mpmath
import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.special import entr, softmax
from scipy.stats import binom, binomtest, chi2, entropy, norm

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
COMPARE_DIR = ROOT / "compare"
DRIFT_DIR = ROOT / "drift"
FLOOR = 1e-4
EDGES = np.linspace(0.0, 1.0, 11)


def write_h5(path, **datasets):
    with h5py.File(path, "w") as h5:
        for name, value in datasets.items():
            if value is None:
                continue
            if name == "class_names":
                h5.create_dataset(name, data=value, dtype=h5py.string_dtype("utf-8"))
            else:
                h5.create_dataset(name, data=value)


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


# ---------------------------------------------------------------- compare


def mcnemar_contract(b, c):
    """p = min(1, 2 P(X <= min(b, c))), X ~ Binomial(b + c, 1/2); 1 when b + c = 0."""
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0, 0.0
    log_cdf = float(binom.logcdf(k, n, 0.5))
    if np.isfinite(log_cdf) and log_cdf > -700:
        p = min(1.0, 2.0 * float(binom.cdf(k, n, 0.5)))
        log_p = min(0.0, np.log(2.0) + log_cdf)
        # For p = 1/2 the two-sided binomtest sums the same two tails.
        check = binomtest(k, n, 0.5, alternative="two-sided").pvalue
        assert abs(check - p) <= 1e-12 * p, (b, c, check, p)
        return p, log_p
    # Deep tail: in mpmath at 60 digits, from C(n, k) down by the exact term ratios.
    mpmath.mp.dps = 60
    term = mpmath.binomial(n, k) / mpmath.power(2, n)
    tail = term
    for i in range(k, 0, -1):
        term = term * i / (n - i + 1)
        tail += term
        if term < tail * mpmath.mpf(10) ** -70:
            break
    log_p = float(min(mpmath.mpf(0), mpmath.log(2 * tail)))
    return float(min(1, 2 * tail)), log_p


def wilson(successes, n, z):
    p = successes / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return p, max(0.0, center - half), min(1.0, center + half)


def newcombe_paired(both_right, a_only, b_only, both_wrong, z):
    """Newcombe (1998) method 10 for p_B - p_A: Wilson intervals of both proportions combined
    with the phi correlation of the paired table."""
    n = both_right + a_only + b_only + both_wrong
    p1, l1, u1 = wilson(both_right + b_only, n, z)  # B
    p2, l2, u2 = wilson(both_right + a_only, n, z)  # A
    margins = float(both_right + b_only) * (a_only + both_wrong) * (both_right + a_only) * (
        b_only + both_wrong
    )
    phi = (both_right * both_wrong - a_only * b_only) / np.sqrt(margins) if margins > 0 else 0.0
    d = p1 - p2
    delta = np.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    eps = np.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, d - delta), min(1.0, d + eps)


def top_samples(candidates, row_diff, count=10):
    """Indices ordered by row_diff descending, then index ascending."""
    order = sorted(candidates, key=lambda i: (-row_diff[i], i))
    return [int(i) for i in order[:count]]


def compare_expected(pa, pb, y, sa, sb):
    n = pa.size
    c = int(max(pa.max(), pb.max(), y.max() if y is not None else -1)) + 1
    matrix = np.zeros((c, c), np.int64)
    np.add.at(matrix, (pa, pb), 1)
    flipped = np.flatnonzero(pa != pb)
    out = {
        "n_samples": n,
        "n_classes": c,
        "flips": int(flipped.size),
        "agreement": float(np.mean(pa == pb)),
        "flip_rate": flipped.size / n,
        "flip_matrix": matrix.tolist(),
        "flipped": flipped.tolist(),
    }
    if y is not None:
        ra, rb = pa == y, pb == y
        both_right = int(np.sum(ra & rb))
        b = int(np.sum(ra & ~rb))
        cc = int(np.sum(~ra & rb))
        both_wrong = int(np.sum(~ra & ~rb))
        p, log_p = mcnemar_contract(b, cc)
        acc_a = float(np.mean(ra))
        acc_b = float(np.mean(rb))
        low, high = newcombe_paired(both_right, b, cc, both_wrong, norm.ppf(0.975))
        out.update(
            accuracy_a=acc_a,
            accuracy_b=acc_b,
            accuracy_diff=acc_b - acc_a,
            accuracy_diff_ci=[low, high],
            mcnemar={"b": b, "c": cc, "p_value": p, "log_p_value": log_p},
            both_right=both_right,
            both_wrong=both_wrong,
        )
    row_diff = np.zeros(n)
    if sa is not None and sb is not None and sa.shape == sb.shape:
        a64, b64 = sa.astype(np.float64), sb.astype(np.float64)
        d = np.abs(a64 - b64)
        scale = np.maximum(np.abs(a64), np.abs(b64))
        rel = np.where(d == 0, 0.0, d / np.where(scale == 0, 1, scale))
        row_diff = d.max(axis=1)
        i_abs = int(np.argmax(d))
        i_rel = int(np.argmax(rel))
        w = sa.shape[1]
        out["score_diff"] = {
            "max_abs": float(d.max()),
            "max_abs_index": i_abs // w,
            "max_abs_class": i_abs % w,
            "max_rel": float(rel.max()),
            "max_rel_index": i_rel // w,
            "max_rel_class": i_rel % w,
            "mean_abs": float(np.mean(d)),
            "top": top_samples(np.flatnonzero(row_diff > 0), row_diff),
        }
    out["top_flips"] = top_samples(flipped, row_diff)
    return out


def make_compare():
    COMPARE_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5001)
    n, c = 3000, 6
    y = rng.integers(0, c, size=n)
    logits = rng.normal(0, 1, size=(n, c)) + 3.0 * np.eye(c)[y] * (rng.random(n) < 0.8)[:, None]
    sa = logits.astype(np.float32)
    sb = (logits + rng.normal(0, 1e-3, size=(n, c))).astype(np.float32)
    pa = np.argmax(sa, axis=1)
    # Plant flips: 60 samples A got right now wrong, 25 samples A got wrong now right.
    right = np.flatnonzero(pa == y)
    wrong = np.flatnonzero(pa != y)
    break_ = rng.choice(right, size=60, replace=False)
    fix = rng.choice(wrong, size=25, replace=False)
    for i in break_:
        k = (y[i] + 1 + rng.integers(0, c - 1)) % c
        sb[i, k] = sb[i].max() + np.float32(0.5)
    for i in fix:
        sb[i, y[i]] = sb[i].max() + np.float32(0.25)
    pb = np.argmax(sb, axis=1)
    write_h5(COMPARE_DIR / "base_a.h5", y=y.astype(np.int32), pred=pa.astype(np.int32), scores=sa)
    write_h5(COMPARE_DIR / "base_b.h5", y=y.astype(np.int64), pred=pb.astype(np.int64), scores=sb)
    expected = compare_expected(pa, pb, y, sa, sb)
    dump(COMPARE_DIR / "base.json", expected)
    print(f"compare base: flips={expected['flips']} mcnemar={expected['mcnemar']}")

    wide = np.concatenate([sa, np.zeros((n, 1), np.float32)], axis=1)
    write_h5(COMPARE_DIR / "wide_b.h5", y=y.astype(np.int32), pred=pa.astype(np.int32),
             scores=wide)

    rng = np.random.default_rng(5002)
    n, c = 500, 4
    sa = rng.normal(0, 2, size=(n, c)).astype(np.float32)
    sb = sa.copy()
    moved = rng.choice(n, size=40, replace=False)
    sb[moved] += rng.normal(0, 1.5, size=(40, c)).astype(np.float32)
    sb[7, 2] = sa[7, 2]  # an exact tie stays 0
    pa, pb = np.argmax(sa, axis=1), np.argmax(sb, axis=1)
    write_h5(COMPARE_DIR / "nolabel_a.h5", pred=pa.astype(np.int32), scores=sa)
    write_h5(COMPARE_DIR / "nolabel_b.h5", pred=pb.astype(np.int32), scores=sb)
    expected = compare_expected(pa, pb, None, sa, sb)
    dump(COMPARE_DIR / "nolabel.json", expected)
    print(f"compare nolabel: flips={expected['flips']}")

    pairs = [(0, 0), (0, 1), (1, 0), (3, 3), (5, 7), (10, 2), (1, 30), (0, 1075), (600, 640),
             (50000, 50000), (150000, 151234), (150617, 150617), (149000, 152500),
             (250000, 251500), (123456, 140000), (100000, 200000), (0, 400000), (5, 399995),
             (349000, 351000)]
    cases = []
    for b, cc in pairs:
        p, log_p = mcnemar_contract(b, cc)
        cases.append({"b": b, "c": cc, "p_value": p, "log_p_value": log_p})
    dump(COMPARE_DIR / "mcnemar.json", {"cases": cases})
    print(f"mcnemar: {len(cases)} cases")


# ---------------------------------------------------------------- drift


def confidences(scores):
    """(confidence, entropy, probabilities?) as the contract defines them, in float64."""
    s = scores.astype(np.float64)
    is_prob = bool(
        np.all((scores >= 0) & (scores <= 1)) and np.all(np.abs(s.sum(axis=1) - 1) <= 1e-4)
    )
    if is_prob:
        return s.max(axis=1), entr(s).sum(axis=1), True
    p = softmax(s, axis=1)
    return p.max(axis=1), entropy(p, axis=1), False


def away_from_edges(make_row, rng, n, width):
    """Rows from make_row(rng, width) whose softmax confidence keeps 1e-5 from every bin edge."""
    rows = []
    while len(rows) < n:
        row = make_row(rng, width).astype(np.float32)
        conf, _, _ = confidences(row[None, :])
        if np.min(np.abs(EDGES - conf[0])) > 1e-5:
            rows.append(row)
    return np.stack(rows)


def distances(p_counts, q_counts):
    p = p_counts / p_counts.sum()
    q = q_counts / q_counts.sum()
    pf = np.where(p > 0, p, FLOOR)
    qf = np.where(q > 0, q, FLOOR)
    psi = float(np.sum((qf - pf) * np.log(qf / pf)))
    js = float(jensenshannon(p, q, base=2))
    return psi, js


def chi_squared(p_counts, q_counts):
    p = p_counts / p_counts.sum()
    pf = np.where(p > 0, p, FLOOR)
    expected = pf * q_counts.sum()
    stat = float(np.sum((q_counts - expected) ** 2 / expected))
    dof = p_counts.size - 1
    return stat, (float(chi2.sf(stat, dof)) if dof > 0 else 1.0)


def side_summary(pred, scores, y, n_classes):
    conf, ent, is_prob = confidences(scores)
    hist, _ = np.histogram(conf, bins=10, range=(0.0, 1.0))
    out = {
        "n": int(pred.size),
        "class_counts": np.bincount(pred, minlength=n_classes).tolist(),
        "confidence_counts": hist.tolist(),
        "mean_confidence": float(np.mean(conf)),
        "mean_entropy": float(np.mean(ent)),
        "probabilities": is_prob,
    }
    if y is not None:
        cm = np.zeros((n_classes, n_classes), np.int64)
        np.add.at(cm, (y, pred), 1)
        support = cm.sum(axis=1)
        out["recall"] = [float(cm[k, k] / support[k]) if support[k] else None
                         for k in range(n_classes)]
    return out


def drift_expected(ref, cur, thresholds=(0.1, 0.2, 0.1, 0.05)):
    (pr, sr, yr), (pc, sc, yc) = ref, cur
    labels = [pr, pc] + [v for v in (yr, yc) if v is not None]
    c = int(max(v.max() for v in labels)) + 1
    a = side_summary(pr, sr, yr, c)
    b = side_summary(pc, sc, yc, c)
    rc, cc = np.array(a["class_counts"]), np.array(b["class_counts"])
    class_psi, class_js = distances(rc, cc)
    stat, p_value = chi_squared(rc, cc)
    conf_psi, conf_js = distances(np.array(a["confidence_counts"]),
                                  np.array(b["confidence_counts"]))
    warn, alert, js_alert, alpha = thresholds
    alerts = []
    for name, psi, js in (("class", class_psi, class_js), ("confidence", conf_psi, conf_js)):
        if psi > alert:
            alerts.append(f"{name}_psi")
        if js > js_alert:
            alerts.append(f"{name}_js")
        if name == "class" and p_value < alpha:
            alerts.append("class_chi2")
    return {
        "n_classes": c,
        "reference": a,
        "current": b,
        "class": {"psi": class_psi, "js": class_js, "chi2": stat, "p_value": p_value},
        "confidence": {"psi": conf_psi, "js": conf_js},
        "alerts": alerts,
    }


def make_drift():
    DRIFT_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(6001)
    c = 7
    names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker"]

    def logits_row(sharpness):
        def make(rng, width):
            k = rng.integers(0, width)
            return rng.normal(0, 1, size=width) + sharpness * np.eye(width)[k] * rng.random()
        return make

    ref_scores = away_from_edges(logits_row(6.0), rng, 4000, c)
    ref_pred = np.argmax(ref_scores, axis=1)
    ref_y = np.where(rng.random(4000) < 0.85, ref_pred, rng.integers(0, c, size=4000))
    ref_y[17] = 7  # a class that only the labels know: C = 8
    # Current: flatter logits, class 2 boosted, class 5 never predicted.
    cur_scores = away_from_edges(logits_row(3.5), rng, 3000, c)
    cur_scores[:, 2] += np.float32(0.6)
    cur_scores[:, 5] = np.float32(-20)
    conf, _, _ = confidences(cur_scores)
    keep = np.min(np.abs(EDGES[None, :] - conf[:, None]), axis=1) > 1e-5
    cur_scores = cur_scores[keep]
    cur_pred = np.argmax(cur_scores, axis=1)
    cur_y = np.where(rng.random(cur_pred.size) < 0.7, cur_pred,
                     rng.integers(0, c, size=cur_pred.size))
    write_h5(DRIFT_DIR / "ref.h5", pred=ref_pred.astype(np.int32), scores=ref_scores,
             y=ref_y.astype(np.int32), class_names=names)
    write_h5(DRIFT_DIR / "cur.h5", pred=cur_pred.astype(np.int64), scores=cur_scores,
             y=cur_y.astype(np.uint8))
    expected = drift_expected((ref_pred, ref_scores, ref_y), (cur_pred, cur_scores, cur_y))
    dump(DRIFT_DIR / "ref_cur.json", expected)
    print(f"drift ref/cur: C={expected['n_classes']} class={expected['class']} "
          f"confidence={expected['confidence']} alerts={expected['alerts']}")

    # Probability vectors, no labels.
    rng = np.random.default_rng(6002)
    c = 5

    def prob_rows(alpha, n):
        rows = rng.dirichlet(np.full(c, alpha), size=n).astype(np.float32)
        rows[0] = np.float32([1, 0, 0, 0, 0])  # confidence exactly 1: the closed last bin
        rows[1] = np.float32([0.7, 0.3, 0, 0, 0])  # 0.7f lies below numpy's edge 0.7000...01
        rows[2] = np.float32([0.3, 0.3, 0.2, 0.2, 0])  # 0.3f lies above numpy's 0.3000...04
        rows[3] = np.float32([0.9, 0.1, 0, 0, 0])
        return rows

    ref_prob = prob_rows(0.4, 2500)
    cur_prob = prob_rows(0.9, 2000)
    ref_pred = np.argmax(ref_prob, axis=1)
    cur_pred = np.argmax(cur_prob, axis=1)
    write_h5(DRIFT_DIR / "ref_prob.h5", pred=ref_pred.astype(np.int32), scores=ref_prob)
    write_h5(DRIFT_DIR / "cur_prob.h5", pred=cur_pred.astype(np.int32), scores=cur_prob)
    expected = drift_expected((ref_pred, ref_prob, None), (cur_pred, cur_prob, None))
    assert expected["reference"]["probabilities"] and expected["current"]["probabilities"]
    dump(DRIFT_DIR / "prob.json", expected)
    print(f"drift prob: class={expected['class']} confidence={expected['confidence']}")

    # One row off by 0.01: the whole current file is read as logits (softmax).
    mixed = cur_prob.copy()
    mixed[10] = np.float32([0.41, 0.3, 0.1, 0.1, 0.1])
    conf, _, is_prob = confidences(mixed)
    assert not is_prob and np.min(np.abs(EDGES[None, :] - conf[:, None])) > 1e-5
    write_h5(DRIFT_DIR / "cur_mixed.h5", pred=cur_pred.astype(np.int32), scores=mixed)
    expected = drift_expected((ref_pred, ref_prob, None), (cur_pred, mixed, None))
    assert not expected["current"]["probabilities"]
    dump(DRIFT_DIR / "ref_mixed.json", expected)

    rng = np.random.default_rng(6003)
    count_cases = [
        ([10, 20, 30], [10, 20, 30]),
        ([10, 20, 30], [30, 20, 10]),
        ([100, 0, 50, 5], [90, 7, 0, 5]),
        ([5], [9]),
        ([1, 1], [1000000, 1]),
        ([0, 7, 0, 3], [2, 0, 0, 8]),
        (rng.integers(0, 1000, size=300).tolist(), rng.integers(0, 1000, size=300).tolist()),
        (rng.integers(0, 50, size=37).tolist(), rng.integers(0, 60, size=37).tolist()),
        ([10**9, 2 * 10**9, 3], [10**9 + 12345, 2 * 10**9 - 999, 40]),
    ]
    stats = []
    for p, q in count_cases:
        p, q = np.array(p, np.int64), np.array(q, np.int64)
        psi, js = distances(p, q)
        stat, p_value = chi_squared(p, q)
        stats.append({"reference": p.tolist(), "current": q.tolist(), "psi": psi, "js": js,
                      "chi2": stat, "p_value": p_value})
    dump(DRIFT_DIR / "stats.json", {"cases": stats})
    print(f"drift stats: {len(stats)} cases")


def main():
    make_compare()
    make_drift()


if __name__ == "__main__":
    main()
