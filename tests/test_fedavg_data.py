"""Federated data split and the numpy models of the FedAvg demo."""

import numpy as np
import pytest

from hefl.fedavg.data import DATASETS, DatasetError, load_federated
from hefl.fedavg.model import MLP, ModelError, SoftmaxRegression, make_model


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_split_partitions_the_training_set(name, seed):
    import sklearn.datasets
    bunch = getattr(sklearn.datasets, DATASETS[name])()
    k = 4
    fd = load_federated(name, k, seed=seed, min_samples=10)
    assert len(fd.clients) == k
    assert min(fd.counts) >= 10
    # Every sample lands exactly once: clients + test = the whole dataset.
    assert sum(fd.counts) + len(fd.y_test) == len(bunch.target)
    # Test set stratified: every class present, proportions within one sample of 20%.
    for c in np.unique(bunch.target):
        n_c = int(np.sum(bunch.target == c))
        assert abs(int(np.sum(fd.y_test == c)) - 0.2 * n_c) <= 1
    # Standardised with training statistics: training mean ~0, std ~1 (or 0 for constant features).
    x, y = fd.train_union()
    assert np.allclose(x.mean(axis=0), 0, atol=1e-9)
    sd = x.std(axis=0)
    assert np.all(np.isclose(sd, 1) | np.isclose(sd, 0))
    # The features are the dataset's, affinely rescaled: per feature, the
    # sorted standardised column maps onto the sorted raw column by one line.
    assert x.shape[1] == bunch.data.shape[1] and fd.n_classes == len(np.unique(bunch.target))
    x_all = np.concatenate([x, fd.x_test])
    for j in range(x.shape[1]):
        xs, rs = np.sort(x_all[:, j]), np.sort(bunch.data[:, j])
        if np.ptp(rs) == 0:
            continue
        a, b = np.polyfit(xs, rs, 1)
        assert np.allclose(a * xs + b, rs, atol=1e-6 * max(1.0, np.abs(rs).max()))


def test_split_is_seeded_and_non_iid(seed):
    a = load_federated("digits", 8, seed=seed)
    b = load_federated("digits", 8, seed=seed)
    for ca, cb in zip(a.clients, b.clients, strict=True):
        assert np.array_equal(ca.x, cb.x) and np.array_equal(ca.y, cb.y)

    def skew(fd):
        # Mean total-variation distance of client label histograms from the global one.
        x, y = fd.train_union()
        glob = np.bincount(y, minlength=fd.n_classes) / len(y)
        return np.mean([0.5 * np.abs(np.bincount(c.y, minlength=fd.n_classes) / c.n - glob).sum()
                        for c in fd.clients])

    skewed = load_federated("digits", 8, seed=seed, beta=0.1)
    iid = load_federated("digits", 8, seed=seed, beta=1000.0)
    print("label skew beta=0.1:", skew(skewed), "beta=1000:", skew(iid))
    assert skew(skewed) > 0.4 > 0.1 > skew(iid)


def test_split_bad_input():
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_federated("mnist", 4)
    with pytest.raises(DatasetError, match="too few"):
        load_federated("wine", 20, min_samples=20)
    with pytest.raises(DatasetError, match="positive integer"):
        load_federated("wine", 0)
    with pytest.raises(DatasetError, match="beta"):
        load_federated("wine", 2, beta=0)


@pytest.mark.parametrize("cls", [SoftmaxRegression, MLP])
def test_gradient_matches_finite_differences(cls, seed):
    rng = np.random.default_rng(seed)
    d, c, n = 5, 3, 7
    m = cls(d, c, l2=0.01, rng=rng) if cls is MLP else cls(d, c, l2=0.01)
    m.set_params(rng.normal(0, 0.5, m.size))
    x = rng.normal(size=(n, d))
    y = rng.integers(0, c, n)
    g = m.gradient(x, y)
    theta = m.get_params()
    num = np.zeros_like(theta)
    h = 1e-6
    for i in range(m.size):
        e = np.zeros_like(theta)
        e[i] = h
        m.set_params(theta + e)
        up = m.loss(x, y)
        m.set_params(theta - e)
        num[i] = (up - m.loss(x, y)) / (2 * h)
    m.set_params(theta)
    assert np.allclose(g, num, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["softmax", "mlp"])
def test_training_learns_digits(name, seed):
    fd = load_federated("digits", 1, seed=seed)
    c = fd.clients[0]
    m = make_model(name, fd.n_features, fd.n_classes, seed=seed)
    before = m.loss(c.x, c.y)
    m.train_epochs(c.x, c.y, epochs=5, lr=0.1, batch_size=32, rng=np.random.default_rng(seed))
    print(name, "loss", before, "->", m.loss(c.x, c.y), "test acc", m.accuracy(fd.x_test, fd.y_test))
    assert m.loss(c.x, c.y) < 0.5 * before
    assert m.accuracy(fd.x_test, fd.y_test) > 0.85


def test_model_params_and_errors():
    m = make_model("mlp", 4, 3, seed=1, hidden=5)
    assert m.size == 4 * 5 + 5 + 5 * 3 + 3
    # Seeded init: same seed same parameters, different seed different ones.
    assert np.array_equal(m.get_params(), make_model("mlp", 4, 3, seed=1, hidden=5).get_params())
    assert not np.array_equal(m.get_params(), make_model("mlp", 4, 3, seed=2, hidden=5).get_params())
    p = m.get_params()
    p[0] += 1
    assert m.get_params()[0] != p[0]  # get_params returns a copy
    with pytest.raises(ModelError, match="shape"):
        m.set_params(np.zeros(m.size + 1))
    with pytest.raises(ModelError, match="unknown model"):
        make_model("cnn", 4, 3)
