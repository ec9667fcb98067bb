"""Job and result stream formats shared by ModExp and BatchEngine.

One job is a run of stream beats from ``first = 1`` to ``last = 1``; ``op``,
``tag`` and ``count`` are read on the first beat only::

    POWMOD   s words base, then ceil(count / w) words exponent   count = declared exponent bits
    MULMOD   s words a, then s words b                            count = 2
    PRODUCT  K × s words                                          count = K ≥ 1
    TABLE_PRODUCT  K × s words                                    count = K ≥ 1

Words are little-endian (word 0 first); every operand is below ``N``. A
result is ``s`` beats ``{data, tag, last}``, fully reduced (``< N``).
PRODUCT returns ``Π a_i mod N``; TABLE_PRODUCT returns
``Π a_i · R^-(K-1) mod N`` with ``K - 1`` MontMuls and no R² corrections:
the kernel sends one plain factor and ``K - 1`` Montgomery-form table
entries (``T·R mod N``), in any order, so the result is plain
(:data:`hefl.hw.regmap.LAYOUT`, "TABLE_PRODUCT").
"""

from amaranth.lib import data, enum, stream
from amaranth.lib.wiring import In, Out

from hefl.hw.regmap import LAYOUT

__all__ = ["CONST_SEL", "JobOp", "COUNT_BITS", "TAG_BITS", "INDEX_BITS", "job_layout",
           "result_layout", "engine_ports", "table_request_layout", "table_response_layout",
           "lane_bits"]

#: Width of the ``count`` field of a job's first beat: the job header's
#: (:data:`hefl.hw.regmap.LAYOUT`), so the kernel forwards it unchanged.
COUNT_BITS = LAYOUT.job_field("count").width
#: Default ``tag`` width of the streams: the job header's (the kernel's).
TAG_BITS = LAYOUT.job_field("tag").width
#: Width of a TABLE_PRODUCT entry index (the descriptor's).
INDEX_BITS = LAYOUT.table_index_bits
#: ``const_wr_sel`` of each batch constant: its index in ``LAYOUT.constants``,
#: the order the kernel streams them in (N, R² mod N, R mod N).
CONST_SEL = {name: i for i, name in enumerate(LAYOUT.constants)}


class JobOp(enum.Enum, shape=LAYOUT.job_field("op").width):
    """Job types of the batch engine (the ``op`` field of a job's first beat).

    Values and width are the job header's, :data:`hefl.hw.regmap.LAYOUT`
    (``ops``, ``job_fields``).
    """

    POWMOD = LAYOUT.op("powmod")
    MULMOD = LAYOUT.op("mulmod")
    PRODUCT = LAYOUT.op("product")
    TABLE_PRODUCT = LAYOUT.op("table_product")


def job_layout(word_bits, tag_bits):
    """Payload of one job beat for ``w``-bit words and ``tag_bits``-bit tags."""
    return data.StructLayout({
        "data": word_bits,
        "first": 1,
        "last": 1,
        "op": JobOp,
        "tag": tag_bits,
        "count": COUNT_BITS,
    })


def result_layout(word_bits, tag_bits):
    """Payload of one result beat: a word, the job's tag, last word marker."""
    return data.StructLayout({
        "data": word_bits,
        "tag": tag_bits,
        "last": 1,
    })


def lane_bits(lanes):
    """Width of a lane number among ``lanes`` lanes (at least 1)."""
    return max(1, (lanes - 1).bit_length())


def table_request_layout(lanes):
    """A lane's request for one table entry (a one-beat packet, ``last`` always 1)."""
    return data.StructLayout({"index": INDEX_BITS, "lane": lane_bits(lanes), "last": 1})


def table_response_layout(word_bits, lanes):
    """One word of a table entry on its way to the lane that asked (``s`` beats, ``last`` on the final)."""
    return data.StructLayout({"data": word_bits, "lane": lane_bits(lanes), "last": 1})


def engine_ports(word_bits, words, tag_bits):
    """The port signature shared by a ModExp lane and the BatchEngine.

    Both take the same constants and job stream and give the same result
    stream, so the engine is a drop-in for one lane (and vice versa).
    """
    return {
        "nprime": In(word_bits),
        "const_wr_en": In(1),
        "const_wr_sel": In(2),
        "const_wr_addr": In(range(words)),
        "const_wr_data": In(word_bits),
        "i_stream": In(stream.Signature(job_layout(word_bits, tag_bits))),
        "o_stream": Out(stream.Signature(result_layout(word_bits, tag_bits))),
        "idle": Out(1),
    }
