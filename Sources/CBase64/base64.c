// Base64 decoding 16 characters at a time with SSSE3 byte shuffles (x86_64), after Wojciech Muła's
// method: each character's value is its byte plus an offset that depends only on its high nibble
// (and on whether it is '/'), and whether it belongs to the alphabet is a bit test between two
// 16-entry tables indexed by its high and low nibbles. Bedrock's InvokeModelWithResponseStream sends
// every Anthropic event as base64, so this runs once per streamed chunk.

#include "sluice_base64.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

// Decodes one block of 16 characters into 16 bytes at `output` (the first 12 are the decoded ones);
// returns 0 when a character is outside the alphabet.
__attribute__((target("ssse3"), always_inline)) static inline int decode_block(__m128i text, uint8_t *output) {
    // Bit tests: a character is outside the alphabet exactly when lookup_low[low] & lookup_high[high]
    // is not 0. Bit 0x10 marks bytes >= 0x80 (every high-nibble entry from 8 on, every low entry);
    // 0x01 the row 0x2_ ('+' and '/' only), 0x02 the row 0x3_ (digits), 0x04 and 0x08 the letter rows,
    // whose ends ('@', '[', '`', '{' and beyond) the low-nibble entries exclude.
    const __m128i lookup_low = _mm_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
    const __m128i lookup_high = _mm_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
    // Offsets by high nibble: '+' 0x2B → 62 (+19), '/' → 63 (+16, selected one entry lower, since
    // '/' adds -1 to its index), digits 0x30 → 52 (+4), 'A'..'Z' → 0.. (-65), 'a'..'z' → 26.. (-71).
    const __m128i offsets = _mm_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128i nibble = _mm_set1_epi8(0x0F);
    // Four 6-bit values a b c d → one 24-bit number per 32-bit lane (a·2^18 + b·2^12 + c·2^6 + d),
    // then its three bytes, most significant first, packed to the front.
    const __m128i pair_weights = _mm_set1_epi32(0x01400140);
    const __m128i quad_weights = _mm_set1_epi32(0x00011000);
    const __m128i pack = _mm_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);

    const __m128i high = _mm_and_si128(_mm_srli_epi32(text, 4), nibble);
    const __m128i low = _mm_and_si128(text, nibble);
    const __m128i invalid = _mm_and_si128(_mm_shuffle_epi8(lookup_low, low), _mm_shuffle_epi8(lookup_high, high));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(invalid, _mm_setzero_si128())) != 0xFFFF) {
        return 0;
    }
    const __m128i index = _mm_add_epi8(_mm_cmpeq_epi8(text, _mm_set1_epi8(0x2F)), high);
    const __m128i values = _mm_add_epi8(text, _mm_shuffle_epi8(offsets, index));
    const __m128i pairs = _mm_maddubs_epi16(values, pair_weights);
    const __m128i words = _mm_madd_epi16(pairs, quad_weights);
    _mm_storeu_si128((__m128i *)output, _mm_shuffle_epi8(words, pack));
    return 1;
}

// Decodes the last 0 to 16 characters, input[done..<end] (padding included; `end` a multiple of 4,
// `done` of 16), in a block whose other lanes are 'A' (value 0); only the bytes they encode count. A
// '=' anywhere but the last one or two places stays and fails the block. `written` bytes are already
// in `output`; returns the total, or -1.
__attribute__((target("ssse3"), always_inline)) static inline long decode_last(const uint8_t *input, size_t done, size_t end, size_t readable,
                                                                              uint8_t *output, long written) {
    if (end == 0) {
        return 0;
    }
    size_t padding = (input[end - 1] == '=') + (input[end - 2] == '=');
    size_t rest = end - done;
    if (padding > rest) {
        return -1;  // the '=' are the last characters of a whole block already decoded: impossible, as it held none
    }
    size_t characters = rest - padding;
    __m128i text;
    if (readable - done >= 16) {
        const __m128i lane = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m128i keep = _mm_cmplt_epi8(lane, _mm_set1_epi8((char)characters));
        const __m128i loaded = _mm_loadu_si128((const __m128i *)(input + done));
        text = _mm_or_si128(_mm_and_si128(keep, loaded), _mm_andnot_si128(keep, _mm_set1_epi8('A')));
    } else {
        uint8_t block[16];
        memset(block, 'A', sizeof block);
        memcpy(block, input + done, characters);
        text = _mm_loadu_si128((const __m128i *)block);
    }
    if (!decode_block(text, output + written)) {
        return -1;
    }
    return written + (long)(rest / 4 * 3 - padding);
}

