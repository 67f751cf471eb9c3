/*
 * discovered.c - the sources' shared helper (discovered.h).
 */
#include "discovery/discovered.h"

#include <stdio.h>

void tlab__discovered_name_from(char *out, size_t cap, const char *host, const char *port) {
    snprintf(out, cap, "%s-%s", host, port);
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
              *p == '-'))
            *p = '-';
}
