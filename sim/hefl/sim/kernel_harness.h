// hefl simulated device: the C API of the Verilator harness around `hefl_kernel`.
//
// One handle = one simulated card: the Verilated kernel, its clock and
// reset, an AXI4 slave memory model answering the kernel's `m_axi_gmem`
// master, and an AXI4-Lite master the host uses to reach `s_axi_control`.
// Every call that needs simulated time clocks the model itself, in C++, so
// Python never pays one call per cycle.
//
// Memory model: the host allocates buffers (device addresses in one flat
// 64-bit space, 4 KiB aligned), writes and reads them by address. Accesses
// of the kernel outside every buffer answer SLVERR and are counted as
// protocol errors, as are bursts crossing a 4 KiB boundary (AXI forbids it).
//
// Register offsets and bit masks are never known here: the host passes them
// (they come from hefl.hw.regmap), so the harness stays a plain bus model.
//
// Note: Verilator renames the C++-reserved-looking port `interrupt` to
// `__SYM__interrupt` in the model class.
//
// Fault switches, for the host's error paths:
//   * hang    — the memory stops answering (every ready/valid low), so the
//               kernel never finishes and the host must time out;
//   * corrupt — flip one bit of the next write beat landing in an address
//               window (the host names the result area), so spot-checks
//               must catch it.

#ifndef HEFL_SIM_HARNESS_H
#define HEFL_SIM_HARNESS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hs_device hs_device;

// Version of this C API; the Python side refuses a library of another version.
#define HS_API_VERSION 1

int hs_api_version(void);

// Create a device; `seed` drives the random ready/valid delays.
hs_device* hs_create(uint64_t seed);
void hs_destroy(hs_device* d);

// Data width of the m_axi_gmem bus in bits, and address width of s_axi_control.
int hs_gmem_data_bits(const hs_device* d);

// Hold ap_rst_n low for `cycles` cycles, then release it (memory is kept).
void hs_reset(hs_device* d, uint32_t cycles);

// Buffers. hs_alloc returns the device address, or 0 when `size` is 0 or
// the address space is exhausted. hs_free returns 0, or -1 for an address
// that is not the start of a live buffer.
uint64_t hs_alloc(hs_device* d, uint64_t size);
int hs_free(hs_device* d, uint64_t addr);
// Host copies into/out of device memory; -1 if [addr, addr+n) is not inside one buffer.
int hs_write(hs_device* d, uint64_t addr, const uint8_t* src, uint64_t n);
int hs_read(hs_device* d, uint64_t addr, uint8_t* dst, uint64_t n);

// AXI4-Lite access. Return 0 on OKAY, the nonzero RESP code on an error
// response, or -1 when the kernel did not answer within `max_cycles`.
int hs_reg_write(hs_device* d, uint32_t addr, uint32_t value, uint64_t max_cycles);
int hs_reg_read(hs_device* d, uint32_t addr, uint32_t* value, uint64_t max_cycles);

// Clock for at most `max_cycles` cycles, stopping early when done:
//   poll_addr >= 0: every `poll_interval` cycles read register `poll_addr`
//                   over AXI-Lite; done when (value & poll_mask) != 0.
//   poll_addr <  0: done when the `interrupt` output is high.
// Returns 1 if done (the last value read goes to *last_value when polling),
// 0 if the budget ran out, -1 if a register read itself did not complete.
int hs_run_until(hs_device* d, uint64_t max_cycles, int64_t poll_addr,
                 uint32_t poll_mask, uint32_t poll_interval, uint32_t* last_value);
// Clock exactly `cycles` cycles.
void hs_step(hs_device* d, uint64_t cycles);

// Cycles clocked since hs_create.
uint64_t hs_cycles(const hs_device* d);

// Random stalls: each cycle, every ready/valid the memory drives is held low
// with probability `percent`/100 (0 disables). Deterministic per seed.
void hs_set_stall_percent(hs_device* d, uint32_t percent);

// Fault switches (see above). hs_fault_corrupt arms a one-shot flip of bit
// `bit` (of the bus word) in the next write beat whose address lies in
// [lo, hi); hs_fault_corrupt_pending tells whether it is still armed.
void hs_fault_hang(hs_device* d, int on);
void hs_fault_corrupt(hs_device* d, uint64_t lo, uint64_t hi, uint32_t bit);
int hs_fault_corrupt_pending(const hs_device* d);

// Bus statistics and errors seen on m_axi_gmem.
uint64_t hs_read_beats(const hs_device* d);
uint64_t hs_write_beats(const hs_device* d);
uint64_t hs_protocol_errors(const hs_device* d);
// The first protocol error as text ("" if none); valid until hs_destroy.
const char* hs_last_error(const hs_device* d);

#ifdef __cplusplus
}
#endif

#endif  // HEFL_SIM_HARNESS_H
