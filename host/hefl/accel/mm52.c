/* mm52.c: batch Montgomery arithmetic on AVX-512 IFMA for hefl's cpu backend.
 *
 * Built and loaded at run time by hefl/accel/native.py (gcc, no library
 * needed); the algorithm and its bounds are in docs/design.md §1.7.
 *
 * Eight independent numbers are processed at once, one per 64-bit lane of
 * a zmm register ("multi-buffer"): a number of n digits in radix 2^52 is n
 * registers, digit j of lane l in element l of register j. One Montgomery
 * multiplication is n rows of 4n IFMA instructions (vpmadd52luq/huq), for
 * all eight lanes; every row does the same operations whatever the values.
 *
 * Almost Montgomery multiplication: with R = 2^(52n) >= 4m, inputs below 2m
 * give an output below 2m, so no step ever compares or subtracts. Only the
 * last step of a product or a power reduces below m, by a subtraction whose
 * result is selected with a lane mask. No branch and no memory address
 * depends on an operand or an exponent, with one exception stated where it
 * is: the fixed-base product reads the table entries its exponent's digits
 * name (docs/design.md §5.3).
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 8
#define DIGIT_BITS 52
#define MASK52 ((1ULL << DIGIT_BITS) - 1)
#define KERNEL __attribute__((target("avx512f,avx512ifma")))

/* Built with -DHEFL_MM52_COUNT for the tests: how many multiplications,
 * reductions and table scans ran, to check that the schedule is the same
 * for every exponent and operand. */
#ifdef HEFL_MM52_COUNT
static int64_t counts[3];
#define COUNT(i) (counts[i]++)
void hefl_mm52_counts(int64_t *out)
{
    memcpy(out, counts, sizeof counts);
    memset(counts, 0, sizeof counts);
}
#else
#define COUNT(i) ((void)0)
#endif

/* 1 when this CPU (and OS) can run the kernels below. */
int hefl_mm52_cpu_ok(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
}

/* ---- radix conversion (little-endian bytes <-> transposed 52-bit digits) ---- */

/* Digit j of the little-endian number src (nbytes long) into element lane of
 * register j of dst (n registers). Reads go through a zero-padded copy, so
 * the number of loads is the same for every value. */
static void load_number(const uint8_t *src, int64_t nbytes, uint64_t *dst, int lane, int n, uint8_t *pad)
{
    int64_t padded = ((int64_t)n * DIGIT_BITS + 7) / 8 + 8;
    memset(pad, 0, (size_t)padded);
    memcpy(pad, src, (size_t)(nbytes < padded ? nbytes : padded));
    for (int j = 0; j < n; j++) {
        int64_t bit = (int64_t)j * DIGIT_BITS;
        uint64_t v;
        memcpy(&v, pad + (bit >> 3), 8);
        dst[(int64_t)j * LANES + lane] = (v >> (bit & 7)) & MASK52;
    }
}

/* The inverse of load_number for a normalised number below 2^(8 nbytes). */
static void store_number(const uint64_t *src, int lane, int n, uint8_t *dst, int64_t nbytes, uint8_t *pad)
{
    int64_t padded = ((int64_t)n * DIGIT_BITS + 7) / 8 + 8;
    memset(pad, 0, (size_t)padded);
    for (int j = 0; j < n; j++) {
        int64_t bit = (int64_t)j * DIGIT_BITS;
        uint64_t v;
        memcpy(&v, pad + (bit >> 3), 8);
        v |= src[(int64_t)j * LANES + lane] << (bit & 7);
        memcpy(pad + (bit >> 3), &v, 8);
    }
    memcpy(dst, pad, (size_t)(nbytes < padded ? nbytes : padded));
    if (nbytes > padded)
        memset(dst + padded, 0, (size_t)(nbytes - padded));
}

/* ---- the multiplication ---- */

