// hefl board model: Verilator harness around `hefl_board` (see harness.h).
//
// Clocking, one tick() per cycle, as in kernel_harness.cpp:
//   1. clk low: drive rx_valid/rx_data and tx_ready from the
//      harness's registered state; eval();
//   2. sample both handshakes as the rising edge will see them;
//   3. clk high; eval();
//   4. update the state from the sampled handshakes.
// A VALID, once raised, stays high with the same byte until its handshake.

#include "board_harness.h"

#include <cstdint>
#include <deque>
#include <memory>

#include "Vhefl_kernel.h"
#include "verilated.h"

using Top = Vhefl_kernel;

struct bb_device {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Top> top;
    uint64_t cycles = 0;
    uint64_t rng;
    uint32_t stall_percent;
    std::deque<uint8_t> to_board, from_board;
    bool rx_valid = false;
    uint8_t rx_data = 0;

    bb_device(uint64_t seed, uint32_t stall)
        : ctx(new VerilatedContext), rng(seed * 0x9E3779B97F4A7C15ULL + 1), stall_percent(stall) {
        top.reset(new Top(ctx.get()));
        top->clk = 0;
        top->rst = 0;
        top->rx_valid = 0;
        top->tx_ready = 0;
        top->eval();
    }

    uint32_t rand_pct() {
        // xorshift64*: deterministic per seed.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        return uint32_t((rng * 0x2545F4914F6CDD1DULL) >> 32) % 100;
    }

    void tick() {
        if (!rx_valid && !to_board.empty() && rand_pct() >= stall_percent) {
            rx_valid = true;
            rx_data = to_board.front();
            to_board.pop_front();
        }
        bool tx_ready = rand_pct() >= stall_percent;
        top->clk = 0;
        top->rx_valid = rx_valid;
        top->rx_data = rx_data;
        top->tx_ready = tx_ready;
        top->eval();
        bool rx_fire = rx_valid && top->rx_ready;
        bool tx_fire = tx_ready && top->tx_valid;
        uint8_t tx_byte = top->tx_data;
        top->clk = 1;
        top->eval();
        ++cycles;
        if (rx_fire) rx_valid = false;
        if (tx_fire) from_board.push_back(tx_byte);
    }
};

extern "C" {

int bb_api_version(void) { return BB_API_VERSION; }

bb_device* bb_create(uint64_t seed, uint32_t stall_percent) {
    try {
        bb_device* d = new bb_device(seed, stall_percent > 90 ? 90 : stall_percent);
        bb_reset(d, 8);
        return d;
    } catch (...) {
        return nullptr;
    }
}

void bb_destroy(bb_device* d) { delete d; }

void bb_reset(bb_device* d, uint32_t cycles) {
    d->top->rst = 1;
    for (uint32_t i = 0; i < cycles; ++i) d->tick();
    d->top->rst = 0;
    d->tick();
}

void bb_send(bb_device* d, const uint8_t* data, uint32_t n) {
    d->to_board.insert(d->to_board.end(), data, data + n);
}

uint32_t bb_run(bb_device* d, uint64_t max_cycles, uint32_t want, uint8_t* dst, uint32_t cap) {
    for (uint64_t i = 0; i < max_cycles && d->from_board.size() < want; ++i) d->tick();
    uint32_t n = 0;
    while (n < cap && !d->from_board.empty()) {
        dst[n++] = d->from_board.front();
        d->from_board.pop_front();
    }
    return n;
}

uint32_t bb_pending(const bb_device* d) { return uint32_t(d->to_board.size()) + (d->rx_valid ? 1 : 0); }

uint64_t bb_cycles(const bb_device* d) { return d->cycles; }

uint32_t bb_leds(const bb_device* d) { return d->top->leds; }

}  // extern "C"
