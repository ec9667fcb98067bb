"""The model, the data and the training of the example: numpy only.

A two-layer perceptron on scikit-learn's digits (8×8 images, 10 classes),
its four arrays named and shaped as PyTorch would (``fc1.weight`` is
``(out, in)``), all float32: ``fc1.weight`` (32, 64), ``fc1.bias`` (32,),
``fc2.weight`` (10, 32), ``fc2.bias`` (10,). Each node holds one shard of a
seeded non-IID split (:func:`hefl.fedavg.data.load_federated`; the data
ship inside scikit-learn, nothing is downloaded). Training is seeded by
``(seed, partition, round)``, so a run can be replayed exactly.
"""

from functools import lru_cache

import numpy as np

from hefl.fedavg.data import load_federated

#: digits: 64 features, 10 classes; one hidden layer
N_FEATURES, HIDDEN, N_CLASSES = 64, 32, 10
DTYPE = np.float32


def init_arrays(seed=0):
    """Initial model (He-scaled normal weights, zero biases): name -> float32 array."""
    rng = np.random.default_rng([seed, 0xC0FFEE])
    return {
        "fc1.weight": (rng.standard_normal((HIDDEN, N_FEATURES)) * np.sqrt(2 / N_FEATURES)
                       / 4).astype(DTYPE),
        "fc1.bias": np.zeros(HIDDEN, DTYPE),
        "fc2.weight": (rng.standard_normal((N_CLASSES, HIDDEN)) * np.sqrt(2 / HIDDEN)
                       / 4).astype(DTYPE),
        "fc2.bias": np.zeros(N_CLASSES, DTYPE),
    }


@lru_cache(maxsize=4)
def _federated(num_partitions, seed, beta):
    return load_federated("digits", num_partitions, seed=seed, beta=beta)


def load_partition(partition_id, num_partitions, *, seed=0, beta=0.5):
    """``(x_train, y_train), (x_test, y_test)`` of one node (float32 features)."""
    data = _federated(int(num_partitions), int(seed), float(beta))
    shard = data.clients[int(partition_id)]
    return ((shard.x.astype(DTYPE), shard.y), (data.x_test.astype(DTYPE), data.y_test))


def _forward(p, x):
    h = np.maximum(x @ p["fc1.weight"].T + p["fc1.bias"], 0)
    logits = h @ p["fc2.weight"].T + p["fc2.bias"]
    logits = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    return h, prob / prob.sum(axis=1, keepdims=True)


def _loss(prob, y):
    return float(-np.mean(np.log(prob[np.arange(len(y)), y] + 1e-12)))


def train(arrays, x, y, *, epochs, lr, batch_size, rng):
    """Minibatch SGD on cross-entropy; returns the new arrays and the final training loss."""
    p = {k: np.array(v, dtype=DTYPE) for k, v in arrays.items()}
    lr = DTYPE(lr)
    for _ in range(int(epochs)):
        order = rng.permutation(len(y))
        for start in range(0, len(y), int(batch_size)):
            idx = order[start:start + int(batch_size)]
            xb, yb = x[idx], y[idx]
            h, prob = _forward(p, xb)
            d_logits = prob
            d_logits[np.arange(len(yb)), yb] -= 1
            d_logits /= len(yb)
            d_h = (d_logits @ p["fc2.weight"]) * (h > 0)
            grads = {"fc2.weight": d_logits.T @ h, "fc2.bias": d_logits.sum(axis=0),
                     "fc1.weight": d_h.T @ xb, "fc1.bias": d_h.sum(axis=0)}
            for k, g in grads.items():
                p[k] -= lr * g.astype(DTYPE)
    return p, _loss(_forward(p, x)[1], y)


def evaluate(arrays, x, y):
    """``(loss, accuracy)`` of the model on ``(x, y)``."""
    p = {k: np.asarray(v, dtype=DTYPE) for k, v in arrays.items()}
    prob = _forward(p, x)[1]
    return _loss(prob, y), float(np.mean(prob.argmax(axis=1) == y))
