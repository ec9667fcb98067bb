// hefl simulated device: Verilator harness around the `hefl_kernel` RTL kernel.
//
// See harness.h for the API. Clocking scheme, one call of tick() per cycle:
//   1. with ap_clk low, drive every input the harness owns (memory slave
//      and AXI-Lite master) from its registered state, and eval() so the
//      kernel's combinational outputs settle;
//   2. sample every handshake (valid && ready) as the rising edge will see it;
//   3. raise ap_clk, eval() (the kernel's registers update), count the cycle;
//   4. update the harness state from the handshakes sampled in step 2.
// The harness outputs depend only on its own registered state, never
// combinationally on the kernel's outputs, so step 1 needs no fixed point.
// AXI rules kept by the memory: a VALID, once raised, stays high until its
// handshake (random stalls only delay raising it); READY may drop anytime.

#include "kernel_harness.h"

#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "Vhefl_kernel.h"
#include "verilated.h"

namespace {

// --- port access independent of the bus width ------------------------------
// Verilator maps ≤8/16/32/64-bit ports to integers and wider ones to VlWide.

template <typename T>
void port_load(T& port, const uint8_t* src, size_t n) {
    uint64_t v = 0;
    std::memcpy(&v, src, n < sizeof(v) ? n : sizeof(v));
    port = static_cast<T>(v);
}
template <std::size_t W>
void port_load(VlWide<W>& port, const uint8_t* src, size_t n) {
    std::memcpy(port.data(), src, n);
}
template <typename T>
void port_store(const T& port, uint8_t* dst, size_t n) {
    uint64_t v = static_cast<uint64_t>(port);
    std::memcpy(dst, &v, n < sizeof(v) ? n : sizeof(v));
}
template <std::size_t W>
void port_store(const VlWide<W>& port, uint8_t* dst, size_t n) {
    std::memcpy(dst, port.data(), n);
}

using Top = Vhefl_kernel;
constexpr size_t kBusBytes = sizeof(std::remove_reference_t<decltype(std::declval<Top&>().m_axi_gmem_rdata)>);
static_assert(kBusBytes >= 4 && (kBusBytes & (kBusBytes - 1)) == 0, "m_axi_gmem data width must be a power of two ≥ 32 bits");
static_assert(sizeof(std::remove_reference_t<decltype(std::declval<Top&>().m_axi_gmem_wstrb)>) <= 8,
              "wstrb wider than 64 bits (data width > 512) is not supported");

constexpr uint64_t kPage = 4096;
constexpr uint64_t kBase = 0x10000000ULL;  // nonzero: a null pointer never hits a buffer
constexpr size_t kQueueDepth = 4;           // outstanding bursts accepted per direction

struct Burst {
    uint64_t start = 0;   // address of the first beat
    uint32_t beats = 0;   // AxLEN + 1
    uint32_t done = 0;    // beats transferred so far
    uint32_t size = 0;    // bytes per beat, 1 << AxSIZE
    uint8_t kind = 1;     // AxBURST: 0 FIXED, 1 INCR, 2 WRAP (unsupported)
    uint32_t id = 0;      // AxID, echoed on R / B
    bool err = false;     // answer SLVERR for the whole burst

    uint64_t beat_addr(uint32_t i) const {
        if (kind == 0 || i == 0) return start;
        return (start & ~uint64_t(size - 1)) + uint64_t(i) * size;
    }
};

struct Buffer {
    uint64_t size;              // bytes the host asked for (bounds for the kernel)
    std::vector<uint8_t> data;  // padded to whole pages
};

}  // namespace

struct hs_device {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Top> top;
    uint64_t cycles = 0;
    uint64_t rng;
    uint32_t stall_percent = 0;

    // Memory.
    std::map<uint64_t, Buffer> bufs;
    uint64_t next_addr = kBase;

