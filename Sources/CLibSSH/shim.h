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

/* glibc's allocator controls, for returning memory after a burst of connections (one thread
   each): Swift's Glibc module does not export malloc.h. */
#include <malloc.h>
/* The connection's wake-up descriptor (eventfd is not in Swift's Glibc module either). */
#include <sys/eventfd.h>
#include <sys/socket.h>
static inline int gatehouse_accept(int fd, struct sockaddr *address, socklen_t *length) { return accept4(fd, address, length, SOCK_CLOEXEC); }
static inline int gatehouse_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
static inline int gatehouse_malloc_trim(void) { return malloc_trim(0); }
static inline int gatehouse_limit_malloc_arenas(int count) { return mallopt(M_ARENA_MAX, count); }
#endif
