#!/usr/bin/env python3
"""Generate the reference fixtures for `cleval knn` under tests/fixtures/knn/.

For each data set <name> this writes
  <name>_train.h5     `X` (float32 or float64 [N, D]) and `y` (int64 [N])
  <name>_test.h5      `X` and `y` for the queries
  <name>_expected.h5  one group per configuration (`k3`, `k5_distance`, `k3_cosine`, ...)
                      with attributes k, weights, metric and the datasets
        pred        int32   [Q]     predicted class
        proba       float64 [Q, C]  vote fractions (weighted ones for weights=distance)
        neighbors   int64   [Q, k]  training indices ordered by (float64 distance, index)
        distances   float64 [Q, k]  their distances
        ambiguous   uint8   [Q]     1 where the result depends on a tie rule (see below)
C is max(label) + 1 over the training and test labels.

The data sets: iris (float64), wine (standardised, float32) and digits (float32) with
pred/proba from scikit-learn's KNeighborsClassifier(algorithm='brute'); `ties`, a small
hand-made set whose expected values come from the numpy implementation of the contract's
tie rules below (scikit-learn breaks such ties arbitrarily), so its `ambiguous` is all 0;
and `fmnist_subset_expected.h5` for the first 10,000 / 2,000 Fashion-MNIST train / test
images as float32 x/255, read from Debian's dataset-fashion-mnist package (the images
themselves are not stored; the C test reads the same Debian files).

The contract's rules, implemented by `reference_knn`: neighbours are sorted by distance,
equal distances by the lower training index; uniform votes, or with weights=distance the
votes 1/d, except that when a neighbour is at distance 0 only the distance-0 neighbours
vote (weight 1 each), as scikit-learn does; equal top votes go to the smallest label.

`neighbors` and `distances` always come from that numpy implementation in float64 (not
scikit-learn's kneighbors, whose order among ties is arbitrary). A query is `ambiguous`
when the k-th and (k+1)-th distances are within 1e-6 relative of each other, or when two
or more classes share the top vote (within 1e-9 relative for weighted votes): there a
float32 engine may legitimately differ from scikit-learn. For every other query the script
checks that the numpy implementation agrees with scikit-learn.

Deterministic; run from the repository root:  python3 tools/make_knn_fixtures.py
"""

import gzip
from pathlib import Path

import h5py
import numpy as np
from sklearn.datasets import load_digits, load_iris, load_wine
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "knn"
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

DIST_TIE_RTOL = 1e-6  # k-th vs (k+1)-th distance
VOTE_TIE_RTOL = 1e-9  # top weighted votes
GZIP_MIN_BYTES = 4096


# --------------------------------------------------------------------------------------
# Reference implementation of the contract's KNN rules (float64 numpy)
# --------------------------------------------------------------------------------------


def _exact_sq_euclidean(Xq, Xtr_rows):
    """Squared distances between each query Xq[i] and the rows Xtr_rows[i, j, :]."""
    diff = Xtr_rows - Xq[:, None, :]
    return np.einsum("ijd,ijd->ij", diff, diff)


