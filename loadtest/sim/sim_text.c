/*
 * sim_text.c - token counting and deterministic output text. The vocabulary is 64 three-letter English
 * words, each with a leading space, so a token is always exactly SIM_TOKEN_BYTES bytes.
 */
#include "sim_text.h"

#include <string.h>

static const char *const vocab[64] = {
    " the", " and", " for", " you", " are", " but", " not", " all", " any", " can", " her", " was", " one",
    " our", " out", " day", " get", " has", " him", " his", " how", " man", " new", " now", " old", " see",
    " two", " way", " who", " boy", " did", " its", " let", " put", " say", " she", " too", " use", " sky",
    " sea", " sun", " map", " red", " end", " far", " few", " run", " set", " try", " ask", " big", " low",
    " own", " top", " yes", " yet", " key", " law", " lot", " age", " air", " art", " car", " job",
};

int sim_count_tokens(size_t len) {
    size_t n = (len + SIM_TOKEN_BYTES - 1) / SIM_TOKEN_BYTES;
    if (n < 1)
        n = 1;
    if (n > 0x7fffffff)
        n = 0x7fffffff;
    return (int)n;
}

uint64_t sim_hash(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t sim_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

const char *sim_token_text(uint64_t seed, int i) { return vocab[sim_mix(seed + (uint64_t)i * 0x632be59bd9b4e019ULL) & 63]; }

int sim_eos_position(uint64_t seed) {
    return SIM_EOS_MIN + (int)(sim_mix(seed ^ 0xe05e05e05ULL) % (SIM_EOS_MAX - SIM_EOS_MIN + 1));
}

int sim_is_token_text(const char *p) {
    if (p[0] != ' ')
        return 0;
    for (int i = 0; i < 64; i++)
        if (memcmp(vocab[i], p, SIM_TOKEN_BYTES) == 0)
            return 1;
    return 0;
}
