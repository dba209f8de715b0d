"""Write the iris data set (scikit-learn's copy of Fisher's 1936 measurements) as models/iris.csv,
the rows `inferwatch demo` draws its traffic and golden set from (run with the peers' venv):

    .venv-peers/bin/python models/make_iris_csv.py [OUT_DIR]

Columns: sepal_length, sepal_width, petal_length, petal_width (cm), class (0 setosa,
1 versicolor, 2 virginica); the same rows models/make_iris_onnx.py trains on.
"""
import os
import sys

from sklearn.datasets import load_iris


def main(out):
    X, y = load_iris(return_X_y=True)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "iris.csv"), "w") as f:
        f.write("sepal_length,sepal_width,petal_length,petal_width,class\n")
        for row, label in zip(X, y):
            f.write(",".join(f"{v:.1f}" for v in row) + f",{label}\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
