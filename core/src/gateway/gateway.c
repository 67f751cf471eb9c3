/* gateway.c - the one gateway instance (see gateway.h for why it is process-wide). */
#include "gateway/gateway.h"

tlab__gateway tlab__gw;