typedef struct {
    int n;            /* digits */
    __m512i *m;       /* the modulus, each digit broadcast */
    __m512i minv;     /* -m^-1 mod 2^52, broadcast */
    __m512i *acc;     /* scratch, 2n + 1 registers */
} mont_t;

/* r = a b / R mod m, r < 2m for a, b < 2m (R >= 4m). r may alias a or b. */
KERNEL static void amm(const mont_t *c, __m512i *r, const __m512i *a, const __m512i *b)
{
    const int n = c->n;
    const __m512i zero = _mm512_setzero_si512();
    __m512i *acc = c->acc;
    COUNT(0);
    const __m512i *m = c->m;
    for (int j = 0; j <= 2 * n; j++)
        acc[j] = zero;
    for (int i = 0; i < n; i++) {
        __m512i *A = acc + i;
        const __m512i bi = b[i];
        /* Digit i is complete once a[0] b_i is in: q_i makes it 0 mod 2^52. */
        __m512i x0 = _mm512_madd52lo_epu64(A[0], a[0], bi);
        const __m512i q = _mm512_madd52lo_epu64(zero, x0, c->minv);
        x0 = _mm512_madd52lo_epu64(x0, m[0], q);
        __m512i x = _mm512_add_epi64(A[1], _mm512_srli_epi64(x0, DIGIT_BITS));
        x = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(x, a[0], bi), m[0], q);
        for (int j = 1; j < n; j++) {
            x = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(x, a[j], bi), m[j], q);
            A[j] = x;
            x = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(A[j + 1], a[j], bi), m[j], q);
        }
        A[n] = x;
        /* Each element of acc takes at most 4 (n + 1) terms below 2^52 and a
         * carry: below 2^64 for n < 2^10 (native.py checks n). */
    }
    __m512i carry = zero;
    const __m512i mask = _mm512_set1_epi64((long long)MASK52);
    for (int j = 0; j < n; j++) {
        __m512i t = _mm512_add_epi64(acc[n + j], carry);
        r[j] = _mm512_and_si512(t, mask);
        carry = _mm512_srli_epi64(t, DIGIT_BITS);
    }
}

/* x < 2m -> x mod m: subtract m, keep the difference in the lanes where it
 * did not borrow. */
KERNEL static void reduce_once(const mont_t *c, __m512i *x, __m512i *tmp)
{
    const __m512i mask = _mm512_set1_epi64((long long)MASK52);
    __m512i borrow = _mm512_setzero_si512();
    COUNT(1);
    for (int j = 0; j < c->n; j++) {
        __m512i t = _mm512_sub_epi64(_mm512_sub_epi64(x[j], c->m[j]), borrow);
        tmp[j] = _mm512_and_si512(t, mask);
        borrow = _mm512_srli_epi64(t, 63);
    }
    const __mmask8 keep_diff = _mm512_cmpeq_epi64_mask(borrow, _mm512_setzero_si512());
    for (int j = 0; j < c->n; j++)
        x[j] = _mm512_mask_mov_epi64(x[j], keep_diff, tmp[j]);
}

/* ---- buffers ---- */

typedef struct {
    mont_t c;
    __m512i *x, *y, *tmp, *konst, *konst2;
    __m512i *table;   /* powm: 2^w numbers of n registers */
    uint8_t *pad;
    void *block;
} work_t;

/* Each digit of dig into every lane of dst[j]. */
static void broadcast(__m512i *dst, const uint64_t *dig, int n)
{
    for (int j = 0; j < n; j++) {
        uint64_t *lanes = (uint64_t *)&dst[j];
        for (int l = 0; l < LANES; l++)
            lanes[l] = dig[j];
    }
}

