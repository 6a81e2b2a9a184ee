#ifndef SLUICE_BASE64_H
#define SLUICE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/// Whether ``sluice_base64_decode`` can run on this CPU (x86_64 with SSSE3). When it cannot, the
/// caller decodes by other means.
int sluice_base64_is_available(void);

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

#endif
