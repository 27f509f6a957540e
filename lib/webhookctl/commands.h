/* Private to webhookctl: the commands main runs, each with the store it opened (NULL for
 * verify), the command line, and the words after the command's own. */
#ifndef WEBHOOKCTL_COMMANDS_H
#define WEBHOOKCTL_COMMANDS_H

#include "cli.h"
#include "store.h"

typedef int ctl_command_fn(wh__store *s, const cmdline *c, const char *const *args);

/* cmd_endpoint_edit.c */
ctl_command_fn cmd_endpoint_add, cmd_endpoint_enable, cmd_endpoint_disable, cmd_endpoint_rm,
    cmd_endpoint_rotate, cmd_endpoint_set, cmd_endpoint_unset;
/* cmd_endpoint_show.c */
ctl_command_fn cmd_endpoint_list, cmd_endpoint_show;
/* cmd_log.c */
ctl_command_fn cmd_log, cmd_redeliver, cmd_recover;
/* cmd_stats.c */
ctl_command_fn cmd_stats, cmd_metrics;
/* cmd_verify.c */
ctl_command_fn cmd_verify;

/* The event types a running engine knows (it writes them to meta), split in place in
 * *joined; *types NULL: none written, the built-in ones. Both are the caller's to free. */
int ctl_known_types(wh__store *s, char **joined, const char ***types);

#endif
