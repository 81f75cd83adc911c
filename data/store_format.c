/* store_format.c — see store_format.h. */
#include "store_format.h"

#include <stdio.h>
#include <string.h>

uint32_t store_fletcher32(const uint8_t *data, size_t n) {
    size_t words = n / 2;
    uint32_t sum1 = 0, sum2 = 0;
    /* 360 words keep both sums below 2^32 before each reduction (HDF5's block size). */
    while (words) {
        size_t t = words > 360 ? 360 : words;
        words -= t;
        do {
            sum1 += (uint32_t)(((uint16_t)data[0]) << 8) | (uint16_t)data[1];
            data += 2;
            sum2 += sum1;
        } while (--t);
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    if (n % 2) {
        sum1 += (uint32_t)(((uint16_t)*data) << 8);
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    return (sum2 << 16) | sum1;
}

void store_unshuffle(uint8_t *out, const uint8_t *in, size_t n, size_t elem_size) {
    if (elem_size <= 1 || n < elem_size) {
        memcpy(out, in, n);
        return;
    }
    size_t ne = n / elem_size;
    for (size_t b = 0; b < elem_size; b++) {
        const uint8_t *src = in + b * ne;
        for (size_t e = 0; e < ne; e++) out[e * elem_size + b] = src[e];
    }
    /* HDF5 leaves a trailing partial element unshuffled. */
    memcpy(out + ne * elem_size, in + ne * elem_size, n - ne * elem_size);
}

