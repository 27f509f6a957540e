/* Private to libwebhook: Error text, per thread, and the caller's errstr. */
#ifndef WH_ERROR_H
#define WH_ERROR_H

#include <stddef.h>

#include "webhook/webhook.h"

int wh__fail(char *errstr, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void wh__clear_error(void);
/* Hands this thread's message for `code` to the caller's errstr (or names the code when the
 * failure left no message of its own); returns code. */
int wh__pass_error(char *errstr, size_t errlen, int code);
/* The code of this thread's last wh__fail (WH_OK after wh__clear_error). */
int wh__last_error_code(void);

#endif
