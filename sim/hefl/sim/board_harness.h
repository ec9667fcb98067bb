// hefl board model: the C API of the Verilator harness around `hefl_board`
// (hw/ecp5_top.py BoardCore built with phy="bytes").
//
// The board's UART is replaced by its byte-stream port, so the harness moves
// whole bytes (one per handshake) instead of bit-timing a serial line; the
// link, the kernel and the block-RAM memory are the real RTL. The Python side
// (hefl.sim.board_model.BoardModelPort) wraps this as a pyserial-like port, so
// the serial transport runs unchanged on top of it.
//
// Built by hefl.sim.kernel_model.build_sim_library (HEFL_SIM_HARNESS points
// at this directory; the Verilated class is named Vhefl_kernel there).

#ifndef HEFL_BOARD_HARNESS_H
#define HEFL_BOARD_HARNESS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bb_device bb_device;

#define BB_API_VERSION 1

int bb_api_version(void);

// Create a board model; `seed` drives the random gaps between request bytes
// and the random back-pressure on reply bytes (`stall_percent`, 0 = none).
bb_device* bb_create(uint64_t seed, uint32_t stall_percent);
void bb_destroy(bb_device* d);

// Hold rst high for `cycles` cycles (memory contents are kept).
void bb_reset(bb_device* d, uint32_t cycles);

// Queue `n` bytes for the board's receive port; they enter one per cycle
// (minus random stalls) while the model is clocked.
void bb_send(bb_device* d, const uint8_t* data, uint32_t n);

// Clock until at least `want` reply bytes are buffered, or `max_cycles`
// have passed; then move up to `cap` buffered reply bytes to `dst`.
// Returns the number of bytes moved.
uint32_t bb_run(bb_device* d, uint64_t max_cycles, uint32_t want, uint8_t* dst, uint32_t cap);

// Request bytes still queued (not yet taken by the board).
uint32_t bb_pending(const bb_device* d);

// Cycles clocked since bb_create; the LED outputs.
uint64_t bb_cycles(const bb_device* d);
uint32_t bb_leds(const bb_device* d);

#ifdef __cplusplus
}
#endif

#endif