def sorted_neighbors(Xq, Xtr, n, metric, chunk=64, spare=64):
    """The first n training indices per query by (float64 distance, index), and distances.

    Euclidean: candidates come from the fast |q|^2 - 2 q.x + |x|^2 form, then the
    distances of the candidates are recomputed exactly as the sum of squared differences
    and sorted. A query whose candidate set cannot be proven to hold the true first n
    (the expansion's rounding could matter) is redone over the whole training set.
    Cosine: 1 - cos computed as scikit-learn does (normalise rows, dot, clip to [0, 2]).
    """
    Xq = np.asarray(Xq, dtype=np.float64)
    Xtr = np.asarray(Xtr, dtype=np.float64)
    n_train = Xtr.shape[0]
    idx = np.empty((Xq.shape[0], n), dtype=np.int64)
    dist = np.empty((Xq.shape[0], n), dtype=np.float64)

    if metric == "cosine":
        def unit(a):
            norms = np.linalg.norm(a, axis=1, keepdims=True)
            return a / np.where(norms == 0, 1.0, norms)

        d = np.clip(1.0 - unit(Xq) @ unit(Xtr).T, 0.0, 2.0)
        order = np.argsort(d, axis=1, kind="stable")[:, :n]  # stable: lower index first
        return order.astype(np.int64), np.take_along_axis(d, order, axis=1)

    assert metric == "euclidean"
    tr_sq = np.einsum("ij,ij->i", Xtr, Xtr)
    n_cand = min(n_train, n + spare)
    for start in range(0, Xq.shape[0], chunk):
        q = Xq[start:start + chunk]
        q_sq = np.einsum("ij,ij->i", q, q)
        approx = q_sq[:, None] - 2.0 * (q @ Xtr.T) + tr_sq[None, :]
        if n_cand < n_train:
            cand = np.argpartition(approx, n_cand - 1, axis=1)[:, :n_cand]
        else:
            cand = np.broadcast_to(np.arange(n_train), (q.shape[0], n_train))
        sq = _exact_sq_euclidean(q, Xtr[cand])
        for i in range(q.shape[0]):
            order = np.lexsort((cand[i], sq[i]))[:n]
            best_idx, best_sq = cand[i][order], sq[i][order]
            if n_cand < n_train:
                # Every non-candidate has approx >= max candidate approx; it is provably
                # farther than the n-th neighbour when that margin beats the rounding.
                tol = 1e-9 * (q_sq[i] + tr_sq.max())
                if not best_sq[-1] < approx[i, cand[i]].max() - tol:
                    full = _exact_sq_euclidean(q[i:i + 1], Xtr[None, :, :])[0]
                    order = np.lexsort((np.arange(n_train), full))[:n]
                    best_idx, best_sq = order, full[order]
            idx[start + i] = best_idx
            dist[start + i] = np.sqrt(best_sq)
    return idx, dist


def vote(labels, dists, n_classes, weights):
    """Class votes of each query's neighbours (rows of labels / dists)."""
    if weights == "uniform":
        w = np.ones_like(dists)
    else:
        exact = dists == 0
        with np.errstate(divide="ignore"):
            w = 1.0 / dists
        w = np.where(exact.any(axis=1, keepdims=True), exact.astype(np.float64), w)
    votes = np.zeros((labels.shape[0], n_classes))
    rows = np.repeat(np.arange(labels.shape[0]), labels.shape[1])
    np.add.at(votes, (rows, labels.ravel()), w.ravel())  # in neighbour order
    return votes


def reference_knn(Xtr, ytr, Xq, n_classes, k, weights, metric):
    """Apply the contract's rules; return a dict of the expected datasets."""
    n_more = min(k + 1, Xtr.shape[0])  # one extra neighbour to detect boundary ties
    nbr_idx, nbr_dist = sorted_neighbors(Xq, Xtr, n_more, metric)
    votes = vote(ytr[nbr_idx[:, :k]], nbr_dist[:, :k], n_classes, weights)
    pred = np.argmax(votes, axis=1)  # first maximum: the smallest label wins ties

    if n_more > k:
        d_k, d_next = nbr_dist[:, k - 1], nbr_dist[:, k]
        boundary_tie = d_next - d_k <= DIST_TIE_RTOL * d_next
    else:
        boundary_tie = np.zeros(Xq.shape[0], dtype=bool)
    top2 = -np.sort(-votes, axis=1)[:, :2]
    if weights == "uniform":
        vote_tie = top2[:, 0] == top2[:, 1]
    else:
        vote_tie = top2[:, 0] - top2[:, 1] <= VOTE_TIE_RTOL * top2[:, 0]

    return {
        "pred": pred.astype(np.int32),
        "proba": votes / votes.sum(axis=1, keepdims=True),
        "neighbors": nbr_idx[:, :k],
        "distances": nbr_dist[:, :k],
        "ambiguous": (boundary_tie | vote_tie).astype(np.uint8),
    }


def sklearn_knn(Xtr, ytr, Xq, n_classes, k, weights, metric):
    """pred, proba (widened to n_classes columns) and neighbour sets from scikit-learn."""
    model = KNeighborsClassifier(
        n_neighbors=k, weights=weights, metric=metric, algorithm="brute"
    ).fit(Xtr, ytr)
    proba = np.zeros((Xq.shape[0], n_classes))
    proba[:, model.classes_] = model.predict_proba(Xq)
    neighbors = model.kneighbors(Xq, return_distance=False)
    return model.predict(Xq).astype(np.int32), proba, neighbors