    // Slave state (m_axi_gmem).
    std::deque<Burst> rq, wq;
    std::deque<std::pair<uint8_t, uint32_t>> bq;  // write responses (resp, id) for the B channel
    bool rvalid = false, bvalid = false;
    bool rbeat_ok = true;  // the beat on R this cycle came from a buffer
    bool in_reset = false;

    // Faults.
    bool hang = false;
    bool corrupt_armed = false;
    uint64_t corrupt_lo = 0, corrupt_hi = 0;
    uint32_t corrupt_bit = 0;

    // Statistics.
    uint64_t read_beats = 0, write_beats = 0, protocol_errors = 0;
    std::string first_error;

    // AXI-Lite master state.
    bool l_awvalid = false, l_wvalid = false, l_bready = false;
    bool l_arvalid = false, l_rready = false;
    uint32_t l_addr = 0, l_wdata = 0;
    bool l_done = false;
    int l_resp = 0;
    uint32_t l_rdata = 0;

    explicit hs_device(uint64_t seed) : ctx(new VerilatedContext), rng(seed * 2654435761ULL + 0x9E3779B97F4A7C15ULL) {
        ctx->debug(0);
        ctx->randReset(0);
        top.reset(new Top{ctx.get(), "hefl_kernel"});
        if (!rng) rng = 1;
    }
    ~hs_device() { top->final(); }

    // xorshift64*: cheap, deterministic per seed.
    uint32_t rand32() {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        return uint32_t((rng * 2685821657736338717ULL) >> 32);
    }
    bool stall() { return stall_percent && (rand32() % 100) < stall_percent; }

    void error(const std::string& what) {
        ++protocol_errors;
        if (first_error.empty()) first_error = what + " (cycle " + std::to_string(cycles) + ")";
    }

    // The buffer holding [addr, addr + n), or nullptr.
    Buffer* find(uint64_t addr, uint64_t n, uint64_t* base) {
        auto it = bufs.upper_bound(addr);
        if (it == bufs.begin()) return nullptr;
        --it;
        if (addr + n < addr || addr + n > it->first + it->second.size) return nullptr;
        *base = it->first;
        return &it->second;
    }

    Burst accept(uint64_t addr, uint32_t len, uint32_t size_log2, uint32_t kind, uint32_t id,
                 const char* ch) {
        Burst b;
        b.id = id;
        b.start = addr;
        b.beats = len + 1;
        b.size = 1u << size_log2;
        b.kind = uint8_t(kind);
        if (b.size > kBusBytes) {
            error(std::string(ch) + " burst size larger than the bus");
            b.err = true;
            b.size = kBusBytes;
        }
        if (kind > 1) {
            error(std::string(ch) + " WRAP/reserved burst type is not supported");
            b.err = true;
        }
        uint64_t last = b.beat_addr(b.beats - 1) + b.size - 1;
        if (kind == 1 && (addr / kPage) != (last / kPage)) error(std::string(ch) + " burst crosses a 4 KiB boundary");
        return b;
    }

    // Bytes of one beat's bus word from memory (zeros outside a buffer).
    bool fill_read(const Burst& b, uint8_t* word) {
        uint64_t a = b.beat_addr(b.done);
        uint64_t lo = a & ~uint64_t(kBusBytes - 1);
        uint64_t base;
        std::memset(word, 0, kBusBytes);
        uint64_t n = ((a & ~uint64_t(b.size - 1)) + b.size) - a;
        Buffer* buf = find(a, n, &base);
        if (!buf || b.err) return false;
        // Buffers are page-padded, so the whole aligned bus word is in storage.
        std::memcpy(word, buf->data.data() + (lo - base), kBusBytes);
        return true;
    }

