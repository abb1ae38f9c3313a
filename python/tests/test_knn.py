"""cleval.knn() against scikit-learn's brute-force KNeighborsClassifier, from arrays and from
the shipped HDF5 files."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score
from sklearn.neighbors import KNeighborsClassifier

import cleval
from conftest import DATASETS, cli_json, without_run_keys


# k = 7 would meet a tie at the 7th neighbour (test sample 8), which scikit-learn breaks in
# its own order and cleval by the lower training index (docs/contract.md "KNN").
@pytest.mark.parametrize("k", [1, 3, 5])
def test_predictions_match_scikit_learn(iris, k):
    train_X, train_y, X, y = iris
    expected = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(train_X, train_y)
    result = cleval.knn(train_X, train_y, X, y, k=k)
    np.testing.assert_array_equal(result.predictions, expected.predict(X))
    np.testing.assert_allclose(result.scores, expected.predict_proba(X), rtol=1e-6)
    assert result.report["accuracy"] == accuracy_score(y, expected.predict(X))
    assert result.report["macro"]["f1"] == pytest.approx(
        f1_score(y, expected.predict(X), average="macro", zero_division=0), abs=1e-12)


def test_files_and_arrays_give_the_command_line_report(iris):
    train_X, train_y, X, y = iris
    train, test = DATASETS / "iris_train.h5", DATASETS / "iris_test.h5"
    expected = without_run_keys(cli_json("knn", "--train", train, "--data", test, "-k", 3))
    from_files = cleval.knn(str(train), None, test, k=3)
    from_arrays = cleval.knn(train_X, train_y, X, y, k=3)
    assert without_run_keys(from_files.report) == expected
    # Arrays carry no class names: everything else is the same.
    strip = lambda r: {k: v for k, v in without_run_keys(r).items() if k != "per_class"}
    assert strip(from_arrays.report) == strip(expected)
    np.testing.assert_array_equal(from_files.predictions, from_arrays.predictions)
    np.testing.assert_array_equal(from_files.labels, y)


def test_k_above_the_training_set_is_the_command_line_error(iris):
    train_X, train_y, X, y = iris
    with pytest.raises(cleval.Error) as caught:
        cleval.knn(train_X, train_y, X, y, k=len(train_y) + 1)
    assert caught.value.exit_code == 2
    assert str(len(train_y) + 1) in str(caught.value)
