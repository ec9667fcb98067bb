"""Paillier encryption (g = n + 1) on vectors, through an Accelerator.

::

    from hefl.paillier import generate_keypair, Paillier, CipherVector
    pub, priv = generate_keypair(2048)    # with h_s: short-exponent (DJN) encryption
    he = Paillier(pub, priv)              # the aggregator: Paillier(pub)
    cv = he.encrypt([1, 2, 3], meta={"scheme": "..."})
    data = cv.to_bytes()                  # to the aggregator
    cv = CipherVector.from_bytes(data, pub)   # validated on receipt
    he.decrypt(he.aggregate([cv, cv]))    # [2, 4, 6]
    he.encrypt([4], method="textbook")    # Paillier's r^n, by name
"""

from hefl.paillier.djn import EncryptionTables, tables_for
from hefl.paillier.keys import MIN_KEY_BITS, PrivateKey, PublicKey, generate_keypair
from hefl.paillier.scheme import METHODS, Paillier, TextbookFallbackWarning
from hefl.paillier.serial import CipherVector, check_ciphertexts

__all__ = ["PublicKey", "PrivateKey", "generate_keypair", "Paillier", "CipherVector",
           "check_ciphertexts", "MIN_KEY_BITS", "METHODS", "TextbookFallbackWarning",
           "EncryptionTables", "tables_for"]