def check_against_sklearn(name, ref, sk_pred, sk_proba, sk_neighbors):
    """Where no tie rule is involved, the reference must agree with scikit-learn."""
    clear = ref["ambiguous"] == 0
    assert np.array_equal(ref["pred"][clear], sk_pred[clear]), name
    assert np.allclose(ref["proba"][clear], sk_proba[clear], rtol=1e-6, atol=1e-9), name
    same_sets = [
        set(a) == set(b) for a, b in zip(ref["neighbors"][clear], sk_neighbors[clear])
    ]
    assert all(same_sets), name


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def write_xy(path, X, y, compress=False):
    opts = {"compression": "gzip"} if compress else {}
    with h5py.File(path, "w") as h5:
        h5.create_dataset("X", data=X, **opts)
        h5.create_dataset("y", data=y.astype(np.int64))


def write_cfg(h5, cfg, k, weights, metric, result):
    grp = h5.create_group(cfg)
    grp.attrs["k"] = np.int64(k)
    grp.attrs["weights"] = weights
    grp.attrs["metric"] = metric
    for key in ("pred", "proba", "neighbors", "distances", "ambiguous"):
        data = result[key]
        # gzip only where it pays for its chunk index; tiny arrays stay contiguous.
        opts = {"compression": "gzip"} if data.nbytes > GZIP_MIN_BYTES else {}
        grp.create_dataset(key, data=data, **opts)


def parse_cfg(cfg, n_train):
    """'k5_distance' -> (5, 'distance', 'euclidean'); 'kall' -> (n_train, ...)."""
    head, _, tail = cfg.partition("_")
    k = n_train if head == "kall" else int(head[1:])
    weights = "distance" if tail == "distance" else "uniform"
    metric = "cosine" if tail == "cosine" else "euclidean"
    return k, weights, metric


def make_sklearn_fixture(name, Xtr, ytr, Xte, yte, cfgs, compress=False):
    """Write train/test/expected files with pred/proba from scikit-learn."""
    n_classes = int(max(ytr.max(), yte.max())) + 1
    write_xy(OUT_DIR / f"{name}_train.h5", Xtr, ytr, compress)
    write_xy(OUT_DIR / f"{name}_test.h5", Xte, yte, compress)
    with h5py.File(OUT_DIR / f"{name}_expected.h5", "w") as h5:
        for cfg in cfgs:
            k, weights, metric = parse_cfg(cfg, Xtr.shape[0])
            ref = reference_knn(Xtr, ytr, Xte, n_classes, k, weights, metric)
            sk_pred, sk_proba, sk_nbrs = sklearn_knn(Xtr, ytr, Xte, n_classes, k, weights, metric)
            check_against_sklearn(f"{name}/{cfg}", ref, sk_pred, sk_proba, sk_nbrs)
            ref["pred"], ref["proba"] = sk_pred, sk_proba
            write_cfg(h5, cfg, k, weights, metric, ref)
            acc = float(np.mean(sk_pred == yte))
            print(f"{name}/{cfg}: accuracy={acc:.4f} ambiguous={int(ref['ambiguous'].sum())}"
                  f"/{len(yte)}")


def split(X, y):
    return train_test_split(X, y, test_size=0.2, random_state=42)


def make_iris():
    Xtr, Xte, ytr, yte = split(*load_iris(return_X_y=True))
    make_sklearn_fixture("iris", Xtr.astype(np.float64), ytr, Xte.astype(np.float64), yte,
                         ["k3", "k3_distance", "k3_cosine"])


def make_wine():
    Xtr, Xte, ytr, yte = split(*load_wine(return_X_y=True))
    scaler = StandardScaler().fit(Xtr)
    make_sklearn_fixture("wine", scaler.transform(Xtr).astype(np.float32), ytr,
                         scaler.transform(Xte).astype(np.float32), yte,
                         ["k5", "k5_distance"])


def make_digits():
    Xtr, Xte, ytr, yte = split(*load_digits(return_X_y=True))
    make_sklearn_fixture("digits", Xtr.astype(np.float32), ytr, Xte.astype(np.float32), yte,
                         ["k1", "k7"], compress=True)


# --------------------------------------------------------------------------------------
# The hand-made tie set
# --------------------------------------------------------------------------------------

