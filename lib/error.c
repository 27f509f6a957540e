/* Error codes, their names, and the per-thread message of the last failure. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static _Thread_local char last_error[512];
static _Thread_local int last_code;

const char *wh_strerror(int err)
{
    switch (err) {
    case WH_OK: return "success";
    case WH_ERR_INVALID: return "invalid argument";
    case WH_ERR_NOMEM: return "out of memory";
    case WH_ERR_NOTFOUND: return "not found";
    case WH_ERR_SIGNATURE: return "no matching signature";
    case WH_ERR_TIMESTAMP: return "timestamp outside tolerance";
    case WH_ERR_STATE: return "not allowed in the current state";
    case WH_ERR_TIMEOUT: return "timed out";
    case WH_ERR_FULL: return "too many pending deliveries";
    case WH_ERR_STORE: return "store failure";
    case WH_ERR_IO: return "system call failed";
    case WH_ERR_TRANSPORT: return "transport failure";
    default: return err > 0 ? "success" : "unknown error";
    }
}

const char *wh_last_error(void) { return last_error; }

void wh__clear_error(void)
{
    last_error[0] = '\0';
    last_code = WH_OK;
}

int wh__last_error_code(void) { return last_code; }

int wh__fail(char *errstr, size_t errlen, int code, const char *fmt, ...)
{
    /* formatted apart first: a caller may pass this thread's own message as an argument */
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* messages quote what callers passed (a URL, a value); a line break or other control
     * character in it must not reach the host's own logs as one */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    memcpy(last_error, msg, sizeof msg);
    last_code = code;
    if (errstr && errlen > 0)
        snprintf(errstr, errlen, "%s", last_error);
    return code;
}

int wh__pass_error(char *errstr, size_t errlen, int code)
{
    if (code == WH_OK)
        return code;
    if (!last_error[0] || last_code != code)
        return wh__fail(errstr, errlen, code, "%s", wh_strerror(code));
    if (errstr && errlen > 0)
        snprintf(errstr, errlen, "%s", last_error);
    return code;
}
