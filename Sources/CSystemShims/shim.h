#ifndef SLUICE_CSYSTEMSHIMS_SHIM_H
#define SLUICE_CSYSTEMSHIMS_SHIM_H
// C library calls the platform modules do not export to Swift. Header-only (`static inline`), so the
// target links nothing and needs no system package.
#include <stddef.h>
// Any libc header brings glibc's <features.h>, which defines __GLIBC__; <stddef.h> is the compiler's
// own, so without this the checks below were false on glibc too and the shims did nothing.
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <errno.h>
#include <sys/random.h>
#include <sys/types.h>
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

// glibc's mallopt(M_ARENA_MAX, count): at most `count` malloc arenas from now on (glibc's default is
// eight per core). Returns 1 when set; 0 where there is no such setting.
static inline int sluice_malloc_set_arena_max(int count) {
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
    return mallopt(M_ARENA_MAX, count);
#else
    (void)count;
    return 0;
#endif
}

// `count` bytes from the system's cryptographically secure generator (getrandom on Linux,
// arc4random_buf elsewhere) in one call where Swift's SystemRandomNumberGenerator makes one per
// eight bytes. Returns 0, or -1 when the system gave none.
static inline int sluice_fill_random(void *buffer, size_t count) {
#if defined(__linux__)
    unsigned char *bytes = (unsigned char *)buffer;
    while (count > 0) {
        ssize_t got = getrandom(bytes, count, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        bytes += got;
        count -= (size_t)got;
    }
    return 0;
#else
    arc4random_buf(buffer, count);
    return 0;
#endif
}
#endif
