// CRC-32/ISO-HDLC for the event-stream codec: every prelude (8 bytes) and every message (~200 bytes
// for a text delta) is checked, so the CRC is most of a frame's decode cost. Three implementations,
// chosen once per process:
//   x86_64   carry-less multiplication (PCLMULQDQ) folding, 64 bytes per step;
//   aarch64  the ARMv8 CRC32 instructions, whose polynomial is this one;
//   anywhere a slice-by-8 table, also used on x86_64 for inputs shorter than 16 bytes.
// Every function below works on the inverted state (~crc, as the CRC register holds it between
// bytes); sluice_crc32 does the zlib-compatible inversion once on the way in and once on the way out.

#include "sluice_crc32.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_acle.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#endif

// The reflected polynomial: bit 31-k holds the coefficient of x^k of
// x^32 + x^26 + x^23 + x^22 + x^16 + x^12 + x^11 + x^10 + x^8 + x^7 + x^5 + x^4 + x^2 + x + 1.
#define SLUICE_CRC32_POLY 0xEDB88320u

// MARK: - Slice-by-8 tables

// table[k][b] is the CRC register after byte b followed by k zero bytes, so eight bytes are consumed
// with eight independent lookups instead of eight dependent ones. Built on first use (8 KiB); a
// literal table would be 2,048 numbers nobody can review.
static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
    for (uint32_t byte = 0; byte < 256; byte++) {
        uint32_t crc = byte;
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 1) ? (crc >> 1) ^ SLUICE_CRC32_POLY : crc >> 1;
        }
        table[0][byte] = crc;
    }
    for (int k = 1; k < 8; k++) {
        for (int byte = 0; byte < 256; byte++) {
            uint32_t previous = table[k - 1][byte];
            table[k][byte] = (previous >> 8) ^ table[0][previous & 0xff];
        }
    }
}

static uint32_t crc32_bytes(uint32_t state, const uint8_t *bytes, size_t length) {
    while (length > 0) {
        state = table[0][(state ^ *bytes) & 0xff] ^ (state >> 8);
        bytes++;
        length--;
    }
    return state;
}

static uint32_t crc32_slice8(uint32_t state, const uint8_t *bytes, size_t length) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    // The word's first byte is the least significant, so the register is XORed into the first four
    // bytes, and byte j still has 7-j bytes to pass through: table[7-j].
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);  // no alignment assumed: slices start anywhere in a read buffer
        word ^= state;
        state = table[7][word & 0xff] ^ table[6][(word >> 8) & 0xff] ^ table[5][(word >> 16) & 0xff]
            ^ table[4][(word >> 24) & 0xff] ^ table[3][(word >> 32) & 0xff] ^ table[2][(word >> 40) & 0xff]
            ^ table[1][(word >> 48) & 0xff] ^ table[0][word >> 56];
        bytes += 8;
        length -= 8;
    }
#endif
    return crc32_bytes(state, bytes, length);
}

// MARK: - x86_64: carry-less multiplication

#if defined(__x86_64__)

