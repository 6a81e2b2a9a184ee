#ifndef SLUICE_CISAL_SHIM_H
#define SLUICE_CISAL_SHIM_H
// Only the CRC entry points: isa-l.h pulls in erasure coding, igzip and more that we never call.
#include <isa-l/crc.h>
#endif
