/* Private to libwebhook: The default transport: libcurl multi. */
#ifndef WH_TRANSPORT_H
#define WH_TRANSPORT_H

#include <stddef.h>

#include "conf.h"

int wh__transport_curl_new(const wh_conf *c, wh_transport *out, char *errstr, size_t errlen);

#endif
