#!/usr/bin/env python3
"""Writes datasets/iris_knn3_pred.h5: the seed's baseline (scikit-learn KNeighborsClassifier,
k=3, on the iris split train_test_split(test_size=0.2, random_state=42)) as a cleval
prediction file: y, pred, scores (vote fractions) and class_names. A small shipped input for
`cleval metrics`, independent of cleval itself."""
import h5py
import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

iris = load_iris()
x_train, x_test, y_train, y_test = train_test_split(iris.data, iris.target, test_size=0.2,
                                                    random_state=42)
knn = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(x_train, y_train)
with h5py.File("datasets/iris_knn3_pred.h5", "w") as f:
    f["y"] = y_test.astype(np.int32)
    f["pred"] = knn.predict(x_test).astype(np.int32)
    f["scores"] = knn.predict_proba(x_test).astype(np.float32)
    f["class_names"] = np.array(iris.target_names, dtype=h5py.string_dtype())
    f.attrs["model"] = "scikit-learn KNeighborsClassifier(n_neighbors=3, algorithm='brute')"
    f.attrs["data"] = "iris, train_test_split(test_size=0.2, random_state=42), test part"
