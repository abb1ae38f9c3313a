#!/usr/bin/env bash
# Fresh machine to results: installs the dependencies, builds, and runs cleval's main job on
# the shipped data: the Fashion-MNIST CNN (datasets/fmnist_cnn.onnx) on its test set, and the
# KNN baseline (k = 5) next to it, trained on Debian's Fashion-MNIST training set.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
mkdir -p build/data
if [ ! -f build/data/fmnist_train.h5 ]; then
  fmnist=/usr/share/datasets/fashion-mnist
  ./build/bench/idx2h5 "$fmnist/train-images-idx3-ubyte.gz" "$fmnist/train-labels-idx1-ubyte.gz" \
    build/data/fmnist_train.h5 "T-shirt/top" Trouser Pullover Dress Coat Sandal Shirt Sneaker \
    Bag "Ankle boot"
fi
./build/src/cleval devices
echo
echo "== The network: cleval eval =="
./build/src/cleval eval --model datasets/fmnist_cnn.onnx --data datasets/fmnist_test.h5
echo
echo "== The KNN baseline: cleval knn -k 5 =="
./build/src/cleval knn --train build/data/fmnist_train.h5 --data datasets/fmnist_test.h5 -k 5
