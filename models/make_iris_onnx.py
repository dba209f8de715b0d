"""Make the small ONNX models the shadow tests use (run with the peers' venv):

    .venv-peers/bin/python models/make_iris_onnx.py [OUT_DIR]

- iris.onnx: the logistic regression tests/peers/mlserver_iris.py serves with MLServer (same
  data, same estimator and settings, so the same coefficients), converted with skl2onnx.
  Input "X" float32 [N, 4]; outputs "label" int64 [N] and "probabilities" float32 [N, 3]
  (zipmap off, so the probabilities are a plain tensor).
- iris_perturbed.onnx: the same model with class 1's intercept raised by PERTURB, so that a
  share of class-2 (and some class-0) answers turn into class 1: a deliberately worse candidate
  whose disagreement with the live model a test can compute exactly.
"""
import os
import sys

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

PERTURB = 2.5


def train():
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(X, y), X


def convert(model, X):
    return to_onnx(
        model,
        X[:1].astype(np.float32),
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )


def main(out):
    model, X = train()
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "iris.onnx"), "wb") as f:
        f.write(convert(model, X).SerializeToString())
    model.intercept_ = model.intercept_.copy()
    model.intercept_[1] += PERTURB
    with open(os.path.join(out, "iris_perturbed.onnx"), "wb") as f:
        f.write(convert(model, X).SerializeToString())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
