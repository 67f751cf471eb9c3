/*
 * admission.h - the admission step: admission.lua's verdict on one request, applied to it.
 */
#ifndef TLAB_ADMISSION_H
#define TLAB_ADMISSION_H

#include "request/request.h"

/* The client's deadline: milliseconds the request may take from its arrival (docs/autopilot.md). */
#define TLAB_DEADLINE_HEADER "x-request-deadline-ms"

/* Sets r's deadline (TLAB_DEADLINE_HEADER, else slo.e2e_ms; a malformed header gets 400 naming
 * it), then runs admission.lua on r (when there is one). Returns 0 to go on (r may have been
 * clamped, given a priority class or another deadline); -1 when r was refused and has been answered. */
int tlab__policy_admit_request(tlab_request *r);

#endif
