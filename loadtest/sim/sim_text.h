/*
 * sim_text.h - the simulator's stand-in for a tokenizer and a sampler. Prompts are counted by a
 * documented rule (ceil(bytes / 4), at least 1), and output text is a deterministic function of the
 * prompt (and of the seed when temperature > 0). Every output token is 4 bytes, so re-counting the
 * generated text with the same rule gives back the number of tokens.
 */
#ifndef SIM_TEXT_H
#define SIM_TEXT_H

#include <stddef.h>
#include <stdint.h>

#define SIM_TOKEN_BYTES 4

/* Prompt tokens for len bytes of text: ceil(len / 4), and at least 1 (vLLM always has a BOS/template). */
int sim_count_tokens(size_t len);

/* 64-bit FNV-1a, continued from h (start with SIM_HASH_INIT). */
#define SIM_HASH_INIT 1469598103934665603ULL
uint64_t sim_hash(uint64_t h, const void *data, size_t len);

/* A well-mixed 64-bit value from x (splitmix64 finalizer). */
uint64_t sim_mix(uint64_t x);

/* Text of output token i of a sequence whose text seed is seed: always 4 bytes, no JSON escaping needed. */
const char *sim_token_text(uint64_t seed, int i);

/* Whether the SIM_TOKEN_BYTES bytes at p are one of the output vocabulary's tokens. */
int sim_is_token_text(const char *p);

/* Where the model would emit EOS (1..SIM_EOS_MAX tokens), from the text seed. */
#define SIM_EOS_MIN 16
#define SIM_EOS_MAX 512
int sim_eos_position(uint64_t seed);

#endif
