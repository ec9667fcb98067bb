// Verilator C++ harness for the BatchEngine: jobs one at a time, clocked in C++.
//
// Built and driven by sim/hefl/sim/engine_model.py. Commands on stdin, one per
// line, numbers in hex:
//   nprime <hex>                   set N' (held)
//   const <sel> <addr> <hex>       one constant word (one clock cycle, const_wr_en = 1)
//   job <nbeats> <hex> ...         feed the beats (valid every cycle), then wait for the
//                                  result; prints "first <cycle>" then "out <cycle> <hex>"
//                                  per result beat, then "end"
//   quit
// argv[1]: bit index of `last` in the result payload; argv[2]: cycle limit per job.
// (Verilator escapes the double underscore of Amaranth port names as ___05F.)
// Cycle = number of rising edges before the edge at which a handshake happens; the
// payloads travel as hex strings so any port width works.
#include "Vtop.h"
#include "verilated.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

using Bits = std::vector<uint32_t>;

static Bits parse_hex(const std::string& s) {
    Bits v;
    int n = (int)s.size();
    for (int end = n; end > 0; end -= 8) {
        int start = end - 8 < 0 ? 0 : end - 8;
        v.push_back((uint32_t)std::stoul(s.substr(start, end - start), nullptr, 16));
    }
    return v;
}

static std::string to_hex(const Bits& v) {
    std::string s;
    char buf[16];
    for (int i = (int)v.size() - 1; i >= 0; --i) {
        std::snprintf(buf, sizeof buf, "%08x", v[i]);
        s += buf;
    }
    return s;
}

static uint32_t word(const Bits& v, size_t i) { return i < v.size() ? v[i] : 0; }

template <typename T>
static void put(T& dst, const Bits& v) {
    if constexpr (std::is_integral_v<T>) {
        dst = (T)((uint64_t)word(v, 0) | ((uint64_t)word(v, 1) << 32));
    } else {
        for (size_t i = 0; i < sizeof(dst) / 4; ++i) dst[i] = word(v, i);
    }
}

template <typename T>
static Bits get(const T& src) {
    if constexpr (std::is_integral_v<T>) {
        uint64_t x = (uint64_t)src;
        return Bits{(uint32_t)x, (uint32_t)(x >> 32)};
    } else {
        Bits v(sizeof(src) / 4);
        for (size_t i = 0; i < v.size(); ++i) v[i] = src[i];
        return v;
    }
}

static bool bit(const Bits& v, int i) { return (word(v, i / 32) >> (i % 32)) & 1; }

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s <last bit> <cycle limit>\n", argv[0]);
        return 2;
    }
    const int last_bit = std::atoi(argv[1]);
    const uint64_t limit = std::strtoull(argv[2], nullptr, 10);
    auto* ctx = new VerilatedContext;
    auto* top = new Vtop{ctx};
    uint64_t cycle = 0;
    auto tick = [&]() {
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
        ++cycle;
    };
    top->clk = 0;
    top->rst = 1;
    top->i_stream___05Fvalid = 0;
    top->o_stream___05Fready = 0;
    top->const_wr_en = 0;
    top->eval();
    for (int i = 0; i < 3; ++i) tick();
    top->rst = 0;
    tick();

    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string cmd;
        in >> cmd;
        if (cmd == "nprime") {
            std::string h;
            in >> h;
            put(top->nprime, parse_hex(h));
        } else if (cmd == "const") {
            int sel, addr;
            std::string h;
            in >> std::hex >> sel >> addr >> h;
            top->const_wr_en = 1;
            top->const_wr_sel = sel;
            top->const_wr_addr = addr;
            put(top->const_wr_data, parse_hex(h));
            top->eval();
            tick();
            top->const_wr_en = 0;
        } else if (cmd == "job") {
            size_t nbeats;
            in >> std::hex >> nbeats;
            std::vector<Bits> beats(nbeats);
            for (auto& b : beats) {
                std::string h;
                in >> h;
                b = parse_hex(h);
            }
            size_t k = 0;
            bool done = false;
            const uint64_t start = cycle;
            top->o_stream___05Fready = 1;
            while (!done) {
                if (cycle - start > limit) {
                    std::printf("timeout %llu\n", (unsigned long long)cycle);
                    std::fflush(stdout);
                    return 3;
                }
                top->i_stream___05Fvalid = k < nbeats;
                if (k < nbeats) put(top->i_stream___05Fpayload, beats[k]);
                top->eval();
                const bool in_hs = top->i_stream___05Fvalid && top->i_stream___05Fready;
                if (in_hs && k == 0) std::printf("first %llu\n", (unsigned long long)cycle);
                if (top->o_stream___05Fvalid) {
                    Bits p = get(top->o_stream___05Fpayload);
                    std::printf("out %llu %s\n", (unsigned long long)cycle, to_hex(p).c_str());
                    done = bit(p, last_bit);
                }
                tick();
                if (in_hs) ++k;
            }
            top->i_stream___05Fvalid = 0;
            top->o_stream___05Fready = 0;
            top->eval();
            std::printf("end\n");
            std::fflush(stdout);
        } else if (cmd == "quit") {
            break;
        }
    }
    top->final();
    delete top;
    delete ctx;
    return 0;
}