# Training points (x, y, label). Small integer coordinates keep every squared distance
# exact in float32. The clusters lie far apart; their indices are interleaved so that the
# order among equal distances is decided by the index, not by the position in a cluster.
TIES_TRAIN = [
    (10, 10, 1),  # 0  A: five copies of (10, 10); labels 1, 1, 2, 2, 2 by index
    (40, 15, 3),  # 1  B: six distinct points at distance 5 from (40, 10)
    (10, 10, 1),  # 2  A
    (45, 10, 3),  # 3  B
    (10, 10, 2),  # 4  A
    (40, 5, 1),   # 5  B
    (10, 10, 2),  # 6  A
    (35, 10, 1),  # 7  B
    (10, 10, 2),  # 8  A
    (43, 14, 1),  # 9  B
    (37, 6, 1),   # 10 B
    (11, 40, 4),  # 11 C: around (10, 40) at distances 1, 2, 3, 4
    (10, 42, 3),  # 12 C
    (7, 40, 1),   # 13 C
    (10, 44, 3),  # 14 C
    (41, 40, 2),  # 15 D: around (40, 40) at distances 1, 2, 3, 4
    (40, 42, 2),  # 16 D
    (37, 40, 0),  # 17 D
    (40, 44, 0),  # 18 D
    (71, 10, 0),  # 19 E: (70, 10) itself, label 2, and three label-0 points at distance 1
    (70, 11, 0),  # 20 E
    (70, 10, 2),  # 21 E
    (69, 10, 0),  # 22 E
    (70, 41, 0),  # 23 F: (70, 40) twice, labels 3 and 1, and two label-0 points at 1
    (70, 40, 3),  # 24 F
    (70, 40, 1),  # 25 F
    (71, 40, 0),  # 26 F
    (90, 90, 2),  # 27 G: two label-2 points, both at distance sqrt(8) from (92, 92)
    (94, 90, 2),  # 28 G
]
# Class counts 0:7, 1:8, 2:8, 3:5, 4:1, so with k = N_train (kall) labels 1 and 2 tie.

# Queries (x, y, label). The last label, 5, occurs in no training point: C = 6.
TIES_TEST = [
    (10, 13, 1),  # 0 at distance 3 from all five copies in A
    (40, 10, 3),  # 1 centre of the ring B
    (10, 40, 1),  # 2 C
    (40, 40, 0),  # 3 D
    (70, 10, 2),  # 4 on a training point (E)
    (70, 40, 1),  # 5 on two training points with different labels (F)
    (92, 92, 5),  # 6 G
]

TIES_CFGS = ["k2", "k3", "k4", "k3_distance", "kall"]

# What the rules must give, checked before writing: (cfg, query) -> (pred, first neighbours).
TIES_INTENT = {
    # (a) equal distances, only some fit in k: the lower training indices are taken.
    ("k2", 0): (1, [0, 2]),           # a higher-index choice would give label 2
    ("k3", 0): (1, [0, 2, 4]),
    ("k4", 0): (1, [0, 2, 4, 6]),     # and a 2-2 vote tie, 1 < 2
    ("k2", 1): (3, [1, 3]),
    ("k4", 1): (1, [1, 3, 5, 7]),     # 2-2 tie between 3 and 1
    # (b) vote ties: the smallest label wins, even when its neighbours are farther.
    ("k2", 2): (3, [11, 12]),         # 4 (distance 1) vs 3 (distance 2)
    ("k3", 2): (1, [11, 12, 13]),     # three-way tie 4, 3, 1: label 1 is the farthest
    ("k4", 3): (0, [15, 16, 17, 18]),  # 2, 2 nearer; 0, 0 farther
    # (c) an exact match with weights=distance wins outright ...
    ("k3", 4): (0, [21, 19, 20]),     # ... where the uniform vote says 0
    ("k3_distance", 4): (2, [21, 19, 20]),
    # ... and two exact matches with different labels tie: the smaller label wins.
    ("k3_distance", 5): (1, [24, 25, 23]),
    ("k3", 5): (0, [24, 25, 23]),     # uniform: three-way tie 3, 1, 0
    # (d) k = N_train: the class counts decide, 8-8 between labels 1 and 2.
    ("kall", 6): (1, None),
}


