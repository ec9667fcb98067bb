"""Amaranth-simulator drivers shared by the ModExp and BatchEngine unit tests."""

from hefl.golden.batch import constant_writes


async def load_constants(ctx, dut, consts):
    """Write N', then N, R² mod N and R mod N through the constant port."""
    ctx.set(dut.nprime, consts.nprime)
    for sel, addr, word in constant_writes(consts):
        ctx.set(dut.const_wr_en, 1)
        ctx.set(dut.const_wr_sel, sel)
        ctx.set(dut.const_wr_addr, addr)
        ctx.set(dut.const_wr_data, word)
        await ctx.tick()
    ctx.set(dut.const_wr_en, 0)
