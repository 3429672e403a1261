// Experiment for docs/benchmarks.md ("Why the warm command misses"): TCP_NODELAY on every socket
// gatehouse accepts (the agent leg), without touching Sources. Build and use:
//   gcc -shared -fPIC -O2 -o /tmp/nodelay.so bench/bastion/nodelay-preload.c -ldl
//   LD_PRELOAD=/tmp/nodelay.so gatehouse serve --config …
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = dlsym(RTLD_NEXT, "accept4");
    int s = real(fd, addr, len, flags);
    if (s >= 0) { int one = 1; setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); }
    return s;
}
