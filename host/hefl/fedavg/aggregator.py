"""The aggregator: validates the clients' ciphertexts and multiplies them.

It holds only the public key, so it learns nothing about any update; its
job is the ``product`` of each packed slot's ciphertexts (Paillier
addition), run on the accelerator. :meth:`Aggregator.receive` is where an
upload is checked, once: ``CipherVector.from_bytes`` parses and validates it
(format, ``0 < c < n²``, ``gcd(c, n) = 1``, key fingerprint), then its
metadata is checked against what this round expects (encoder parameters,
vector length, round, sender). The product of the validated vectors
(:meth:`Aggregator.combine`) checks nothing again. A client whose data fails
any check is excluded from the round with its reason logged; the round goes
on with the others.
"""

import logging
from dataclasses import dataclass, field

from hefl import paillier
from hefl.errors import CiphertextError, MetadataMismatchError, SerializationError

# MetadataMismatchError is defined in hefl.errors with every other error; re-exported here.
__all__ = ["Aggregator", "Aggregate", "MetadataMismatchError"]

log = logging.getLogger("hefl.fedavg")


@dataclass
class Aggregate:
    """Result of one round's aggregation.

    Attributes
    ----------
    cipher : CipherVector or None
        Encrypted packed sum over ``included`` (None if nobody was left).
    included : list of int
        Clients whose ciphertexts went into the sum.
    excluded : dict
        Client id -> reason, for clients whose data was rejected.
    """

    cipher: object
    included: list
    excluded: dict = field(default_factory=dict)


class Aggregator:
    """Key-less aggregation of serialised ciphertext vectors.

    Parameters
    ----------
    public_key : hefl.paillier.PublicKey
        The federation's public key (the aggregator has no private key).
    accel : hefl.accel.Accelerator
        Backend running the ciphertext products.
    expected_meta : dict
        Metadata every vector of the run must carry unchanged (encoder
        parameters, vector length).
    expected_count : int, optional
        Ciphertexts per vector; every vector must have exactly this many
        (a short or long one would otherwise break the product of them all).
    """

    def __init__(self, public_key, accel, expected_meta, expected_count=None):
        self.public_key = public_key
        self.he = paillier.Paillier(public_key, None, accel)
        self.expected_meta = dict(expected_meta)
        self.expected_count = expected_count

    def receive(self, cid, data, round_):
        """Parse and validate client ``cid``'s upload for round ``round_``.

        Returns
        -------
        CipherVector

        Raises
        ------
        CiphertextError, SerializationError
            The upload must not be used; the message says why.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise SerializationError(f"expected bytes, got {type(data).__name__}")
        # Format, key and every value (0 < c < n², gcd(c, n) = 1), once:
        # the vector comes back marked validated, and combine() trusts it.
        cv = paillier.CipherVector.from_bytes(bytes(data), self.public_key)
        meta = cv.meta or {}
        for key, want in self.expected_meta.items():
            if meta.get(key) != want:
                raise MetadataMismatchError(
                    f"metadata {key!r} is {meta.get(key)!r}, this run expects {want!r}")
        if meta.get("round") != round_:
            raise MetadataMismatchError(f"vector is for round {meta.get('round')!r}, not {round_}")
        if meta.get("client") != cid:
            raise MetadataMismatchError(f"vector claims client {meta.get('client')!r}, sent by {cid}")
        if self.expected_count is not None and len(cv) != self.expected_count:
            raise MetadataMismatchError(
                f"vector holds {len(cv)} ciphertexts, this run's vectors hold {self.expected_count}")
        return cv

    def aggregate(self, uploads, round_):
        """Validate every upload and multiply the valid ones.

        Parameters
        ----------
        uploads : dict
            Client id -> bytes.
        round_ : int
            Current round (checked against the metadata).

        Returns
        -------
        Aggregate
        """
        good, excluded = {}, {}
        for cid, data in uploads.items():
            try:
                good[cid] = self.receive(cid, data, round_)
            except (CiphertextError, SerializationError) as e:
                reason = f"{type(e).__name__}: {e}"
                excluded[cid] = reason
                log.warning("round %d: client %d excluded by the aggregator: %s", round_, cid, reason)
        if not good:
            return Aggregate(None, [], excluded)
        included = sorted(good)
        return Aggregate(self.combine([good[c] for c in included]), included, excluded)

    def combine(self, vectors):
        """The encrypted sum of received vectors: one ``product`` job per slot.

        Parameters
        ----------
        vectors : list of CipherVector
            Vectors :meth:`receive` accepted (their values are not checked again).

        Returns
        -------
        CipherVector
        """
        return self.he.aggregate(vectors)
