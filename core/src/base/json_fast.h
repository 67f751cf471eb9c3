/*
 * json_fast.h - a quick reader for the common request body, in front of jansson's json_loadb.
 *
 * jansson's decoder costs about 110 instructions per input byte (it reads one byte at a time
 * through a UTF-8 checking stream and copies every byte of every token into a string buffer),
 * so parsing a 120-byte chat request cost more than all the rest of the gateway's own work on it.
 * This reader has yajl (a callback parser that reads the buffer in place) parse it and builds the
 * same jansson values from its callbacks. It only ever agrees with
 * json_loadb(buf, len, JSON_DECODE_ANY): whenever it meets anything it does not handle itself
 * (invalid JSON, \u0000, an integer that overflows, a real that overflows, deep nesting, ...)
 * it gives up and the caller parses with jansson, which then gives the value or its own error.
 */
#ifndef TLAB_JSON_FAST_H
#define TLAB_JSON_FAST_H

#include <stddef.h>

#include <jansson.h>

/* The object encoded by buf[0..len), as json_loadb would decode it (same values, same key
 * order, last of duplicate keys wins); a new reference. NULL when buf is not a JSON object or
 * holds something this reader leaves to jansson: the caller then calls json_loadb. */
json_t *tlab__json_fast_object(const char *buf, size_t len);

/* A request body as the gateway parses it everywhere: this reader, else
 * json_loadb(buf, len, JSON_DECODE_ANY, err) (so a bare number or string parses, and is then
 * refused as "not an object" by its caller). NULL with *err set when it is not JSON. */
json_t *tlab__json_load_body(const char *buf, size_t len, json_error_t *err);

#endif
