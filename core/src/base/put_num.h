/*
 * put_num.h - decimal and hex numbers written into a buffer without snprintf, for what is
 * formatted on every request (request ids, reply heads, chunk sizes), where snprintf cost
 * several times more. Each returns the end of what it wrote; no NUL is added.
 */
#ifndef TLAB_PUT_NUM_H
#define TLAB_PUT_NUM_H

#include <stdint.h>

/* At most 20 characters. */
static inline char *tlab__put_dec(char *p, uint64_t v) {
    char t[20];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = t[--n];
    return p;
}

/* Lower case, at most 16 characters. */
static inline char *tlab__put_hex(char *p, uint64_t v) {
    char t[16];
    int n = 0;
    do {
        t[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        *p++ = t[--n];
    return p;
}

#endif
