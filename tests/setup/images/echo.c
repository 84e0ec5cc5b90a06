/* The workload of ferrolb's test cluster: an HTTP server that answers every request with
 * "<pod> on <node>, client <address>\n" — the pod and node from POD_NAME and NODE_NAME (the
 * downward API), the address being the TCP peer it saw. On the same port over UDP it answers
 * every datagram with its first 4 bytes followed by the node's name: the protocol of the tests'
 * prober (tests/src/l2cluster/traffic.rs), which sends a sequence number every few milliseconds.
 * Listens on PORT (default 8080), IPv4 and IPv6. Built static by tests/setup/images.sh:
 * gcc -static -O2 -o echo echo.c */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *env_or(const char *name, const char *fallback) {
  const char *v = getenv(name);
  return v && *v ? v : fallback;
}

static void quit(int sig) { (void)sig; _exit(0); }

int main(void) {
  const char *pod = env_or("POD_NAME", "unknown-pod");
  const char *node = env_or("NODE_NAME", "unknown-node");
  int port = atoi(env_or("PORT", "8080"));
  signal(SIGTERM, quit);
  signal(SIGINT, quit);
  signal(SIGPIPE, SIG_IGN);

  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  int on = 1, off = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  struct sockaddr_in6 addr = {.sin6_family = AF_INET6, .sin6_port = htons(port),
                              .sin6_addr = in6addr_any};
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 128) < 0) {
    perror("echo: listen");
    return 1;
  }
  int udp = socket(AF_INET6, SOCK_DGRAM, 0);
  setsockopt(udp, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  if (udp < 0 || bind(udp, (struct sockaddr *)&addr, sizeof addr) < 0) {
    perror("echo: bind udp");
    return 1;
  }
  fprintf(stderr, "echo: %s on %s listening on port %d (tcp, udp)\n", pod, node, port);

  for (;;) {
    struct pollfd fds[2] = {{.fd = fd, .events = POLLIN}, {.fd = udp, .events = POLLIN}};
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents & POLLIN) {
      char dgram[64], reply[300];
      struct sockaddr_storage from;
      socklen_t from_len = sizeof from;
      ssize_t n = recvfrom(udp, dgram, sizeof dgram, 0, (struct sockaddr *)&from, &from_len);
      if (n > 0) {
        size_t head = n < 4 ? (size_t)n : 4;
        size_t name = strlen(node) < sizeof reply - 4 ? strlen(node) : sizeof reply - 4;
        memcpy(reply, dgram, head);
        memcpy(reply + head, node, name);
        sendto(udp, reply, head + name, 0, (struct sockaddr *)&from, from_len);
      }
    }
    if (!(fds[0].revents & POLLIN)) continue;
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int c = accept(fd, (struct sockaddr *)&peer, &len);
    if (c < 0) continue;
    struct timeval timeout = {.tv_sec = 5};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    /* Read until the end of the request head (or a full buffer, or a timeout). */
    char req[4096];
    size_t got = 0;
    while (got < sizeof req - 1) {
      ssize_t n = read(c, req + got, sizeof req - 1 - got);
      if (n <= 0) break;
      got += (size_t)n;
      req[got] = 0;
      if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n")) break;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    if (peer.ss_family == AF_INET6) {
      struct sockaddr_in6 *p = (struct sockaddr_in6 *)&peer;
      if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr))
        inet_ntop(AF_INET, &p->sin6_addr.s6_addr[12], host, sizeof host);
      else
        inet_ntop(AF_INET6, &p->sin6_addr, host, sizeof host);
    } else if (peer.ss_family == AF_INET) {
      inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, host, sizeof host);
    }
    char body[512], resp[1024];
    int blen = snprintf(body, sizeof body, "%s on %s, client %s\n", pod, node, host);
    int rlen = snprintf(resp, sizeof resp,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                        "Connection: close\r\n\r\n%s",
                        blen, body);
    if (write(c, resp, (size_t)rlen) < 0) { /* the client went away */ }
    close(c);
  }
}