    void drive() {
        Top& t = *top;
        bool live = !in_reset && !hang;
        // Read address / data.
        t.m_axi_gmem_arready = live && rq.size() < kQueueDepth && !stall();
        if (!rvalid && live && !rq.empty() && !stall()) rvalid = true;
        t.m_axi_gmem_rvalid = rvalid && !hang;
        if (rvalid) {
            const Burst& b = rq.front();
            uint8_t word[kBusBytes];
            bool ok = fill_read(b, word);
            rbeat_ok = ok;
            port_load(t.m_axi_gmem_rdata, word, kBusBytes);
            t.m_axi_gmem_rresp = ok ? 0 : 2;
            t.m_axi_gmem_rlast = (b.done + 1 == b.beats);
            t.m_axi_gmem_rid = b.id;
        } else {
            t.m_axi_gmem_rlast = 0;
            t.m_axi_gmem_rresp = 0;
        }
        // Write address / data / response.
        t.m_axi_gmem_awready = live && wq.size() < kQueueDepth && !stall();
        t.m_axi_gmem_wready = live && !wq.empty() && !stall();
        if (!bvalid && live && !bq.empty() && !stall()) bvalid = true;
        t.m_axi_gmem_bvalid = bvalid && !hang;
        t.m_axi_gmem_bresp = bvalid ? bq.front().first : 0;
        t.m_axi_gmem_bid = bvalid ? bq.front().second : 0;
        // AXI-Lite master.
        t.s_axi_control_awvalid = l_awvalid;
        t.s_axi_control_awaddr = l_addr;
        t.s_axi_control_wvalid = l_wvalid;
        t.s_axi_control_wdata = l_wdata;
        t.s_axi_control_wstrb = 0xF;
        t.s_axi_control_bready = l_bready;
        t.s_axi_control_arvalid = l_arvalid;
        t.s_axi_control_araddr = l_addr;
        t.s_axi_control_rready = l_rready;
    }

    void write_beat(uint64_t strb, const uint8_t* word) {
        Burst& b = wq.front();
        uint64_t a = b.beat_addr(b.done);
        uint64_t lo = a & ~uint64_t(kBusBytes - 1);
        uint64_t base;
        uint64_t n = ((a & ~uint64_t(b.size - 1)) + b.size) - a;
        Buffer* buf = find(a, n, &base);
        if (!buf) {
            if (!b.err) error("write outside every buffer at 0x" + to_hex(a));
            b.err = true;
        } else if (!b.err) {
            uint8_t w[kBusBytes];
            std::memcpy(w, word, kBusBytes);
            if (corrupt_armed && a >= corrupt_lo && a < corrupt_hi) {
                uint32_t bit = corrupt_bit + 8 * uint32_t(a - lo);
                w[(bit / 8) % kBusBytes] ^= uint8_t(1u << (bit % 8));
                corrupt_armed = false;
            }
            // Only the lanes of this beat's own bytes that the master strobes.
            for (size_t j = 0; j < kBusBytes; ++j) {
                uint64_t ba = lo + j;
                if ((strb >> j) & 1) {
                    if (ba < a || ba >= a + n) {
                        error("write strobe outside the beat's bytes at 0x" + to_hex(ba));
                        continue;
                    }
                    buf->data[ba - base] = w[j];
                }
            }
        }
        ++write_beats;
    }

    static std::string to_hex(uint64_t v) {
        char s[24];
        std::snprintf(s, sizeof s, "%llx", (unsigned long long)v);
        return s;
    }

