/*
 * sim_predict_cli.h - `tlab-sim --predict` and `tlab-sim --predict-batch`: the prediction without a
 * server, as text for a person or as JSON lines for a program (tlab-tune, calibrate.py).
 */
#ifndef SIM_PREDICT_CLI_H
#define SIM_PREDICT_CLI_H

#include "sim_config.h"

/*
 * Runs the prediction cfg asks for and returns the process exit status: --predict prints a report
 * (0 when the model fits and the run completes, 1 when vLLM would refuse to start, 2 on a bad
 * profile); --predict-batch reads flag lines from stdin until EOF and prints one JSON object per line,
 * {"ok":true,...} or {"ok":false,"fits":...,"error":"..."}, and returns 0.
 */
int sim_predict_cli(sim_config *cfg);

#endif
