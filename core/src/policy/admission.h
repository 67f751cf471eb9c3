/*
 * admission.h - the admission step: admission.lua's verdict on one request, applied to it.
 */
#ifndef TLAB_ADMISSION_H
#define TLAB_ADMISSION_H

#include "request/request.h"

/* Runs admission.lua on r (a no-op without the policy). Returns 0 to go on (r may have been
 * clamped or given a priority class); -1 when r was refused and has been answered. */
int tlab__policy_admit_request(tlab_request *r);

#endif