    void tick() {
        Top& t = *top;
        drive();
        t.ap_clk = 0;
        t.eval();
        // Sample the handshakes the rising edge sees.
        bool ar = t.m_axi_gmem_arvalid && t.m_axi_gmem_arready;
        bool r = t.m_axi_gmem_rvalid && t.m_axi_gmem_rready;
        bool aw = t.m_axi_gmem_awvalid && t.m_axi_gmem_awready;
        bool w = t.m_axi_gmem_wvalid && t.m_axi_gmem_wready;
        bool b = t.m_axi_gmem_bvalid && t.m_axi_gmem_bready;
        Burst arb, awb;
        if (ar) arb = accept(t.m_axi_gmem_araddr, t.m_axi_gmem_arlen, t.m_axi_gmem_arsize, t.m_axi_gmem_arburst,
                             t.m_axi_gmem_arid, "read");
        if (aw) awb = accept(t.m_axi_gmem_awaddr, t.m_axi_gmem_awlen, t.m_axi_gmem_awsize, t.m_axi_gmem_awburst,
                             t.m_axi_gmem_awid, "write");
        uint8_t wword[kBusBytes];
        uint64_t wstrb = 0;
        bool wlast = false;
        if (w) {
            port_store(t.m_axi_gmem_wdata, wword, kBusBytes);
            wstrb = uint64_t(t.m_axi_gmem_wstrb);
            wlast = t.m_axi_gmem_wlast;
        }
        bool l_aw = t.s_axi_control_awvalid && t.s_axi_control_awready;
        bool l_w = t.s_axi_control_wvalid && t.s_axi_control_wready;
        bool l_b = t.s_axi_control_bvalid && t.s_axi_control_bready;
        bool l_ar = t.s_axi_control_arvalid && t.s_axi_control_arready;
        bool l_r = t.s_axi_control_rvalid && t.s_axi_control_rready;
        int l_bresp = t.s_axi_control_bresp, l_rresp = t.s_axi_control_rresp;
        uint32_t l_rd = t.s_axi_control_rdata;

        t.ap_clk = 1;
        t.eval();
        ++cycles;
        if (in_reset) return;

        if (ar) rq.push_back(arb);
        if (r) {
            ++read_beats;
            Burst& rb = rq.front();
            if (!rbeat_ok && !rb.err) error("read outside every buffer at 0x" + to_hex(rb.beat_addr(rb.done)));
            if (++rb.done == rb.beats) rq.pop_front();
            rvalid = false;
        }
        if (aw) wq.push_back(awb);
        if (w) {
            write_beat(wstrb, wword);
            Burst& wb = wq.front();
            bool last = ++wb.done == wb.beats;
            if (wlast != last) error("WLAST does not match AWLEN");
            if (last) {
                bq.emplace_back(uint8_t(wb.err ? 2 : 0), wb.id);
                wq.pop_front();
            }
        }
        if (b) {
            bq.pop_front();
            bvalid = false;
        }
        if (l_aw) l_awvalid = false;
        if (l_w) l_wvalid = false;
        if (l_b) {
            l_bready = false;
            l_resp = l_bresp;
            l_done = true;
        }
        if (l_ar) {
            l_arvalid = false;
            l_rready = true;
        }
        if (l_r) {
            l_rready = false;
            l_resp = l_rresp;
            l_rdata = l_rd;
            l_done = true;
        }
    }

    void clear_bus() {
        rq.clear();
        wq.clear();
        bq.clear();
        rvalid = bvalid = false;
        l_awvalid = l_wvalid = l_bready = l_arvalid = l_rready = false;
    }

    // Run an AXI-Lite transaction already set up in the l_* state.
    int lite_finish(uint64_t max_cycles) {
        l_done = false;
        for (uint64_t i = 0; i < max_cycles && !l_done; ++i) tick();
        if (!l_done) {
            // Abandon the transaction so the next one starts clean.
            l_awvalid = l_wvalid = l_bready = l_arvalid = l_rready = false;
            return -1;
        }
        return l_resp;
    }
};

