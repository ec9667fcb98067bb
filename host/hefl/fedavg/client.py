"""A FedAvg client: local training, then clip, encode, encrypt, serialise.

Weighting (FedAvg weights clients by their sample counts n_k, which are
public metadata): every client multiplies its update by
``w_k = n_k / N``, where N is the total sample count of *all* K clients of
the federation, known before the round starts. The decrypted sum over the
clients S that actually contributed is then ``Σ_S w_k u_k``, and the key
holder divides it by ``Σ_S w_k`` (also public). This gives exactly the
FedAvg mean over the survivors, ``Σ_S n_k u_k / Σ_S n_k``, however many
clients drop out or are excluded after encrypting, and it needs no second
message to the clients. The price is that the quantisation error of the
sum is divided by ``Σ_S w_k`` ≤ 1 (see :meth:`KeyHolder.error_bound
<hefl.fedavg.keyholder.KeyHolder.error_bound>`).

The scaled update is clipped to ``[-alpha, alpha]`` here, before encoding,
so the exact values the encrypted path carries are known to the loop's
per-round check; the encoder's own clipping is then a no-op. The plaintext
reference uses the unclipped update (:attr:`LocalResult.raw`): plain
FedAvg, so any effect of clipping shows in the accuracy gap.

Ciphertexts leave the client as bytes (``CipherVector.to_bytes``), never as
pickled objects.
"""

from dataclasses import dataclass

import numpy as np

from hefl.errors import NonFiniteUpdateError
from hefl.fedavg.model import make_model

__all__ = ["Client", "LocalResult", "garble", "check_and_clip"]


@dataclass
class LocalResult:
    """What one client's local training produced.

    Attributes
    ----------
    update : np.ndarray
        ``w_k · (θ_local − θ_global)`` clipped to ``[-alpha, alpha]``: what
        gets encoded.
    raw : np.ndarray
        The same before clipping.
    clipped : int
        How many entries the clipping changed.
    loss : float
        Local training loss after training.
    """

    update: np.ndarray
    raw: np.ndarray
    clipped: int
    loss: float


class Client:
    """One party of the federation.

    Parameters
    ----------
    cid : int
        Client index.
    data : hefl.fedavg.data.ClientData
        The private shard.
    weight : float
        ``n_k / N`` (see the module docstring).
    model : str
        Model name for :func:`hefl.fedavg.model.make_model`.
    n_features, n_classes : int
        Model shape.
    epochs, lr, batch_size :
        Local SGD settings.
    alpha : float
        Clipping bound of the scaled update.
    """

    def __init__(self, cid, data, weight, *, model, n_features, n_classes, epochs, lr,
                 batch_size, alpha):
        self.cid = cid
        self.data = data
        self.weight = float(weight)
        self._model = make_model(model, n_features, n_classes)
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.alpha = float(alpha)

    def train(self, global_theta, rng, *, poison_nan=False):
        """Train from ``global_theta`` and return the scaled, clipped update.

        Parameters
        ----------
        global_theta : np.ndarray
            Parameters of the current global model.
        rng : np.random.Generator
            Batch order; the HE run and the plaintext reference pass equal
            generators so both see the same batches.
        poison_nan : bool
            Test hook: plant a NaN in the update, as a diverged local model
            would.

        Raises
        ------
        NonFiniteUpdateError
            The update holds NaN or infinity; nothing may be encrypted.
        """
        m = self._model
        m.set_params(global_theta)
        with np.errstate(over="ignore", invalid="ignore"):
            m.train_epochs(self.data.x, self.data.y, epochs=self.epochs, lr=self.lr,
                           batch_size=self.batch_size, rng=rng)
            update = self.weight * (m.get_params() - global_theta)
        if poison_nan:
            update[len(update) // 2] = np.nan
        clipped, n_clipped = check_and_clip(update, self.alpha, f"client {self.cid}: update")
        return LocalResult(clipped, update, n_clipped, m.loss(self.data.x, self.data.y))

    def encrypt(self, update, he, encoder, meta):
        """Encode and encrypt ``update``; return the serialised ciphertext vector.

        Parameters
        ----------
        update : np.ndarray
            Output of :meth:`train`.
        he : hefl.paillier.Paillier
            Paillier context of the shared key.
        encoder : hefl.encoding.Encoder
            The federation's encoder (same parameters for every client).
        meta : dict
            Carried in the ciphertext vector (encoder parameters, length,
            round); the aggregator checks it.

        Returns
        -------
        bytes
        """
        plaintexts = encoder.encode(update)
        cv = he.encrypt(plaintexts, meta=dict(meta, client=self.cid))
        return cv.to_bytes()


def garble(data, mode="truncate", public_key=None):
    """Corrupt a serialised ciphertext vector the way a faulty or malicious client might.

    Parameters
    ----------
    data : bytes
        Output of ``CipherVector.to_bytes()``.
    mode : {"truncate", "flip", "zero", "n2"}
        ``truncate`` cuts the last bytes off and ``flip`` inverts one byte
        in the middle (transport damage: the checksum catches both);
        ``zero`` and ``n2`` re-serialise the vector, checksum and all, with
        its last ciphertext set to 0 or to n² (a forger: only the range
        check catches it).
    public_key : PublicKey
        Needed by ``zero`` and ``n2``.

    Returns
    -------
    bytes
    """
    if mode == "truncate":
        return bytes(data[:-7])
    if mode == "flip":
        b = bytearray(data)
        b[len(b) // 2] ^= 0xFF
        return bytes(b)
    if mode in ("zero", "n2"):
        from hefl.paillier import CipherVector
        cv = CipherVector.from_bytes(data, public_key, validate=False)
        cv.ciphertexts[-1] = 0 if mode == "zero" else public_key.n2
        # to_bytes does not validate: a forger can send anything well-formed.
        return cv.to_bytes()
    raise ValueError(f"unknown garble mode {mode!r}")


def check_and_clip(vec, alpha, what):
    """Refuse a non-finite vector, then clip it to ``[-alpha, alpha]``.

    The check comes first so that nothing derived from a NaN or infinity is
    ever encoded or encrypted.

    Returns
    -------
    (numpy.ndarray, int)
        The clipped vector and how many values were clipped.

    Raises
    ------
    NonFiniteUpdateError
        ``vec`` holds NaN or infinity; ``what`` names it in the message.
    """
    bad = ~np.isfinite(vec)
    if bad.any():
        raise NonFiniteUpdateError(
            f"{what} holds {int(bad.sum())} non-finite value(s) "
            f"(first at index {int(np.flatnonzero(bad)[0])}); not encrypted")
    clipped = np.clip(vec, -alpha, alpha)
    return clipped, int(np.count_nonzero(clipped != vec))
