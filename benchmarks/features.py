"""Linear probe: how much class information a code keeps, against raw pixels and PCA.

A logistic regression is trained on the features of a seeded, stratified 70 % split and
scored on the other 30 %: raw pixels, PCA of the code's size, and the autoencoder's codes
(trained on the same 70 %, unlabelled), all in the same run.

    python benchmarks/features.py --datasets digits,faces
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _args import at_least, int_list
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aekit import create_model, fit
from aekit.data import resolve


def probe(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
    return float(clf.fit(train, y_train).score(test, y_test))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="digits,faces")
    ap.add_argument("--latent-dims", type=int_list(1), default=[8, 16, 32])
    ap.add_argument("--epochs", type=at_least(1), default=300)
    ap.add_argument("--seed", type=at_least(0), default=0)
    ap.add_argument("--threads", type=at_least(1), default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'data':<8} {'n':>5} {'features':<22} {'dim':>5} {'probe acc':>9} {'seconds':>8}")
    for name in args.datasets.split(","):
        data = resolve(name)
        x = data.all()
        y = data.labels()
        idx_tr, idx_te = train_test_split(np.arange(len(x)), test_size=0.3, random_state=args.seed,
                                          stratify=y)
        flat = x.flatten(1).numpy()
        acc = probe(flat[idx_tr], y[idx_tr], flat[idx_te], y[idx_te])
        print(f"{name:<8} {len(x):>5} {'raw pixels':<22} {flat.shape[1]:>5} {acc:>9.3f} {'—':>8}")
        for d in args.latent_dims:
            if d > flat.shape[1]:
                print(f"{name:<8} {len(x):>5} (code size {d}: skipped, more than the "
                      f"{flat.shape[1]} input features)")
                continue
            pca = PCA(d, random_state=args.seed).fit(flat[idx_tr])
            acc = probe(pca.transform(flat[idx_tr]), y[idx_tr], pca.transform(flat[idx_te]), y[idx_te])
            print(f"{name:<8} {len(x):>5} {'PCA':<22} {d:>5} {acc:>9.3f} {'—':>8}")
            torch.manual_seed(args.seed)
            model = create_model("deep", data.input_shape, d)
            t = time.perf_counter()
            fit(model, x[idx_tr], epochs=args.epochs, progress=False, seed=args.seed)
            secs = time.perf_counter() - t
            with torch.no_grad():
                model.eval()
                z = model.encode(x).numpy()
            acc = probe(z[idx_tr], y[idx_tr], z[idx_te], y[idx_te])
            print(f"{name:<8} {len(x):>5} {'aekit deep AE codes':<22} {d:>5} {acc:>9.3f} {secs:>8.1f}")


if __name__ == "__main__":
    main()