static int work_init(work_t *w, const uint64_t *mdig, int n, uint64_t minv, int table_numbers)
{
    size_t regs = (size_t)n * (6 + (size_t)table_numbers) + 2 * (size_t)n + 1;
    size_t padded = ((size_t)n * DIGIT_BITS + 7) / 8 + 64;
    size_t bytes = regs * sizeof(__m512i) + padded;
    bytes = (bytes + 63) & ~(size_t)63;
    w->block = aligned_alloc(64, bytes);
    if (!w->block)
        return -1;
    uint64_t *base = (uint64_t *)w->block;
    __m512i *r = (__m512i *)base;
    w->c.n = n;
    w->c.m = r; r += n;
    w->c.acc = r; r += 2 * n + 1;
    w->x = r; r += n;
    w->y = r; r += n;
    w->tmp = r; r += n;
    w->konst = r; r += n;
    w->konst2 = r; r += n;
    w->table = r; r += (size_t)n * table_numbers;
    w->pad = (uint8_t *)r;
    broadcast(w->c.m, mdig, n);
    broadcast(&w->c.minv, &minv, 1);
    return 0;
}

/* Group g of a batch: each lane's number into dst, and a pointer to its
 * exponent. A short last group repeats its first number; those lanes are
 * computed and dropped (store_group skips them). */
static void load_group(const uint8_t *nums, int64_t nbytes, const uint8_t *exps, int64_t exp_bytes,
                       int64_t g, int64_t count, const uint8_t **ex, work_t *w)
{
    for (int l = 0; l < LANES; l++) {
        int64_t e = g + l < count ? g + l : g;
        ex[l] = exps + e * exp_bytes;
        load_number(nums + e * nbytes, nbytes, (uint64_t *)w->x, l, w->c.n, w->pad);
    }
}

static void store_group(work_t *w, int64_t g, int64_t count, uint8_t *out, int64_t nbytes)
{
    for (int l = 0; l < LANES && g + l < count; l++)
        store_number((const uint64_t *)w->x, l, w->c.n, out + (g + l) * nbytes, nbytes, w->pad);
}

/* The last step of every product and power: x = x * last / R, below 2m,
 * reduced below m, and the group's lanes stored. */
KERNEL static void finish_group(work_t *w, const __m512i *last, int64_t g, int64_t count, uint8_t *out,
                                int64_t nbytes)
{
    amm(&w->c, w->x, w->x, last);
    reduce_once(&w->c, w->x, w->tmp);
    store_group(w, g, count, out, nbytes);
}

/* k-bit digit i (k <= 16) of a little-endian exponent padded by 8 bytes. */
static inline unsigned window(const uint8_t *e, int64_t i, int k)
{
    int64_t bit = i * k;
    uint64_t v;
    memcpy(&v, e + (bit >> 3), 8);
    return (unsigned)((v >> (bit & 7)) & ((1u << k) - 1));
}

/* ---- fixed-base products ---- */

/* out[e] = f_e * prod_i T[i][digit_i(alpha_e)] mod m, for count exponents.
 *
 * table: windows * 2^k entries of entry_bytes, flat index i 2^k + d.
 * kdig: R^(windows + 1) mod m in digits (undoes the windows + 1 divisions
 * by R). alphas: alpha_bytes per exponent. factors, out: entry_bytes each.
 * The digits choose which entries are read (the cache channel of §5.3);
 * the number of multiplications and everything else is fixed. */
KERNEL int hefl_mm52_fixed_base(const uint8_t *table, int64_t entry_bytes, int windows, int k,
                                const uint64_t *mdig, int n, uint64_t minv, const uint64_t *kdig,
                                const uint8_t *alphas, int64_t alpha_bytes,
                                const uint8_t *factors, int64_t count, uint8_t *out)
{
    work_t w;
    if (work_init(&w, mdig, n, minv, 0))
        return -1;
    broadcast(w.konst, kdig, n);
    for (int64_t g = 0; g < count; g += LANES) {
        const uint8_t *al[LANES];
        load_group(factors, entry_bytes, alphas, alpha_bytes, g, count, al, &w);
        for (int i = 0; i < windows; i++) {
            for (int l = 0; l < LANES; l++) {
                int64_t idx = ((int64_t)i << k) + window(al[l], i, k);
                load_number(table + idx * entry_bytes, entry_bytes, (uint64_t *)w.y, l, n, w.pad);
            }
            if (i + 1 < windows) {
                /* Start fetching the next row's entries while this one multiplies. */
                for (int l = 0; l < LANES; l++) {
                    const uint8_t *p = table + ((((int64_t)i + 1) << k) + window(al[l], i + 1, k)) * entry_bytes;
                    for (int64_t off = 0; off < entry_bytes; off += 64)
                        __builtin_prefetch(p + off);
                }
            }
            amm(&w.c, w.x, w.x, w.y);
        }
        finish_group(&w, w.konst, g, count, out, entry_bytes);
    }
    free(w.block);
    return 0;
}

