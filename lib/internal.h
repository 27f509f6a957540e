/* Private to libwebhook: every piece's header at once, for the tests and tools that look
 * inside. The library's own files include only the pieces they use. */
#ifndef WH_INTERNAL_H
#define WH_INTERNAL_H

#include "conf.h"
#include "ctx.h"
#include "endpoint.h"
#include "endpoint_settings.h"
#include "error.h"
#include "event.h"
#include "logsink.h"
#include "metrics.h"
#include "netguard.h"
#include "old_secrets.h"
#include "payload.h"
#include "registry.h"
#include "registry_rows.h"
#include "scheduler.h"
#include "sign.h"
#include "store.h"
#include "transport.h"
#include "util.h"

#endif
