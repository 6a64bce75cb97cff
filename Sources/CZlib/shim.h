#include <zlib.h>

// deflateInit2 and inflateInit2 are macros Swift cannot import.
static inline int kt_deflate_init_gzip(z_streamp s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
static inline int kt_inflate_init_gzip(z_streamp s) { return inflateInit2(s, 15 + 16); }
