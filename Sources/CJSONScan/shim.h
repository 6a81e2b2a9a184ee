#ifndef SLUICE_CJSONSCAN_SHIM_H
#define SLUICE_CJSONSCAN_SHIM_H
// Finding the bytes a JSON string treats specially, sixteen at a time with SSE2.
//
// Header-only and `static inline`: Swift compiles imported inline C functions into the calling
// module, so the optimiser inlines this like Swift code and no call is paid. It lives in C because
// Swift has no portable way to turn a vector comparison into a bit mask (`movemask`), which is what
// makes a 16-byte step cost about as much as the 8-byte SWAR step it replaces: the string scan was
// the largest single cost of translating a text-delta frame, and escaping and parsing strings the
// largest of mapping a request.
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// The 0x80 bit of each byte of `word` that is '"', '\\' or below 0x20. Bits above the lowest set
// one may be false positives from borrows; the lowest one is always exact.
static inline uint64_t sluice_json_special_flags(uint64_t word) {
    const uint64_t ones = 0x0101010101010101ULL;
    uint64_t quotes = word ^ (ones * 0x22);
    uint64_t backslashes = word ^ (ones * 0x5C);
    uint64_t has_quote = (quotes - ones) & ~quotes;
    uint64_t has_backslash = (backslashes - ones) & ~backslashes;
    uint64_t has_control = (word - ones * 0x20) & ~word;
    return (has_quote | has_backslash | has_control) & 0x8080808080808080ULL;
}

// The offset of the first byte of bytes[start..<count] that is '"', '\\' or below 0x20; `count`
// when there is none. `bytes[0..<count]` must be readable: the last 16-byte load may start before
// `start` (never before 0 or past `count`) and ignores what it reads there.
static inline size_t sluice_json_first_special(const uint8_t *bytes, size_t start, size_t count) {
    size_t index = start;
    if (index >= count) return count;
#if defined(__SSE2__)
    if (count >= 16) {
        const __m128i quote = _mm_set1_epi8('"');
        const __m128i backslash = _mm_set1_epi8('\\');
        const __m128i control = _mm_set1_epi8(0x1F);
        for (;;) {
            // The last step re-reads up to 15 bytes before `index` so it never reads past `count`;
            // their bits are shifted out below.
            size_t at = index + 16 <= count ? index : count - 16;
            __m128i v = _mm_loadu_si128((const __m128i *)(bytes + at));
            __m128i special = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                _mm_cmpeq_epi8(_mm_min_epu8(v, control), v));  // v <= 0x1F
            unsigned mask = (unsigned)_mm_movemask_epi8(special) >> (index - at);
            if (mask != 0) return index + (size_t)__builtin_ctz(mask);
            index = at + 16;
            if (index >= count) return count;
        }
    }
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (index + 8 <= count) {
        uint64_t word;
        memcpy(&word, bytes + index, 8);  // an unaligned load; compilers emit one mov
        uint64_t flags = sluice_json_special_flags(word);
        if (flags != 0) return index + ((size_t)__builtin_ctzll(flags) >> 3);
        index += 8;
    }
#endif
    while (index < count) {
        uint8_t byte = bytes[index];
        if (byte == '"' || byte == '\\' || byte < 0x20) return index;
        index += 1;
    }
    return count;
}

// After a backslash at bytes[at]: the index just past its escape, or 0 when the escape is not one
// JSON allows (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, or `\u` and four hex digits).
static inline size_t sluice_json_escape_end(const uint8_t *bytes, size_t at, size_t count) {
    if (at + 1 >= count) return 0;
    switch (bytes[at + 1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return at + 2;
    case 'u':
        if (at + 6 > count) return 0;
        for (size_t k = at + 2; k < at + 6; k++) {
            uint8_t c = bytes[k];
            if (!((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'))) return 0;
        }
        return at + 6;
    default:
        return 0;
    }
}

// The end of the JSON string whose text starts at bytes[start] (just after its opening quote): the
// index of its closing quote, or -1 - i where i is the offset of what makes it invalid (a control
// byte or the backslash of a bad escape), -1 - count when it is not closed. Every escape is checked.
//
// One pass over the special bytes of each 16-byte block: an escape only clears the block's mask bits
// up to its end, where the generic scan went back to Swift and loaded the block again for each one
// (a delta's short text has one or two escapes, and that was most of reading it).
static inline ptrdiff_t sluice_json_string_end(const uint8_t *bytes, size_t start, size_t count) {
    size_t index = start;
#if defined(__SSE2__)
    if (count >= 16) {
        const __m128i quote = _mm_set1_epi8('"');
        const __m128i backslash = _mm_set1_epi8('\\');
        const __m128i control = _mm_set1_epi8(0x1F);
        while (index < count) {
            // As in sluice_json_first_special: the last block may start before `index`.
            size_t at = index + 16 <= count ? index : count - 16;
            __m128i v = _mm_loadu_si128((const __m128i *)(bytes + at));
            __m128i special = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                _mm_cmpeq_epi8(_mm_min_epu8(v, control), v));
            // Bit k: bytes[index + k] is special, for index + k < at + 16.
            unsigned mask = (unsigned)_mm_movemask_epi8(special) >> (index - at);
            size_t block_end = at + 16;
            while (mask != 0) {
                size_t position = index + (size_t)__builtin_ctz(mask);
                uint8_t byte = bytes[position];
                if (byte == '"') return (ptrdiff_t)position;
                if (byte != '\\') return -1 - (ptrdiff_t)position;
                size_t next = sluice_json_escape_end(bytes, position, count);
                if (next == 0) return -1 - (ptrdiff_t)position;
                if (next >= block_end) {
                    index = next;
                    goto next_block;
                }
                mask &= ~0u << (next - index);
            }
            index = block_end;
        next_block:;
        }
        return -1 - (ptrdiff_t)count;
    }
#endif
    while (index < count) {
        uint8_t byte = bytes[index];
        if (byte == '"') return (ptrdiff_t)index;
        if (byte == '\\') {
            size_t next = sluice_json_escape_end(bytes, index, count);
            if (next == 0) return -1 - (ptrdiff_t)index;
            index = next;
            continue;
        }
        if (byte < 0x20) return -1 - (ptrdiff_t)index;
        index += 1;
    }
    return -1 - (ptrdiff_t)count;
}

#endif
