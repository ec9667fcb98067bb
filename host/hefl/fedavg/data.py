"""Federated datasets: a scikit-learn dataset split non-IID among K clients.

Only datasets that ship inside scikit-learn are used, so nothing is
downloaded at run time. The split works in three steps:

1. a stratified held-out test set (``test_fraction``) that no client sees;
2. standardisation of the features with the mean and standard deviation of
   the training part. In a real federation these statistics would come from
   a (secure) aggregate of the clients' own statistics; here they stand for
   that public preprocessing step;
3. label skew by a Dirichlet draw: for each class, the share of its samples
   each client receives is drawn from ``Dir(beta, ..., beta)``. Small
   ``beta`` gives very skewed clients (a few classes each), large ``beta``
   an almost IID split. The draw is repeated (same seeded generator) until
   every client holds at least ``min_samples`` samples.
"""

from dataclasses import dataclass, field

import numpy as np

from hefl.errors import DatasetError

# DatasetError is defined in hefl.errors with every other error; re-exported here.
__all__ = ["DATASETS", "ClientData", "FederatedData", "load_federated", "DatasetError"]

#: dataset name -> scikit-learn loader name
DATASETS = {
    "digits": "load_digits",
    "breast_cancer": "load_breast_cancer",
    "wine": "load_wine",
}


@dataclass
class ClientData:
    """One client's private shard.

    Attributes
    ----------
    x : np.ndarray
        Standardised features, shape ``(n, d)``, float64.
    y : np.ndarray
        Integer labels in ``[0, classes)``, shape ``(n,)``.
    """

    x: np.ndarray
    y: np.ndarray

    @property
    def n(self):
        """Number of samples (public metadata: FedAvg weights by it)."""
        return len(self.y)


@dataclass
class FederatedData:
    """A dataset split among clients plus a held-out test set."""

    name: str
    clients: list
    x_test: np.ndarray
    y_test: np.ndarray
    n_features: int
    n_classes: int
    info: dict = field(default_factory=dict)

    @property
    def counts(self):
        """Sample count of each client, in client order."""
        return [c.n for c in self.clients]

    def train_union(self):
        """All clients' samples stacked (for reporting the global training loss)."""
        return (np.concatenate([c.x for c in self.clients]),
                np.concatenate([c.y for c in self.clients]))


def _load(name):
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    import sklearn.datasets
    bunch = getattr(sklearn.datasets, DATASETS[name])()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def _stratified_test_split(y, test_fraction, rng):
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = int(round(test_fraction * len(idx)))
        test.extend(idx[:k].tolist())
    test = np.array(sorted(test), dtype=np.int64)
    train = np.setdiff1d(np.arange(len(y)), test)
    return train, test


def _dirichlet_split(y, n_clients, beta, min_samples, rng, max_tries=1000):
    classes = np.unique(y)
    for _ in range(max_tries):
        parts = [[] for _ in range(n_clients)]
        for c in classes:
            idx = np.flatnonzero(y == c)
            rng.shuffle(idx)
            shares = rng.dirichlet(np.full(n_clients, beta))
            # Cut points from the cumulative shares; every sample lands somewhere.
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_samples:
            return [np.array(sorted(p), dtype=np.int64) for p in parts]
    raise DatasetError(
        f"could not give each of {n_clients} clients {min_samples} samples in {max_tries} "
        f"Dirichlet draws (beta={beta}); use fewer clients, a larger beta or a smaller minimum")


def load_federated(name="digits", n_clients=8, *, seed=0, beta=0.5, test_fraction=0.2,
                   min_samples=None):
    """Load ``name`` and split it non-IID among ``n_clients`` clients.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    n_clients : int
        Number of clients K (≥ 1).
    seed : int
        Seed of the test split and the Dirichlet draw.
    beta : float
        Dirichlet concentration (> 0); smaller is more skewed.
    test_fraction : float
        Share of each class held out for the test set, in ``(0, 1)``.
    min_samples : int, optional
        Smallest shard any client may get; by default 20, or half a fair
        share on small datasets (at least 5).

    Returns
    -------
    FederatedData

    Raises
    ------
    DatasetError
        Unknown dataset or parameters that cannot be met.
    """
    if not isinstance(n_clients, int) or n_clients < 1:
        raise DatasetError(f"number of clients must be a positive integer, not {n_clients!r}")
    if not beta > 0:
        raise DatasetError(f"Dirichlet beta must be positive, not {beta!r}")
    if not 0 < test_fraction < 1:
        raise DatasetError(f"test fraction must lie in (0, 1), not {test_fraction!r}")
    x, y = _load(name)
    rng = np.random.default_rng([seed, 0xDA7A])
    train, test = _stratified_test_split(y, test_fraction, rng)
    if min_samples is None:
        min_samples = max(5, min(20, len(train) // (2 * n_clients)))
    if n_clients * min_samples > len(train):
        raise DatasetError(
            f"{name} has {len(train)} training samples, too few for {n_clients} clients "
            f"with at least {min_samples} each")
    mean = x[train].mean(axis=0)
    std = x[train].std(axis=0)
    # Constant features (digits has some always-zero pixels) stay zero.
    std[std == 0] = 1.0
    xs = (x - mean) / std
    shards = _dirichlet_split(y[train], n_clients, beta, min_samples, rng)
    clients = [ClientData(xs[train][s], y[train][s]) for s in shards]
    n_classes = int(y.max()) + 1
    info = {"dataset": name, "clients": n_clients, "beta": beta, "test_fraction": test_fraction,
            "train_samples": int(len(train)), "test_samples": int(len(test)),
            "client_samples": [c.n for c in clients],
            "client_classes": [sorted(set(c.y.tolist())) for c in clients]}
    return FederatedData(name, clients, xs[test], y[test], x.shape[1], n_classes, info)
