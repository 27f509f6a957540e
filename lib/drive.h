/* Private to libwebhook: one turn of delivery, for the loops that drive it. */
#ifndef WH_DRIVE_H
#define WH_DRIVE_H

#include "ctx.h"

/* Sends what is due, takes finished attempts' verdicts, commits the outcomes that are due and
 * hands records and notices on; how many attempts finished. On the driving thread only. */
int wh__drive_turn(wh_ctx *ctx);

#endif