def make_ties():
    Xtr = np.array([p[:2] for p in TIES_TRAIN], dtype=np.float32)
    ytr = np.array([p[2] for p in TIES_TRAIN], dtype=np.int64)
    Xte = np.array([p[:2] for p in TIES_TEST], dtype=np.float32)
    yte = np.array([p[2] for p in TIES_TEST], dtype=np.int64)
    n_classes = int(max(ytr.max(), yte.max())) + 1

    write_xy(OUT_DIR / "ties_train.h5", Xtr, ytr)
    write_xy(OUT_DIR / "ties_test.h5", Xte, yte)
    with h5py.File(OUT_DIR / "ties_expected.h5", "w") as h5:
        h5.attrs["description"] = (
            "Expected values from the contract's tie rules (lower training index first "
            "among equal distances; smallest label among equal votes; distance-0 "
            "neighbours alone vote under weights=distance); see tools/make_knn_fixtures.py."
        )
        for cfg in TIES_CFGS:
            k, weights, metric = parse_cfg(cfg, Xtr.shape[0])
            ref = reference_knn(Xtr, ytr, Xte, n_classes, k, weights, metric)
            # Where no tie is involved scikit-learn must agree with the rules.
            check_against_sklearn(f"ties/{cfg}", ref,
                                  *sklearn_knn(Xtr, ytr, Xte, n_classes, k, weights, metric))
            n_ambiguous = int(ref["ambiguous"].sum())
            for (intent_cfg, q), (pred, first) in TIES_INTENT.items():
                if intent_cfg == cfg:
                    assert ref["pred"][q] == pred, (cfg, q, ref["pred"][q])
                    if first is not None:
                        assert list(ref["neighbors"][q, :len(first)]) == first, (cfg, q)
            if cfg == "k3_distance":  # (c) the exact matches take all the weight
                assert ref["proba"][4].tolist() == [0, 0, 1, 0, 0, 0]
                assert ref["proba"][5].tolist() == [0, 0.5, 0, 0.5, 0, 0]
            ref["ambiguous"] = np.zeros(len(yte), dtype=np.uint8)  # the rules decide
            write_cfg(h5, cfg, k, weights, metric, ref)
            print(f"ties/{cfg}: pred={ref['pred'].tolist()} "
                  f"(tie rules needed for {n_ambiguous}/{len(yte)})")


# --------------------------------------------------------------------------------------
# Fashion-MNIST subset
# --------------------------------------------------------------------------------------


def read_idx(name):
    """An IDX file (big-endian header: magic with the rank in its last byte, then dims)."""
    with gzip.open(FMNIST_DIR / name, "rb") as f:
        data = f.read()
    assert data[:2] == b"\0\0" and data[2] == 0x08, name  # unsigned byte payload
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def make_fmnist(n_train=10000, n_test=2000, k=5):
    def images(name, n):
        return (read_idx(name)[:n].reshape(n, -1).astype(np.float32) / np.float32(255))

    Xtr = images("train-images-idx3-ubyte.gz", n_train)
    ytr = read_idx("train-labels-idx1-ubyte.gz")[:n_train].astype(np.int64)
    Xte = images("t10k-images-idx3-ubyte.gz", n_test)
    yte = read_idx("t10k-labels-idx1-ubyte.gz")[:n_test].astype(np.int64)
    n_classes = int(max(ytr.max(), yte.max())) + 1

    ref = reference_knn(Xtr, ytr, Xte, n_classes, k, "uniform", "euclidean")
    sk = sklearn_knn(Xtr, ytr, Xte, n_classes, k, "uniform", "euclidean")
    check_against_sklearn("fmnist_subset/k5", ref, *sk)
    ref["pred"], ref["proba"] = sk[0], sk[1]

    with h5py.File(OUT_DIR / "fmnist_subset_expected.h5", "w") as h5:
        h5.attrs["n_train"] = np.int64(n_train)
        h5.attrs["n_test"] = np.int64(n_test)
        h5.attrs["scale"] = "x/255"
        h5.attrs["source"] = "Debian dataset-fashion-mnist, first n_train / n_test images"
        write_cfg(h5, f"k{k}", k, "uniform", "euclidean", ref)
    acc = float(np.mean(ref["pred"] == yte))
    print(f"fmnist_subset/k{k}: accuracy={acc:.4f} "
          f"ambiguous={int(ref['ambiguous'].sum())}/{n_test}")


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    make_iris()
    make_wine()
    make_digits()
    make_ties()
    make_fmnist()


if __name__ == "__main__":
    main()
