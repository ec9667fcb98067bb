"""The key holder: decrypts the packed sum, unpacks it and forms the FedAvg mean.

Clients sent ``w_k u_k`` with ``w_k = n_k / N`` (see
:mod:`hefl.fedavg.client`); the decrypted, decoded sum over the
contributing set S is ``Σ_S w_k u_k`` up to the encoder's quantisation
error, and dividing by ``Σ_S w_k`` gives the sample-weighted mean over S.
A packed sum that carried into a neighbouring slot raises
:class:`~hefl.errors.PackingOverflowError` from the decoder; it is never
turned into a model update.
"""

import numpy as np

from hefl import paillier
from hefl.errors import EncodingError, PackingOverflowError

__all__ = ["KeyHolder"]


class KeyHolder:
    """Holder of the private key.

    Parameters
    ----------
    public_key, private_key :
        The federation's key pair.
    accel : hefl.accel.Accelerator
        Backend for the CRT decryption modexps.
    encoder : hefl.encoding.Encoder
        The federation's encoder.
    """

    def __init__(self, public_key, private_key, accel, encoder):
        self.he = paillier.Paillier(public_key, private_key, accel)
        self.encoder = encoder
        self.modulus = public_key.n

    def error_bound(self, summands, weight_sum):
        """Largest possible |HE mean − exact mean of the clipped updates| per entry.

        The encoder bounds the error of a decoded sum of ``summands``
        quantised values; the division by ``weight_sum`` scales it.
        """
        return float(self.encoder.quantisation_bound(summands)) / weight_sum

    def mean_update(self, cipher, length, summands, weight_sum):
        """Decrypt ``cipher`` and return the weighted mean update.

        Parameters
        ----------
        cipher : CipherVector
            The aggregated ciphertexts.
        length : int
            Number of model parameters packed into them.
        summands : int
            Number of client vectors multiplied into ``cipher``.
        weight_sum : float
            ``Σ_S w_k`` over the contributing clients (> 0).

        Raises
        ------
        PackingOverflowError
            The sum overflowed a slot (too many summands for the guard
            bits, or a client's plaintext out of the encoding's range).
        """
        if not weight_sum > 0:
            raise EncodingError(f"weight sum must be positive, not {weight_sum!r}")
        # The aggregate keeps the metadata all its inputs agreed on: the
        # encoding and length it carries must be the ones decoded with here.
        meta = getattr(cipher, "meta", None) or {}
        mine = self.encoder.params.to_dict()
        if "encoding" in meta and meta["encoding"] != mine:
            raise EncodingError(f"the aggregate was encoded with {meta['encoding']}, "
                                f"the key holder decodes with {mine}")
        if "length" in meta and meta["length"] != length:
            raise EncodingError(f"the aggregate carries {meta['length']} values, expected {length}")
        plaintexts = self.he.decrypt(cipher)
        try:
            total = self.encoder.decode(plaintexts, length, summands, modulus=self.modulus)
        except PackingOverflowError as e:
            raise PackingOverflowError(
                f"the decrypted sum of {summands} client vectors overflowed: {e}") from e
        return np.asarray(total, dtype=np.float64) / weight_sum
