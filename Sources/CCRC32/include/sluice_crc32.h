#ifndef SLUICE_CRC32_H
#define SLUICE_CRC32_H

#include <stddef.h>
#include <stdint.h>

/// CRC-32/ISO-HDLC (the zlib/gzip polynomial, reflected 0xEDB88320) of `length` bytes at `bytes`,
/// continuing from `crc`: the same pre- and post-conditioned value zlib's `crc32(crc, buf, len)` takes
/// and returns, so `sluice_crc32(sluice_crc32(0, a), b)` is the CRC of a followed by b. Any alignment;
/// `bytes` may be NULL when `length` is 0. Safe to call from any thread.
uint32_t sluice_crc32(uint32_t crc, const void *bytes, size_t length);

#endif
