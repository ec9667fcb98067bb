"""FedAvg with homomorphic aggregation: the ``hefl demo`` (``make demo``).

Parties and what they hold:

============  ==========================  ===================================
party         holds                       does
============  ==========================  ===================================
client k      its data shard, key pair    trains, clips, encodes, encrypts
aggregator    public key only             validates uploads, multiplies them
key holder    private key                 decrypts the sum, averages
============  ==========================  ===================================

Modules, one component each: :mod:`~hefl.fedavg.data` (scikit-learn
datasets split non-IID), :mod:`~hefl.fedavg.model` (numpy softmax
regression and MLP on a flat parameter vector), :mod:`~hefl.fedavg.client`,
:mod:`~hefl.fedavg.aggregator`, :mod:`~hefl.fedavg.keyholder`,
:mod:`~hefl.fedavg.loop` (the rounds, with plaintext FedAvg beside them),
:mod:`~hefl.fedavg.report` (``report.json``, ``accuracy.png``) and
:mod:`~hefl.fedavg.cli` (``hefl demo``).

Weighting: each client sends ``(n_k / N)·Δ_k``; the key holder divides the
decrypted sum by ``Σ n_k / N`` over the clients that contributed, which is
the FedAvg mean over them whatever drops out (see
:mod:`hefl.fedavg.client`). Ciphertexts travel as bytes
(``CipherVector.to_bytes``), never pickled.
"""

__all__ = []