// How the constants are derived (the method of Intel's white paper "Fast CRC Computation for Generic
// Polynomials Using PCLMULQDQ Instruction", written out for this layout):
//
// With reflected bits, a 16-byte block loaded little-endian puts the message's first bit in register
// bit 0, so register bit i is the coefficient of x^(127-i): the low quadword H holds the high-degree
// half and the high quadword L the low-degree half of V = H*x^64 + L. Moving V forward past D more
// bits of message multiplies it by x^D, and modulo P(x)
//     V * x^D = H * x^(D+64) + L * x^D  ==  H * (x^(D+64) mod P) + L * (x^D mod P),
// two 64x32-bit carry-less products, each shorter than 128 bits. PCLMULQDQ on reflected operands
// returns the product shifted by one degree (bit i+j of the result holds the degree-(126-i-j)
// coefficient, the register convention wants 127), so the constants are x^(D+63) mod P and
// x^(D-1) mod P. Each is stored bit-reflected (coefficient of x^k in bit 31-k) in the upper half of
// its quadword: fold_constant(n) = reflect32(x^n mod P) << 32. Computed with polynomial division over
// GF(2) (repeated shift-and-XOR of P, as in a bitwise CRC), checked by the tests against a bitwise CRC:
//     D = 512 (four blocks ahead):  x^575, x^511
//     D = 128 (one block ahead):    x^191, x^127
// Reducing the last 128 bits to the 32-bit remainder of V * x^32:
//     H * x^96 + L * x^32  ==  H * (x^95 mod P, shifted as above) + L * x^32       128 -> 96 bits,
//     T * x^64 + U         ==  T * (x^63 mod P, shifted as above) + U              96 -> 64 bits,
// then Barrett reduction of the 64 bits Z with mu = floor(x^64 / P): q = floor(floor(Z / x^32) * mu
// / x^32), remainder = (Z + q * P) mod x^32. mu and P are 33-bit polynomials, stored bit-reflected in
// bits 0-32 (coefficient of x^k in bit 32-k): mu = 0x1F7011641, P = 0x1DB710641.
#define FOLD_512_HIGH 0x653D982200000000ull  // x^575 mod P
#define FOLD_512_LOW 0xCAD38E8F00000000ull   // x^511 mod P
#define FOLD_128_HIGH 0x65673B4600000000ull  // x^191 mod P
#define FOLD_128_LOW 0x9BA54C6F00000000ull   // x^127 mod P
#define REDUCE_96 0xCCAA009E00000000ull      // x^95 mod P
#define REDUCE_64 0xB8BC676500000000ull      // x^63 mod P
#define BARRETT_MU 0x1F7011641ull
#define BARRETT_P 0x1DB710641ull

// pshufb masks: 16 bytes loaded at shuffle_masks + 16 - k shift a register up by k bytes (zeros come
// in), and at shuffle_masks + 16 + k shift it down by k bytes. 0x80 selects a zero byte.
static const uint8_t shuffle_masks[48] __attribute__((aligned(16))) = {
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
};

__attribute__((target("pclmul,sse4.1"), always_inline)) static inline __m128i
fold(__m128i value, __m128i constants) {
    return _mm_xor_si128(
        _mm_clmulepi64_si128(value, constants, 0x00), _mm_clmulepi64_si128(value, constants, 0x11));
}

__attribute__((target("pclmul,sse4.1"), always_inline)) static inline __m128i
load_block(const uint8_t *bytes) {
    return _mm_loadu_si128((const __m128i *)(const void *)bytes);
}

// length >= 16. The caller picks the table for shorter inputs, whose few bytes don't fill a block.
__attribute__((target("pclmul,sse4.1"))) static uint32_t
crc32_clmul(uint32_t state, const uint8_t *bytes, size_t length) {
    const __m128i fold_128 = _mm_set_epi64x((long long)FOLD_128_LOW, (long long)FOLD_128_HIGH);
    const uint8_t *end = bytes + length;
    __m128i x;
    if (length >= 64) {
        // Four independent lanes hide the multiplier's latency: each folds 512 bits ahead.
        const __m128i fold_512 = _mm_set_epi64x((long long)FOLD_512_LOW, (long long)FOLD_512_HIGH);
        __m128i x0 = _mm_xor_si128(load_block(bytes), _mm_cvtsi32_si128((int)state));
        __m128i x1 = load_block(bytes + 16);
        __m128i x2 = load_block(bytes + 32);
        __m128i x3 = load_block(bytes + 48);
        bytes += 64;
        while (end - bytes >= 64) {
            x0 = _mm_xor_si128(fold(x0, fold_512), load_block(bytes));
            x1 = _mm_xor_si128(fold(x1, fold_512), load_block(bytes + 16));
            x2 = _mm_xor_si128(fold(x2, fold_512), load_block(bytes + 32));
            x3 = _mm_xor_si128(fold(x3, fold_512), load_block(bytes + 48));
            bytes += 64;
        }
        x = _mm_xor_si128(fold(x0, fold_128), x1);
        x = _mm_xor_si128(fold(x, fold_128), x2);
        x = _mm_xor_si128(fold(x, fold_128), x3);
    } else {
        x = _mm_xor_si128(load_block(bytes), _mm_cvtsi32_si128((int)state));
        bytes += 16;
    }
    while (end - bytes >= 16) {
        x = _mm_xor_si128(fold(x, fold_128), load_block(bytes));
        bytes += 16;
    }
    size_t rest = (size_t)(end - bytes);
    if (rest > 0) {
        // 1-15 bytes left. The message so far plus the tail is x * x^(8*rest) + tail: the first
        // `rest` bytes of x become a block of their own (x shifted up by 16-rest bytes), folded one
        // block ahead, and the other 16-rest bytes of x followed by the tail form the last block. The
        // tail is read as the last 16 bytes of the input (length >= 16, so they exist), never past it.
        __m128i up = _mm_loadu_si128((const __m128i *)(const void *)(shuffle_masks + rest));
        __m128i down = _mm_loadu_si128((const __m128i *)(const void *)(shuffle_masks + 16 + rest));
        __m128i head = _mm_shuffle_epi8(x, up);
        __m128i last = _mm_blendv_epi8(load_block(end - 16), _mm_shuffle_epi8(x, down), up);
        x = _mm_xor_si128(fold(head, fold_128), last);
    }

    // 128 -> 96 -> 64 bits, then Barrett (see the derivation above).
    const __m128i reduce = _mm_set_epi64x((long long)REDUCE_64, (long long)REDUCE_96);
    const __m128i barrett = _mm_set_epi64x((long long)BARRETT_P, (long long)BARRETT_MU);
    const __m128i low_32 = _mm_set_epi32(0, 0, 0, -1);
    __m128i w = _mm_xor_si128(_mm_clmulepi64_si128(x, reduce, 0x00), _mm_slli_si128(_mm_srli_si128(x, 8), 4));
    // w's bits 0-31 are zero and bits 32-63 hold its top 32 coefficients; the product lands in the
    // high quadword, the only one read below.
    __m128i z = _mm_xor_si128(_mm_clmulepi64_si128(w, reduce, 0x10), w);
    __m128i q = _mm_clmulepi64_si128(_mm_and_si128(_mm_srli_si128(z, 8), low_32), barrett, 0x00);
    __m128i qp = _mm_clmulepi64_si128(_mm_and_si128(q, low_32), barrett, 0x10);
    return (uint32_t)_mm_extract_epi32(qp, 1) ^ (uint32_t)_mm_extract_epi32(z, 3);
}

