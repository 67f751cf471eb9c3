/*
 * record.c - the per-request record store (see record.h).
 */
#include "record.h"

#include <stdio.h>
#include <stdlib.h>

tlab_req *tlab_reqs_add(tlab_reqs *s) {
    size_t b = s->n / TLAB_REQ_BLOCK, i = s->n % TLAB_REQ_BLOCK;
    if (b == s->nblocks) {
        if (s->nblocks == s->cap_blocks) {
            size_t cap = s->cap_blocks ? s->cap_blocks * 2 : 16;
            tlab_req **bl = realloc(s->blocks, cap * sizeof *bl);
            if (!bl)
                return NULL;
            s->blocks = bl;
            s->cap_blocks = cap;
        }
        s->blocks[b] = malloc(TLAB_REQ_BLOCK * sizeof(tlab_req));
        if (!s->blocks[b])
            return NULL;
        s->nblocks++;
    }
    tlab_req *r = &s->blocks[b][i];
    *r = (tlab_req){.sched = -1, .sent = -1, .first = -1, .last = -1, .done = -1, .usage_out = -1, .usage_in = -1,
                    .seq = (uint32_t)s->n};
    s->n++;
    return r;
}

tlab_req *tlab_reqs_at(const tlab_reqs *s, size_t i) {
    return &s->blocks[i / TLAB_REQ_BLOCK][i % TLAB_REQ_BLOCK];
}

void tlab_reqs_free(tlab_reqs *s) {
    for (size_t i = 0; i < s->n; i++)
        free(tlab_reqs_at(s, i)->itl);
    for (size_t b = 0; b < s->nblocks; b++)
        free(s->blocks[b]);
    free(s->blocks);
    *s = (tlab_reqs){0};
}

int tlab_req_add_itl(tlab_req *r, double gap) {
    if (r->n_itl == r->cap_itl) {
        uint32_t cap = r->cap_itl ? r->cap_itl * 2 : 32;
        float *v = realloc(r->itl, cap * sizeof *v);
        if (!v)
            return -1;
        r->itl = v;
        r->cap_itl = cap;
    }
    r->itl[r->n_itl++] = (float)gap;
    return 0;
}

long tlab_req_output_tokens(const tlab_req *r) {
    return r->usage_out >= 0 ? r->usage_out : (long)r->chunks;
}

const char *tlab_kind_base_name(tlab_kind k) {
    switch (k) {
    case TLAB_K_OK: return "ok";
    case TLAB_K_HTTP: return "http";
    case TLAB_K_TIMEOUT: return "timeout";
    case TLAB_K_CONNECT: return "connect";
    case TLAB_K_NO_RESPONSE: return "no_response";
    case TLAB_K_BROKEN_STREAM: return "broken_stream";
    case TLAB_K_BAD_RESPONSE: return "bad_response";
    case TLAB_K_DROPPED: return "dropped";
    case TLAB_K_UNFINISHED: return "unfinished";
    case TLAB_K_COUNT: break;
    }
    return "?";
}

const char *tlab_kind_name(const tlab_req *r, char *buf, size_t len) {
    if (r->kind == TLAB_K_HTTP) {
        snprintf(buf, len, "http_%d", r->status);
        return buf;
    }
    return tlab_kind_base_name((tlab_kind)r->kind);
}