// The decoders' bodies are inlined twice: into SSSE3 functions, and into AVX ones, which run the same
// 128-bit operations in the three-operand VEX encoding and so need none of the register copies the
// two-operand SSE forms do (about a quarter of the instructions in the block loop).
// `done` characters (a multiple of 16, fewer than `length`) are already decoded into `written` bytes.
__attribute__((target("ssse3"), always_inline)) static inline long decode_whole_from(const uint8_t *input, size_t length, size_t readable,
                                                                                    uint8_t *output, size_t done, long written) {
    // Whole blocks but the last (which holds any padding): straight from the input.
    while (length - done > 16) {
        if (!decode_block(_mm_loadu_si128((const __m128i *)(input + done)), output + written)) {
            return -1;
        }
        done += 16;
        written += 12;
    }
    return decode_last(input, done, length, readable, output, written);
}

__attribute__((target("ssse3"), always_inline)) static inline long decode_whole(const uint8_t *input, size_t length, size_t readable,
                                                                               uint8_t *output) {
    if (length % 4 != 0) {
        return -1;
    }
    return decode_whole_from(input, length, readable, output, 0, 0);
}

// `done` characters (a multiple of 16, all base64) are already decoded into `written` bytes.
__attribute__((target("ssse3"), always_inline)) static inline long decode_string_from(const uint8_t *input, size_t readable, uint8_t *output,
                                                                                     size_t *length, size_t done, long written) {
    // A block of base64 characters holds no quote: decode whole blocks until one fails the alphabet
    // test, which the closing quote (or padding, or a stray byte) does.
    while (readable - done >= 16) {
        const __m128i text = _mm_loadu_si128((const __m128i *)(input + done));
        if (decode_block(text, output + written)) {
            done += 16;
            written += 12;
            continue;
        }
        unsigned quotes = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(text, _mm_set1_epi8('"')));
        size_t end;
        if (quotes != 0) {
            end = done + (size_t)__builtin_ctz(quotes);
        } else if (readable - done > 16 && input[done + 16] == '"') {
            end = done + 16;  // padding at the end of the block, the quote right after it
        } else {
            return -1;
        }
        if ((end - done) % 4 != 0) {
            return -1;
        }
        *length = end;
        return decode_last(input, done, end, readable, output, written);
    }
    const uint8_t *quote = memchr(input + done, '"', readable - done);
    if (quote == NULL) {
        return -1;
    }
    size_t end = (size_t)(quote - input);
    if ((end - done) % 4 != 0) {
        return -1;
    }
    *length = end;
    return decode_last(input, done, end, readable, output, written);
}

__attribute__((target("ssse3"), always_inline)) static inline long decode_string(const uint8_t *input, size_t readable, uint8_t *output,
                                                                                size_t *length) {
    return decode_string_from(input, readable, output, length, 0, 0);
}

// AVX2: the same method on 32 characters (24 bytes) at a time while whole 32-character blocks of the
// alphabet remain, then the 16-character code above for the rest and the end. The shuffles work
// within each 16-byte lane, so each lane packs its 12 bytes and a permute joins them.
__attribute__((target("avx2"), always_inline)) static inline int decode_block32(__m256i text, uint8_t *output) {
    const __m256i lookup_low = _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A,
                                                0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
    const __m256i lookup_high = _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
                                                 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
    const __m256i offsets = _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0,
                                             0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    const __m256i pair_weights = _mm256_set1_epi32(0x01400140);
    const __m256i quad_weights = _mm256_set1_epi32(0x00011000);
    const __m256i pack = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1,
                                          2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
    // Lane 0's three words, lane 1's three, then the two empty ones: 24 bytes in a row.
    const __m256i join = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7);

    const __m256i high = _mm256_and_si256(_mm256_srli_epi32(text, 4), nibble);
    const __m256i low = _mm256_and_si256(text, nibble);
    const __m256i invalid = _mm256_and_si256(_mm256_shuffle_epi8(lookup_low, low), _mm256_shuffle_epi8(lookup_high, high));
    if ((unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(invalid, _mm256_setzero_si256())) != 0xFFFFFFFFu) {
        return 0;
    }
    const __m256i index = _mm256_add_epi8(_mm256_cmpeq_epi8(text, _mm256_set1_epi8(0x2F)), high);
    const __m256i values = _mm256_add_epi8(text, _mm256_shuffle_epi8(offsets, index));
    const __m256i pairs = _mm256_maddubs_epi16(values, pair_weights);
    const __m256i words = _mm256_madd_epi16(pairs, quad_weights);
    _mm256_storeu_si256((__m256i *)output, _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(words, pack), join));
    return 1;
}