#endif

// MARK: - aarch64: CRC32 instructions

#if defined(__aarch64__)

__attribute__((target("crc"))) static uint32_t crc32_armv8(uint32_t state, const uint8_t *bytes, size_t length) {
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        state = __crc32d(state, word);
        bytes += 8;
        length -= 8;
    }
    if (length >= 4) {
        uint32_t word;
        memcpy(&word, bytes, 4);
        state = __crc32w(state, word);
        bytes += 4;
        length -= 4;
    }
    while (length > 0) {
        state = __crc32b(state, *bytes);
        bytes++;
        length--;
    }
    return state;
}

#endif

// MARK: - Choice and entry point

enum {
    implementation_unknown = 0,
    implementation_table,
    implementation_clmul,
    implementation_armv8,
};

// Decided once: the CPU does not change under a running process. Threads that race here all store the
// same value; release/acquire makes the tables that pthread_once built visible to a thread that only
// reads the stored choice (on x86_64 and arm64 these are plain loads and stores, or nearly).
static _Atomic int implementation = implementation_unknown;

static int choose_implementation(void) {
    pthread_once(&table_once, build_tables);
    int chosen = implementation_table;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1")) {
        chosen = implementation_clmul;
    }
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
    chosen = implementation_armv8;
#elif defined(__aarch64__) && defined(__linux__) && defined(HWCAP_CRC32)
    if (getauxval(AT_HWCAP) & HWCAP_CRC32) {
        chosen = implementation_armv8;
    }
#endif
    atomic_store_explicit(&implementation, chosen, memory_order_release);
    return chosen;
}

uint32_t sluice_crc32(uint32_t crc, const void *bytes, size_t length) {
    if (length == 0) {
        return crc;
    }
    const uint8_t *start = bytes;
    uint32_t state = ~crc;
    int chosen = atomic_load_explicit(&implementation, memory_order_acquire);
    if (chosen == implementation_unknown) {
        chosen = choose_implementation();
    }
    switch (chosen) {
#if defined(__x86_64__)
    case implementation_clmul:
        state = length >= 16 ? crc32_clmul(state, start, length) : crc32_slice8(state, start, length);
        break;
#endif
#if defined(__aarch64__)
    case implementation_armv8:
        state = crc32_armv8(state, start, length);
        break;
#endif
    default:
        state = crc32_slice8(state, start, length);
        break;
    }
    return ~state;
}
