/* Shared by the fuzz targets: a failed property is a crash the fuzzer reports. */
#ifndef WH_FUZZ_H
#define WH_FUZZ_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

/* data as a NUL-terminated string (it ends at the first NUL in data, as it would for C). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits data at the first `max - 1` bytes equal to sep into NUL-terminated parts (malloc'd,
 * each freed with free()); returns how many parts (at least 1). */
static inline size_t fuzz_split(const uint8_t *data, size_t size, char sep, char **parts, size_t max)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i < size && n + 1 < max; i++)
        if (data[i] == (uint8_t)sep) {
            parts[n++] = fuzz_cstr(data + start, i - start);
            start = i + 1;
        }
    parts[n++] = fuzz_cstr(data + start, size - start);
    return n;
}

/* No byte below 0x20 and no DEL. */
static inline int fuzz_no_controls(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}
#endif