// The 32-byte store writes 8 bytes past the block's 24: inside the caller's room, since a whole
// block of the alphabet means at least 24 more decoded bytes and the room has 16 to spare.
__attribute__((target("avx2"))) static long decode_avx2(const uint8_t *input, size_t length, size_t readable, uint8_t *output) {
    if (length % 4 != 0) {
        return -1;
    }
    size_t done = 0;
    long written = 0;
    while (length - done > 32) {
        if (!decode_block32(_mm256_loadu_si256((const __m256i *)(input + done)), output + written)) {
            return -1;
        }
        done += 32;
        written += 24;
    }
    return decode_whole_from(input, length, readable, output, done, written);
}

__attribute__((target("avx2"))) static long decode_string_avx2(const uint8_t *input, size_t readable, uint8_t *output, size_t *length) {
    size_t done = 0;
    long written = 0;
    // A block that fails the alphabet test holds the closing quote (or padding, or a stray byte): the
    // 16-character code finds which, from the same place.
    while (readable - done >= 32 && decode_block32(_mm256_loadu_si256((const __m256i *)(input + done)), output + written)) {
        done += 32;
        written += 24;
    }
    return decode_string_from(input, readable, output, length, done, written);
}

__attribute__((target("ssse3"))) static long decode_ssse3(const uint8_t *input, size_t length, size_t readable, uint8_t *output) {
    return decode_whole(input, length, readable, output);
}

__attribute__((target("avx"))) static long decode_avx(const uint8_t *input, size_t length, size_t readable, uint8_t *output) {
    return decode_whole(input, length, readable, output);
}

__attribute__((target("ssse3"))) static long decode_string_ssse3(const uint8_t *input, size_t readable, uint8_t *output, size_t *length) {
    return decode_string(input, readable, output, length);
}

__attribute__((target("avx"))) static long decode_string_avx(const uint8_t *input, size_t readable, uint8_t *output, size_t *length) {
    return decode_string(input, readable, output, length);
}
#endif

enum { support_unknown = 0, support_none, support_ssse3, support_avx, support_avx2 };

// Decided once: the CPU does not change under a running process; racing threads store the same value.
static _Atomic int support = support_unknown;

int sluice_base64_vector_level(void) {
    int chosen = atomic_load_explicit(&support, memory_order_relaxed);
    if (chosen == support_unknown) {
#if defined(__x86_64__)
        __builtin_cpu_init();
        // "avx" also means the OS saves the vector registers (the feature is not reported otherwise).
        chosen = __builtin_cpu_supports("avx2")  ? support_avx2
            : __builtin_cpu_supports("avx")      ? support_avx
            : __builtin_cpu_supports("ssse3")    ? support_ssse3
                                                 : support_none;
#else
        chosen = support_none;
#endif
        atomic_store_explicit(&support, chosen, memory_order_relaxed);
    }
    return chosen - support_none;
}

int sluice_base64_is_available(void) {
    return sluice_base64_vector_level() > 0;
}

long sluice_base64_decode(const uint8_t *input, size_t length, size_t readable, uint8_t *output) {
    return sluice_base64_decode_using(sluice_base64_vector_level(), input, length, readable, output);
}

long sluice_base64_decode_using(int level, const uint8_t *input, size_t length, size_t readable, uint8_t *output) {
#if defined(__x86_64__)
    if (level >= 3) {
        return decode_avx2(input, length, readable < length ? length : readable, output);
    }
    if (level >= 2) {
        return decode_avx(input, length, readable < length ? length : readable, output);
    }
    return decode_ssse3(input, length, readable < length ? length : readable, output);
#else
    (void)level;
    (void)input;
    (void)length;
    (void)readable;
    (void)output;
    return -1;
#endif
}

long sluice_base64_decode_string(const uint8_t *input, size_t readable, uint8_t *output, size_t *length) {
    return sluice_base64_decode_string_using(sluice_base64_vector_level(), input, readable, output, length);
}

long sluice_base64_decode_string_using(int level, const uint8_t *input, size_t readable, uint8_t *output, size_t *length) {
#if defined(__x86_64__)
    if (level >= 3) {
        return decode_string_avx2(input, readable, output, length);
    }
    if (level >= 2) {
        return decode_string_avx(input, readable, output, length);
    }
    return decode_string_ssse3(input, readable, output, length);
#else
    (void)level;
    (void)input;
    (void)readable;
    (void)output;
    (void)length;
    return -1;
#endif
}
