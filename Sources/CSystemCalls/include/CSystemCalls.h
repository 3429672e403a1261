#ifndef GATEHOUSE_CSYSTEMCALLS_H
#define GATEHOUSE_CSYSTEMCALLS_H
/* Linux and glibc calls that Swift's Glibc module does not export (they need _GNU_SOURCE or
   headers it leaves out). Thin wrappers only: every decision stays in Swift. This header
   includes no system header, so Swift's own Glibc module keeps its definitions. */

/* Reserves disk blocks for [offset, offset+length) without changing the file's size, so a later
   pwrite into that range cannot fail with ENOSPC. Returns 0, or the errno. */
int gatehouse_reserve_space(int fd, long long offset, long long length);

/* Returns the free pages of every malloc arena to the system. */
int gatehouse_malloc_trim(void);
/* Caps the number of malloc arenas (threads then share them). */
int gatehouse_limit_malloc_arenas(int count);

/* The connection's wake-up descriptor: non-blocking, close-on-exec. */
int gatehouse_eventfd(void);

/* accept4 with SOCK_CLOEXEC; `address` is a struct sockaddr_storage, `length` a socklen_t. */
int gatehouse_accept(int fd, void *address, unsigned int *length);
#endif