extern "C" {

int hs_api_version(void) { return HS_API_VERSION; }

hs_device* hs_create(uint64_t seed) {
    try {
        hs_device* d = new hs_device(seed);
        hs_reset(d, 16);
        return d;
    } catch (...) {
        return nullptr;
    }
}

void hs_destroy(hs_device* d) { delete d; }

int hs_gmem_data_bits(const hs_device*) { return int(kBusBytes * 8); }

void hs_reset(hs_device* d, uint32_t cycles) {
    d->clear_bus();
    d->in_reset = true;
    d->top->ap_rst_n = 0;
    for (uint32_t i = 0; i < cycles; ++i) d->tick();
    d->top->ap_rst_n = 1;
    d->in_reset = false;
    d->tick();
}

uint64_t hs_alloc(hs_device* d, uint64_t size) {
    if (size == 0) return 0;
    uint64_t padded = (size + kPage - 1) / kPage * kPage;
    uint64_t addr = d->next_addr;
    if (addr + padded < addr) return 0;
    Buffer b;
    b.size = size;
    try {
        b.data.assign(padded, 0);
    } catch (...) {
        return 0;
    }
    d->bufs.emplace(addr, std::move(b));
    // A guard page between buffers: an overrun hits no buffer and is reported.
    d->next_addr = addr + padded + kPage;
    return addr;
}

int hs_free(hs_device* d, uint64_t addr) {
    auto it = d->bufs.find(addr);
    if (it == d->bufs.end()) return -1;
    d->bufs.erase(it);
    return 0;
}

int hs_write(hs_device* d, uint64_t addr, const uint8_t* src, uint64_t n) {
    uint64_t base;
    Buffer* b = d->find(addr, n, &base);
    if (!b) return -1;
    std::memcpy(b->data.data() + (addr - base), src, n);
    return 0;
}

int hs_read(hs_device* d, uint64_t addr, uint8_t* dst, uint64_t n) {
    uint64_t base;
    Buffer* b = d->find(addr, n, &base);
    if (!b) return -1;
    std::memcpy(dst, b->data.data() + (addr - base), n);
    return 0;
}

int hs_reg_write(hs_device* d, uint32_t addr, uint32_t value, uint64_t max_cycles) {
    d->l_addr = addr;
    d->l_wdata = value;
    d->l_awvalid = d->l_wvalid = d->l_bready = true;
    return d->lite_finish(max_cycles);
}

int hs_reg_read(hs_device* d, uint32_t addr, uint32_t* value, uint64_t max_cycles) {
    d->l_addr = addr;
    d->l_arvalid = true;
    int rc = d->lite_finish(max_cycles);
    if (rc >= 0 && value) *value = d->l_rdata;
    return rc;
}

int hs_run_until(hs_device* d, uint64_t max_cycles, int64_t poll_addr, uint32_t poll_mask,
                 uint32_t poll_interval, uint32_t* last_value) {
    if (poll_interval == 0) poll_interval = 1;
    uint64_t end = d->cycles + max_cycles;
    if (poll_addr < 0) {
        while (d->cycles < end) {
            if (d->top->__SYM__interrupt) return 1;
            d->tick();
        }
        return d->top->__SYM__interrupt ? 1 : 0;
    }
    while (d->cycles < end) {
        for (uint32_t i = 0; i < poll_interval && d->cycles < end; ++i) d->tick();
        uint32_t v = 0;
        int rc = hs_reg_read(d, uint32_t(poll_addr), &v, 1000);
        if (rc < 0) return -1;
        if (last_value) *last_value = v;
        if (v & poll_mask) return 1;
    }
    return 0;
}

void hs_step(hs_device* d, uint64_t cycles) {
    for (uint64_t i = 0; i < cycles; ++i) d->tick();
}

uint64_t hs_cycles(const hs_device* d) { return d->cycles; }

void hs_set_stall_percent(hs_device* d, uint32_t percent) { d->stall_percent = percent > 95 ? 95 : percent; }

void hs_fault_hang(hs_device* d, int on) { d->hang = on != 0; }

void hs_fault_corrupt(hs_device* d, uint64_t lo, uint64_t hi, uint32_t bit) {
    d->corrupt_lo = lo;
    d->corrupt_hi = hi;
    d->corrupt_bit = bit;
    d->corrupt_armed = lo < hi;
}

int hs_fault_corrupt_pending(const hs_device* d) { return d->corrupt_armed ? 1 : 0; }

uint64_t hs_read_beats(const hs_device* d) { return d->read_beats; }
uint64_t hs_write_beats(const hs_device* d) { return d->write_beats; }
uint64_t hs_protocol_errors(const hs_device* d) { return d->protocol_errors; }
const char* hs_last_error(const hs_device* d) { return d->first_error.c_str(); }

}  // extern "C"
