#ifndef SLUICE_CSYSTEMSHIMS_SHIM_H
#define SLUICE_CSYSTEMSHIMS_SHIM_H
// C library calls the platform modules do not export to Swift. Header-only (`static inline`), so the
// target links nothing and needs no system package.
#include <stddef.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

// glibc's malloc_trim: gives the free memory at the top of the heap and in the arenas back to the
// system. Returns 1 when memory was released. Elsewhere there is nothing to trim: 0.
static inline int sluice_malloc_trim(size_t pad) {
#if defined(__GLIBC__)
    return malloc_trim(pad);
#else
    (void)pad;
    return 0;
#endif
}
#endif
