#ifndef SLUICE_BASE64_H
#define SLUICE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/// Whether ``sluice_base64_decode`` can run on this CPU (x86_64 with SSSE3). When it cannot, the
/// caller decodes by other means.
int sluice_base64_is_available(void);

/// The vector decoder this CPU runs: 0 none, 1 SSSE3, 2 AVX (the same operations VEX-encoded, with
/// fewer instructions).
int sluice_base64_vector_level(void);

/// Decodes standard padded base64 (RFC 4648 §4: the 64-character alphabet, `length` a multiple of 4,
/// `=` only as the last one or two characters, no whitespace) from `input` into `output`, 16
/// characters at a time. `output` must have room for the decoded bytes plus 16 (every block stores 16
/// bytes, of which 12 or fewer are decoded ones). `readable` (at least `length`) is how many bytes
/// from `input` may be read: with 16 to spare past the last block's start, the last block is loaded in
/// place rather than copied out first.
///
/// Returns the number of decoded bytes, or -1 when the input is not such base64 (then `output` holds
/// garbage). Call only when ``sluice_base64_is_available`` says so.
long sluice_base64_decode(const uint8_t *input, size_t length, size_t readable, uint8_t *output);

/// Decodes the base64 contents of a JSON string, `input` being its first character: the characters
/// up to the first '"', as ``sluice_base64_decode`` decodes them, reading no more than `readable`
/// bytes. Finding the quote costs nothing extra: the block that holds it is the first to fail the
/// alphabet test. `output` needs room for the decoded bytes plus 16.
///
/// Returns the number of decoded bytes and stores the number of characters before the quote in
/// `*length`; or -1 (then `*length` and `output` hold garbage) when there is no quote within
/// `readable` bytes or what precedes it is not such base64, e.g. JSON escapes, which the caller may
/// still want to read another way. Call only when ``sluice_base64_is_available`` says so.
long sluice_base64_decode_string(const uint8_t *input, size_t readable, uint8_t *output, size_t *length);

/// The two decoders with a chosen level (1 or 2, at most ``sluice_base64_vector_level``), so tests
/// run each one a CPU can.
long sluice_base64_decode_using(int level, const uint8_t *input, size_t length, size_t readable, uint8_t *output);
long sluice_base64_decode_string_using(int level, const uint8_t *input, size_t readable, uint8_t *output, size_t *length);

#endif