/* ---- powers with secret exponents ---- */

/* dst = table[idx_l] in each lane l, reading every entry (constant time). */
KERNEL static void select_entry(const work_t *w, __m512i *dst, __m512i idx, int entries)
{
    const int n = w->c.n;
    COUNT(2);
    for (int j = 0; j < n; j++)
        dst[j] = _mm512_setzero_si512();
    for (int d = 0; d < entries; d++) {
        const __mmask8 hit = _mm512_cmpeq_epi64_mask(idx, _mm512_set1_epi64(d));
        const __m512i *t = w->table + (int64_t)d * n;
        for (int j = 0; j < n; j++)
            dst[j] = _mm512_mask_mov_epi64(dst[j], hit, t[j]);
    }
}

KERNEL static __m512i window_lanes(const uint8_t *const *ex, int64_t i, int wbits)
{
    long long d[LANES];
    for (int l = 0; l < LANES; l++)
        d[l] = window(ex[l], i, wbits);
    return _mm512_loadu_si512((const void *)d);
}

/* out[e] = base_e ^ exp_e mod m, fixed window of wbits over ebits bits.
 *
 * Every exponent is read as ceil(ebits / wbits) windows whatever its value:
 * ebits squarings-and-multiplications schedule, each window's table entry
 * chosen by a full scan. r2dig, onedig: R^2 mod m and R mod m. */
KERNEL int hefl_mm52_powm(const uint8_t *bases, int64_t nbytes, const uint8_t *exps, int64_t exp_bytes,
                          int ebits, int wbits, const uint64_t *mdig, int n, uint64_t minv,
                          const uint64_t *r2dig, const uint64_t *onedig, int64_t count, uint8_t *out)
{
    const int entries = 1 << wbits;
    const int64_t nwin = (ebits + wbits - 1) / wbits;
    work_t w;
    if (work_init(&w, mdig, n, minv, entries))
        return -1;
    broadcast(w.konst, r2dig, n);
    /* konst2 = 1, the factor that takes a result out of Montgomery form. */
    const uint64_t unit = 1;
    memset(w.konst2, 0, (size_t)n * sizeof(__m512i));
    broadcast(w.konst2, &unit, 1);
    for (int64_t g = 0; g < count; g += LANES) {
        const uint8_t *ex[LANES];
        load_group(bases, nbytes, exps, exp_bytes, g, count, ex, &w);
        /* table[d] = base^d R mod m (below 2m). */
        broadcast(w.table, onedig, n);
        amm(&w.c, w.table + n, w.x, w.konst);
        for (int d = 2; d < entries; d++)
            amm(&w.c, w.table + (int64_t)d * n, w.table + (int64_t)(d - 1) * n, w.table + n);
        select_entry(&w, w.x, window_lanes(ex, nwin - 1, wbits), entries);
        for (int64_t i = nwin - 2; i >= 0; i--) {
            for (int s = 0; s < wbits; s++)
                amm(&w.c, w.x, w.x, w.x);
            select_entry(&w, w.y, window_lanes(ex, i, wbits), entries);
            amm(&w.c, w.x, w.x, w.y);
        }
        /* Out of Montgomery form: times 1. */
        finish_group(&w, w.konst2, g, count, out, nbytes);
    }
    free(w.block);
    return 0;
}
