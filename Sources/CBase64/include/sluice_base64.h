#ifndef SLUICE_BASE64_H
#define SLUICE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/// Whether ``sluice_base64_decode`` can run on this CPU (x86_64 with SSSE3). When it cannot, the
/// caller decodes by other means.
int sluice_base64_is_available(void);

/// Decodes standard padded base64 (RFC 4648 §4: the 64-character alphabet, `length` a multiple of 4,
/// `=` only as the last one or two characters, no whitespace) from `input` into `output`, 16
/// characters at a time. `output` must have room for the decoded bytes plus 4 (each 16-character block
/// stores 16 bytes for the 12 it decodes).
///
/// Returns the number of decoded bytes, or -1 when the input is not such base64 (then `output` holds
/// garbage). Call only when ``sluice_base64_is_available`` says so.
long sluice_base64_decode(const uint8_t *input, size_t length, uint8_t *output);

#endif
