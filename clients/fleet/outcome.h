/* fb-fleet's expectations: the checks of a scenario's expect sections
 * against a run's summary (README.md, "The scenario file" and "Tenants"). */
#ifndef FLEET_OUTCOME_H
#define FLEET_OUTCOME_H

#include <jansson.h>

#include "scenario.h"

/* Check the expectations against a summary object (as printed by --json):
 * channel k against summary.rollouts[k] when present, else against the
 * summary itself. Appends one {"name","ok","detail"} per checked
 * expectation to results (a JSON array, borrowed; names are prefixed by
 * the channel name with several channels) and returns 1 when all held. */
int outcome_check(const struct scenario *s, const json_t *summary, json_t *results);

#endif
