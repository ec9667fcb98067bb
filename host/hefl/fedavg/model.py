"""Numpy classifiers with a flat parameter vector.

FedAvg only ever moves one flat float vector per model (the update that is
encoded and encrypted), so each model stores its parameters in one 1-D array
``theta`` and exposes views onto it. Two models:

* :class:`SoftmaxRegression` (default): ``p = softmax(x W + b)``;
* :class:`MLP`: one hidden ReLU layer, ``p = softmax(relu(x W1 + b1) W2 + b2)``.

Both minimise the mean cross-entropy plus ``l2/2 ‖W‖²`` by mini-batch SGD.
All randomness (initialisation, batch order) comes from generators the
caller passes in, so two runs with the same seeds are bit-identical.
"""

import numpy as np

from hefl.errors import ModelError

# ModelError is defined in hefl.errors with every other error; re-exported here.
__all__ = ["MODELS", "Model", "SoftmaxRegression", "MLP", "make_model", "ModelError"]


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Model:
    """Common part: flat parameters, loss, accuracy and SGD epochs.

    Subclasses define ``_shapes`` (name -> shape, in storage order),
    ``_forward(x)`` returning class probabilities plus a cache, and
    ``_backward(cache, dlogits)`` returning the flat gradient.
    """

    _shapes = {}

    def __init__(self, n_features, n_classes, *, l2=1e-4):
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.l2 = float(l2)
        self.size = sum(int(np.prod(s)) for s in self._shapes.values())
        self.theta = np.zeros(self.size)

    # --- flat parameters ------------------------------------------------

    def get_params(self):
        """A copy of the flat parameter vector."""
        return self.theta.copy()

    def set_params(self, theta):
        """Replace the parameters by a copy of ``theta`` (length :attr:`size`)."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.size,):
            raise ModelError(f"parameter vector has shape {theta.shape}, expected ({self.size},)")
        self.theta = theta.copy()

    def _views(self, theta=None):
        theta = self.theta if theta is None else theta
        out, i = {}, 0
        for name, shape in self._shapes.items():
            k = int(np.prod(shape))
            out[name] = theta[i:i + k].reshape(shape)
            i += k
        return out

    # --- evaluation -----------------------------------------------------

    def predict_proba(self, x):
        """Class probabilities, shape ``(n, classes)``."""
        return self._forward(x)[0]

    def loss(self, x, y):
        """Mean cross-entropy plus the L2 penalty."""
        p = self.predict_proba(x)
        ce = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)))
        return float(ce + 0.5 * self.l2 * self._weight_norm2())

    def accuracy(self, x, y):
        """Share of samples whose most probable class is the label."""
        return float(np.mean(self.predict_proba(x).argmax(axis=1) == y))

    # --- training ---------------------------------------------------------

    def gradient(self, x, y):
        """Flat gradient of :meth:`loss` on the batch ``(x, y)``."""
        p, cache = self._forward(x)
        d = p.copy()
        d[np.arange(len(y)), y] -= 1.0
        d /= len(y)
        g = self._backward(cache, d)
        g += self.l2 * self._weight_mask() * self.theta
        return g

    def train_epochs(self, x, y, *, epochs, lr, batch_size, rng):
        """Run ``epochs`` passes of mini-batch SGD over ``(x, y)`` in place.

        Parameters
        ----------
        rng : np.random.Generator
            Decides the batch order of every epoch.
        """
        n = len(y)
        for _ in range(epochs):
            order = rng.permutation(n)
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                self.theta -= lr * self.gradient(x[idx], y[idx])

    # --- helpers for subclasses -------------------------------------------

    def _weight_mask(self):
        # The L2 penalty applies to weight matrices, not to biases.
        mask = np.zeros(self.size)
        i = 0
        for name, shape in self._shapes.items():
            k = int(np.prod(shape))
            if name.startswith("W"):
                mask[i:i + k] = 1.0
            i += k
        return mask

    def _weight_norm2(self):
        return float(np.sum((self._weight_mask() * self.theta) ** 2))


class SoftmaxRegression(Model):
    """Multinomial logistic regression ``softmax(x W + b)``, zero-initialised."""

    def __init__(self, n_features, n_classes, *, l2=1e-4, rng=None):
        self._shapes = {"W": (n_features, n_classes), "b": (n_classes,)}
        super().__init__(n_features, n_classes, l2=l2)

    def _forward(self, x):
        v = self._views()
        return _softmax(x @ v["W"] + v["b"]), x

    def _backward(self, x, d):
        return np.concatenate([(x.T @ d).ravel(), d.sum(axis=0)])


class MLP(Model):
    """One hidden ReLU layer of ``hidden`` units, He-initialised from ``rng``."""

    def __init__(self, n_features, n_classes, *, hidden=32, l2=1e-4, rng=None):
        self.hidden = int(hidden)
        self._shapes = {"W1": (n_features, self.hidden), "b1": (self.hidden,),
                        "W2": (self.hidden, n_classes), "b2": (n_classes,)}
        super().__init__(n_features, n_classes, l2=l2)
        rng = np.random.default_rng(0) if rng is None else rng
        v = self._views()
        v["W1"][...] = rng.normal(0.0, np.sqrt(2.0 / n_features), v["W1"].shape)
        v["W2"][...] = rng.normal(0.0, np.sqrt(2.0 / self.hidden), v["W2"].shape)

    def _forward(self, x):
        v = self._views()
        pre = x @ v["W1"] + v["b1"]
        h = np.maximum(pre, 0.0)
        return _softmax(h @ v["W2"] + v["b2"]), (x, pre, h)

    def _backward(self, cache, d):
        x, pre, h = cache
        v = self._views()
        dh = (d @ v["W2"].T) * (pre > 0)
        return np.concatenate([(x.T @ dh).ravel(), dh.sum(axis=0),
                               (h.T @ d).ravel(), d.sum(axis=0)])


#: model name -> class
MODELS = {"softmax": SoftmaxRegression, "mlp": MLP}


def make_model(name, n_features, n_classes, *, seed=0, **kwargs):
    """Build model ``name`` with its initial parameters drawn from ``seed``."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](n_features, n_classes, rng=np.random.default_rng([seed, 0x1A17]), **kwargs)
