#ifndef GATEHOUSE_CLIBSSH_SHIM_H
#define GATEHOUSE_CLIBSSH_SHIM_H
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>

/* libssh 0.10 marks the x11-req message accessors deprecated in favour of a callback that
   always answers success. Gatehouse needs to answer failure when policy refuses X11, so it
   reads the queued message instead; these wrappers keep the deprecation out of Swift. */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
static inline int gatehouse_x11_single_connection(ssh_message m) { return ssh_message_channel_request_x11_single_connection(m); }
static inline const char *gatehouse_x11_auth_protocol(ssh_message m) { return ssh_message_channel_request_x11_auth_protocol(m); }
static inline const char *gatehouse_x11_auth_cookie(ssh_message m) { return ssh_message_channel_request_x11_auth_cookie(m); }
static inline int gatehouse_x11_screen_number(ssh_message m) { return ssh_message_channel_request_x11_screen_number(m); }
#pragma clang diagnostic pop

#endif
